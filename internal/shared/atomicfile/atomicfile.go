// Package atomicfile replaces files whole: a reader sees the old content or
// the new, never a part, and a crash leaves one of the two.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces name with data and mode (applied past the umask): the
// data goes to a temporary file in the same directory, is synced, and is
// renamed over name. Missing parent directories are created with dirMode;
// a dirMode of 0 means the parent must exist.
func Write(name string, data []byte, mode, dirMode os.FileMode) error {
	f, err := Create(name, mode, dirMode)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// Replace is Write without the sync: a reader still sees the old content
// or the new, never a part, but a crash may leave the file empty or old.
// For a caller that writes several files and syncs the filesystem once
// after them (syncfs), where a sync per file costs a journal commit each.
func Replace(name string, data []byte, mode, dirMode os.FileMode) error {
	f, err := Create(name, mode, dirMode)
	if err != nil {
		return err
	}
	defer f.Abort()
	f.noSync = true
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// File is a replacement for a file being written: what is written goes to a
// temporary file (named ".NAME.tmp-*", readable by its owner only) beside
// the file it replaces, and Commit puts it in place. Abort, or a crash,
// leaves the old file untouched.
type File struct {
	f      *os.File
	name   string
	mode   os.FileMode
	done   bool
	noSync bool // Replace: the caller syncs
}

// Create starts replacing name with a file of mode. Missing parent
// directories are created with dirMode; a dirMode of 0 means the parent must
// exist. Defer Abort right after: it is a no-op once Commit ran.
func Create(name string, mode, dirMode os.FileMode) (*File, error) {
	dir := filepath.Dir(name)
	if dirMode != 0 {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, err
		}
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &File{f: f, name: name, mode: mode}, nil
}

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) { return f.f.Write(p) }

// Commit gives the temporary file its mode (past the umask), syncs it and
// renames it over the file it replaces. On an error the temporary file is
// removed and the old file stays.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("replacing %s: already committed or aborted", f.name)
	}
	f.done = true
	tmp := f.f.Name()
	err := f.f.Chmod(f.mode)
	if err == nil && !f.noSync {
		err = f.f.Sync()
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.name)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Abort drops the temporary file; the file it would have replaced stays.
// It is a no-op after Commit or another Abort.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.f.Close()
	os.Remove(f.f.Name())
}

// SyncDir syncs the directory dir, so a rename or a new name in it
// survives a crash, not only the file's content.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
