package qemu

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSharedCopies: VMs with one kernel share one sealed copy, made again
// when the file changes; the copy can be read by anyone, changed by no one.
func TestSharedCopies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(path, []byte("kernel one"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c sharedCopies
	a, err := c.get("kernel", path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.get("kernel", path)
	if err != nil || a != b {
		t.Fatalf("a second VM got another copy (%v)", err)
	}
	fi, err := a.Stat()
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("copy mode %v (%v), want 0444", fi.Mode().Perm(), err)
	}
	seals, err := unix.FcntlInt(a.Fd(), unix.F_GET_SEALS, 0)
	want := unix.F_SEAL_WRITE | unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL
	if err != nil || seals&want != want {
		t.Errorf("seals %#x (%v), want %#x", seals, err, want)
	}
	if _, err := a.WriteAt([]byte("x"), 0); err == nil {
		t.Error("the sealed copy was written")
	}

	later := time.Now().Add(time.Minute)
	if err := os.WriteFile(path, []byte("kernel two!"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, later, later)
	c2, err := c.get("kernel", path)
	if err != nil || c2 == a {
		t.Fatalf("a changed kernel kept its old copy (%v)", err)
	}
	got, err := os.ReadFile("/proc/self/fd/" + itoa(int(c2.Fd())))
	if err != nil || string(got) != "kernel two!" {
		t.Errorf("the new copy reads %q, %v", got, err)
	}
}
