// Package growfs grows a mounted ext4 file system, from inside the guest,
// to fill its disk.
//
// The host makes a VM's writable disks by cloning a small pre-made ext4
// seed and extending the file sparsely to the size the user asked for; it
// never runs e2fsck or resize2fs on them, so creating a VM costs the same
// whatever its size. The guest then grows each file system online, the
// way a cloud image's growpart/resize2fs does at first boot, with the
// kernel's EXT4_IOC_RESIZE_FS: no e2fsprogs in the initramfs, no host
// tool ever parsing a disk the guest has written (SPEC §8). Growing a file
// system that already fills its disk changes nothing, so the guest grows
// at every boot.
package growfs

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Result is what Fill did, in bytes as statfs reports them (what df shows).
type Result struct {
	Device string
	Before int64 // file system size before
	After  int64 // file system size after
	Disk   int64 // the device's size
}

// Grown reports whether the file system grew.
func (r Result) Grown() bool { return r.After > r.Before }

func (r Result) String() string {
	if !r.Grown() {
		return fmt.Sprintf("%s: %d bytes, fills its %d-byte disk", r.Device, r.After, r.Disk)
	}
	return fmt.Sprintf("%s: grown from %d to %d bytes (disk %d bytes)", r.Device, r.Before, r.After, r.Disk)
}

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64).
const ext4IocResizeFS = 0x40086610

// Fill grows the ext4 file system mounted at dir, whose disk is device,
// to the last whole block of the disk. It refuses a file system that is
// not ext4 and never shrinks one.
func Fill(dir, device string) (Result, error) {
	r := Result{Device: device}
	before, err := statfs(dir)
	if err != nil {
		return r, err
	}
	if before.Type != unix.EXT4_SUPER_MAGIC {
		return r, fmt.Errorf("growing %s: %s is not an ext4 file system (type %#x)", device, dir, before.Type)
	}
	r.Before = int64(before.Blocks) * before.Bsize
	r.After = r.Before
	r.Disk, err = diskSize(device)
	if err != nil {
		return r, err
	}
	// The superblock's block count is the target; the kernel does nothing
	// when it already is the file system's size.
	blocks := uint64(r.Disk / before.Bsize)
	d, err := os.Open(dir)
	if err != nil {
		return r, fmt.Errorf("growing %s: %v", device, err)
	}
	defer d.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&blocks))); errno != 0 {
		return r, fmt.Errorf("growing %s mounted at %s to %d blocks of %d bytes: %v; the kernel log says why", device, dir, blocks, before.Bsize, errno)
	}
	after, err := statfs(dir)
	if err != nil {
		return r, err
	}
	r.After = int64(after.Blocks) * after.Bsize
	return r, nil
}

func statfs(dir string) (unix.Statfs_t, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return st, fmt.Errorf("statfs %s: %v", dir, err)
	}
	return st, nil
}

// diskSize is the size of the block device (or regular file) at path.
func diskSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Mode().IsRegular() {
		return fi.Size(), nil
	}
	var size uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); errno != 0 {
		return 0, fmt.Errorf("reading the size of %s: %v", path, errno)
	}
	return int64(size), nil
}
