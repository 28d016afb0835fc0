package growfs

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFillRefusesWhatIsNotExt4: growing is for ext4 only; anything else
// is refused, naming what it is.
func TestFillRefusesWhatIsNotExt4(t *testing.T) {
	_, err := Fill("/proc", "/dev/null")
	if err == nil || !strings.Contains(err.Error(), "is not an ext4 file system") {
		t.Fatalf("Fill(/proc) = %v, want a refusal naming ext4", err)
	}
}

// capSysResource reports whether this process may resize a file system
// (CAP_SYS_RESOURCE, bit 24 of CapEff).
func capSysResource(t *testing.T) bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<24) != 0
		}
	}
	return false
}

// TestFillGrowsToTheDisk grows a 64 MiB ext4 in a 1 GiB file, mounted on a
// loop device, to fill it, then again (nothing to do). The guest's own
// boot does the same (guestinit's TestInitBootOverlay, under QEMU); this
// host-side run needs root, a loop device and CAP_SYS_RESOURCE.
func TestFillGrowsToTheDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a loop file system needs root")
	}
	if !capSysResource(t) {
		t.Skip("this process lacks CAP_SYS_RESOURCE (a container that drops it), which resizing a mounted ext4 needs; TestInitBootOverlay grows one in a real guest")
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 is not installed (apt-get install e2fsprogs)")
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o700)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("no loop device here: mount -o loop: %s", strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	dev, err := exec.Command("findmnt", "-no", "SOURCE", mnt).Output()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Fill(mnt, strings.TrimSpace(string(dev)))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Grown() || r.Disk != 1<<30 || r.After < 900<<20 {
		t.Errorf("Fill = %+v; want grown to about the 1 GiB disk", r)
	}
	again, err := Fill(mnt, strings.TrimSpace(string(dev)))
	if err != nil || again.Grown() || again.After != r.After {
		t.Errorf("second Fill = %+v, %v; want nothing to do", again, err)
	}
}
