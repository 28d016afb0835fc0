package image

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/sizetext"
	"golang.org/x/sys/unix"
)

// lowSpace is how little free space, read after a failed step, counts as
// the filesystem having filled: tools such as mkfs.ext4 and debugfs say
// so in words of their own, not with ENOSPC.
const lowSpace = 1 << 20

// freeSpace is what an unprivileged process may still write on the
// filesystem holding dir, or -1 when it cannot be read.
func freeSpace(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// usedSpace is how much the files under dir occupy (blocks, not sizes).
func usedSpace(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// noSpace turns the failure of an image build in staging that ran out of
// space into an error naming the filesystem, what was free when the build
// began (the image needed more) and the fix; any other error is returned
// as it is.
func (c *Catalog) noSpace(err error, name string, freeBefore int64) error {
	if err == nil || (!errors.Is(err, unix.ENOSPC) && freeSpace(c.Root) >= lowSpace) {
		return err
	}
	return &noSpaceError{err: err, apiErr: &api.Error{Code: api.CodeFailedPrecondition, Message: fmt.Sprintf(
		"image %s needs more free space than %s had: it filled the filesystem, which had %s free when the image began: free space in %s (or move the data dir to a larger filesystem) and retry; nothing of it was kept (%v)",
		name, c.Root, sizetext.Down(freeBefore), c.Root, err)}}
}

// checkNeed refuses an image that needs more than its filesystem has
// free, before anything is written.
func (c *Catalog) checkNeed(name string, need int64) error {
	free := freeSpace(c.Root)
	if need <= 0 || free < 0 || free >= need {
		return nil
	}
	return &api.Error{Code: api.CodeFailedPrecondition, Message: fmt.Sprintf(
		"image %s needs at least %s free in %s, and it has %s: free space there (or move the data dir to a larger filesystem) and retry",
		name, sizetext.Up(need), c.Root, sizetext.Down(free))}
}

// RegisterNeed is the least space a register of req takes in the
// catalog: the blocks of every file it copies (kernel, initramfs,
// modules, rootfs, work-seed); 0 with Link, which copies none. What
// register makes besides (vmlinux unpacked from a bzImage, an initramfs,
// a work-seed) comes on top, so the pre-check it feeds (Spec.Need) can
// still be passed by a build that fills the disk, which noSpace reports.
func RegisterNeed(req api.RegisterImageRequest) int64 {
	if req.Link {
		return 0
	}
	var n int64
	for _, p := range []string{req.Kernel, req.Initrd, req.Modules, req.Rootfs, req.WorkSeed} {
		if p != "" {
			n += usedSpace(p)
		}
	}
	return n
}

// noSpaceError is an api.Error that still unwraps to the failure.
type noSpaceError struct {
	err    error
	apiErr *api.Error
}

func (e *noSpaceError) Error() string   { return e.apiErr.Error() }
func (e *noSpaceError) Unwrap() []error { return []error{e.apiErr, e.err} }
