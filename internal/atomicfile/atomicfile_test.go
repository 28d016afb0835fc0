package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "a", "b", "f")
	if err := Write(name, []byte("one"), 0o600, 0); err == nil {
		t.Fatal("wrote into a missing directory with dirMode 0")
	}
	if err := Write(name, []byte("one"), 0o640, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(name, []byte("two"), 0o600, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(name)
	fi, _ := os.Stat(name)
	di, _ := os.Stat(filepath.Dir(name))
	if string(b) != "two" || fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("content %q, mode %v, dir mode %v", b, fi.Mode().Perm(), di.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(name))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	// A symlink at name is replaced, never written through.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	if err := Write(link, []byte("new"), 0o600, 0); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("wrote through a symlink: %q", b)
	}
}
