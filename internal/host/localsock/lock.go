package localsock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// Lock is an exclusive flock on a private file, held until Release or
// until the process dies (the kernel drops it, so a crashed holder never
// blocks the next one).
type Lock struct {
	f *os.File
}

// HeldError reports a lock another process holds, with the note its holder
// wrote into the file (see Lock.SetNote), which names it.
type HeldError struct {
	Path string
	// Note is what the holder wrote, "" when it wrote nothing (yet).
	Note string
}

func (e *HeldError) Error() string {
	if e.Note == "" {
		return fmt.Sprintf("%s is locked by another process", e.Path)
	}
	return fmt.Sprintf("%s is locked by another process (%s)", e.Path, e.Note)
}

// TryLock takes the lock at path without waiting. The file is opened with
// OpenPrivateFile's checks (no symbolic link, the user's own regular file).
// When another process holds it, the error is a *HeldError.
func TryLock(path string) (*Lock, error) {
	f, err := OpenPrivateFile(path, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			note, _ := io.ReadAll(io.LimitReader(f, 4096))
			return nil, &HeldError{Path: path, Note: strings.TrimSpace(string(note))}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// SetNote replaces the lock file's contents with note, for a process that
// finds the lock held to read (HeldError.Note): who holds it and what for.
func (l *Lock) SetNote(note string) error {
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("writing %s: %w", l.f.Name(), err)
	}
	if _, err := l.f.WriteAt([]byte(note+"\n"), 0); err != nil {
		return fmt.Errorf("writing %s: %w", l.f.Name(), err)
	}
	return nil
}

// Release drops the lock. The file stays, so the next holder locks the
// same inode.
func (l *Lock) Release() { l.f.Close() }
