package image

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/bangerdev/banger/api"
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
// space into an error naming the filesystem, how much the image needed at
// least (what it had written, and what was free when it began) and the
// fix; any other error is returned as it is. It must be called before the
// staging directory is removed.
func (c *Catalog) noSpace(err error, name, staging string, freeBefore int64) error {
	if err == nil || (!errors.Is(err, unix.ENOSPC) && freeSpace(c.Root) >= lowSpace) {
		return err
	}
	written := usedSpace(staging)
	return &noSpaceError{err: err, apiErr: &api.Error{Code: api.CodeFailedPrecondition, Message: fmt.Sprintf(
		"image %s needs more free space than %s had: it filled the filesystem after writing %s, with %s free when it began: free space in %s (or move the data dir to a larger filesystem) and retry; nothing of it was kept (%v)",
		name, c.Root, sizeString(written), sizeString(freeBefore), c.Root, err)}}
}

// noSpaceError is an api.Error that still unwraps to the failure.
type noSpaceError struct {
	err    error
	apiErr *api.Error
}

func (e *noSpaceError) Error() string   { return e.apiErr.Error() }
func (e *noSpaceError) Unwrap() []error { return []error{e.apiErr, e.err} }

// sizeString prints n with one decimal in the largest binary unit that
// fits ("96.5MiB").
func sizeString(n int64) string {
	if n < 0 {
		return "an unknown amount"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%dB", n)
	}
	s := strconv.FormatFloat(math.Round(v*10)/10, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + units[u]
}
