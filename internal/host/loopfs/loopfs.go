// Package loopfs gives a test a small ext4 filesystem of its own: a
// sparse file made with mkfs.ext4 and mounted on a loop device under the
// test's temporary directory, unmounted when the test ends. Tests of what
// banger does when a disk fills up put its directories there and fill
// it (Fill), without touching the host's own filesystems.
package loopfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Mount makes an ext4 filesystem of size bytes (no blocks reserved for
// root, so what statfs calls free is what anyone may write) and mounts
// it; it returns the mount point. The test is skipped, with the reason,
// when it does not run as root, when e2fsprogs is missing or when the
// host has no loop device to give.
func Mount(tb testing.TB, size int64) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("loopfs: mounting a loop filesystem needs root")
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		tb.Skip("loopfs: mkfs.ext4 is not installed (apt-get install e2fsprogs)")
	}
	dir := tb.TempDir()
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		tb.Fatal(err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0",
		"-E", "lazy_itable_init=1,lazy_journal_init=1", img).CombinedOutput(); err != nil {
		tb.Fatalf("loopfs: mkfs.ext4 %s: %v: %s", img, err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", "-t", "ext4", img, mnt).CombinedOutput(); err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "loop") {
			tb.Skipf("loopfs: this host gives no loop device: mount -o loop: %s", msg)
		}
		tb.Fatalf("loopfs: mount -o loop %s: %v: %s", img, err, msg)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			tb.Errorf("loopfs: umount %s: %v: %s", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	return mnt
}

// Free is how many bytes may still be written on the filesystem that
// holds dir.
func Free(tb testing.TB, dir string) int64 {
	tb.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		tb.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// Fill allocates a file in dir that leaves about leave bytes free on its
// filesystem (never more; a few blocks less where the file's own extent
// blocks take them), and returns it: removing it gives the space back.
// With leave 0 the filesystem is full to the last block.
func Fill(tb testing.TB, dir string, leave int64) string {
	tb.Helper()
	f, err := os.CreateTemp(dir, ".loopfs-fill-")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	size := Free(tb, dir) - leave
	for size > 0 {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.ENOSPC) {
			tb.Fatalf("loopfs: fallocate %s: %v", f.Name(), err)
		}
		// The extent tree needs blocks of its own: ask for a little less.
		size -= 64 << 10
	}
	if leave == 0 {
		// Take the last blocks fallocate left, one write at a time.
		buf := make([]byte, 4096)
		for {
			if _, err := f.WriteAt(buf, size); err != nil {
				break
			}
			size += int64(len(buf))
		}
	}
	if got := Free(tb, dir); got > leave {
		tb.Fatalf("loopfs: filling %s left %d bytes free, want at most %d", dir, got, leave)
	}
	return f.Name()
}

// Tree lists every path under dir, relative to it, with "/" after a
// directory, sorted: a test compares the lists before and after an
// operation to see what it left behind. Paths for which skip returns
// true are left out (and, for a directory, everything under it).
func Tree(tb testing.TB, dir string, skip func(rel string) bool) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		tb.Fatal(fmt.Errorf("loopfs: listing %s: %w", dir, err))
	}
	return out
}
