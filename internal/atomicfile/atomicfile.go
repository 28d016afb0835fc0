// Package atomicfile replaces files whole: a reader sees the old content or
// the new, never a part, and a crash leaves one of the two.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces name with data and mode (applied past the umask): the
// data goes to a temporary file in the same directory, is synced, and is
// renamed over name. Missing parent directories are created with dirMode;
// a dirMode of 0 means the parent must exist.
func Write(name string, data []byte, mode, dirMode os.FileMode) error {
	dir := filepath.Dir(name)
	if dirMode != 0 {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
