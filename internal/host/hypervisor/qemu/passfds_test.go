package qemu

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/host/hypervisor"
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

// TestPassedDiskModes: the daemon opens a read-only disk O_RDONLY alone
// (QEMU gets no descriptor that could write it, whatever the file's
// mode), a writable one read-only and read-write.
func TestPassedDiskModes(t *testing.T) {
	spec := testSpec(t)
	pf, err := openPassed(spec, PathsIn(spec.Dir), Q35, hypervisor.AgentSerial, "", &sharedCopies{})
	if err != nil {
		t.Fatal(err)
	}
	defer pf.close()
	mode := func(fd int) int {
		if fd < 3 || fd-3 >= len(pf.extra) {
			t.Fatalf("descriptor %d is not one QEMU inherits", fd)
		}
		fl, err := unix.FcntlInt(pf.extra[fd-3].Fd(), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fl & unix.O_ACCMODE
	}
	want := []DiskFDs{{RO: unix.O_RDONLY}, {RO: unix.O_RDONLY, RW: unix.O_RDWR}}
	for i, d := range pf.fds.Disks {
		got := DiskFDs{RO: mode(d.RO)}
		if d.RW != 0 {
			got.RW = mode(d.RW)
		}
		if got != want[i] {
			t.Errorf("disk %s (read-only %v): access modes %+v, want %+v", spec.Disks[i].ID, spec.Disks[i].ReadOnly, got, want[i])
		}
	}
}
