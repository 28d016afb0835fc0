// Package logrotate owns the daemon's log file while it runs: an
// append-only file opened like every private file of banger
// (localsock.OpenPrivateFile: never through a symbolic link, owner-only),
// which is renamed to NAME.1 and started anew when a write would take it
// past a size, so the log never grows without bound.
package logrotate

import (
	"fmt"
	"os"
	"sync"

	"github.com/bangerdev/banger/internal/host/localsock"
)

// Backup returns the name the log is renamed to when it rotates. One
// backup is kept: a second rotation replaces it.
func Backup(path string) string { return path + ".1" }

// Files returns the log's files oldest first (the backup, then the live
// log), as a reader that wants the last records should read them.
func Files(path string) []string { return []string{Backup(path), path} }

// Writer appends to the log at path and rotates it at max bytes. It is
// safe for concurrent use; each Write lands whole in one file.
type Writer struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
}

// Open opens (creating it owner-only) the log at path for appending. A
// write that would take it past max bytes first renames it to Backup(path)
// and opens a new one; a record larger than max gets a file of its own.
func Open(path string, max int64) (*Writer, error) {
	if max <= 0 {
		return nil, fmt.Errorf("log size limit %d: it must be positive", max)
	}
	f, size, err := open(path)
	if err != nil {
		return nil, err
	}
	return &Writer{path: path, max: max, f: f, size: size}, nil
}

func open(path string) (*os.File, int64, error) {
	f, err := localsock.OpenPrivateFile(path, os.O_WRONLY|os.O_APPEND)
	if err != nil {
		return nil, 0, fmt.Errorf("opening the log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("opening the log: %w", err)
	}
	return f, fi.Size(), nil
}

// Write appends p, rotating first when p would take the log past its limit.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, os.ErrClosed
	}
	if w.size > 0 && w.size+int64(len(p)) > w.max {
		w.rotate()
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

// rotate renames the live log to its backup and opens a new one. The old
// descriptor stays in use until the new file is open, so a failed rotation
// (a read-only directory, a link planted at path) loses no record: writes
// go on to the old file, and the next write tries again.
func (w *Writer) rotate() {
	if err := os.Rename(w.path, Backup(w.path)); err != nil {
		return
	}
	f, size, err := open(w.path)
	if err != nil {
		return
	}
	w.f.Close()
	w.f, w.size = f, size
}

// Close closes the live file; later writes fail with os.ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
