package localsock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A held lock refuses a second holder (flock conflicts between two opens
// even in one process), which learns the note the first wrote; released,
// it can be taken again.
func TestTryLock(t *testing.T) {
	path := filepath.Join(shortDir(t), "bangerd.lock")
	first, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.SetNote("pid=42\nsocket=/run/x.sock"); err != nil {
		t.Fatal(err)
	}
	_, err = TryLock(path)
	var held *HeldError
	if !errors.As(err, &held) || held.Note != "pid=42\nsocket=/run/x.sock" || held.Path != path {
		t.Fatalf("second TryLock: %#v, want a HeldError carrying the note", err)
	}
	first.Release()
	second, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock after release: %v", err)
	}
	second.Release()
}

// A planted symbolic link at the lock's path is refused, not followed.
func TestTryLockRefusesSymlink(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "bangerd.lock")
	os.Symlink(filepath.Join(dir, "elsewhere"), path)
	if _, err := TryLock(path); err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
		t.Fatalf("TryLock through a symlink: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "elsewhere")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link's target was created")
	}
}
