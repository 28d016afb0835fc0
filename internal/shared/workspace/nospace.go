package workspace

import (
	"errors"
	"fmt"
	"io"

	"github.com/bangerdev/banger/internal/shared/sizetext"
	"golang.org/x/sys/unix"
)

// room is what an extraction knows of its filesystem's space: what was
// free when it began, and how much of the stream it has read, so that
// running out of space is reported with both and the fix, not as a bare
// ENOSPC from a path in the staging directory.
type room struct {
	dir  string
	free int64 // -1 when it could not be read
	read int64
}

// roomIn reads the free space of the filesystem holding dir.
func roomIn(dir string) *room {
	rm := &room{dir: dir, free: -1}
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) == nil {
		rm.free = int64(st.Bavail) * int64(st.Bsize)
	}
	return rm
}

// count returns r, counting what is read through it into rm.read.
func (rm *room) count(r io.Reader) io.Reader { return &roomReader{r: r, rm: rm} }

type roomReader struct {
	r  io.Reader
	rm *room
}

func (c *roomReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.rm.read += int64(n)
	return n, err
}

// noSpace wraps err with ErrNoSpace when it is ENOSPC; any other error is
// returned as it is.
func (rm *room) noSpace(err error) error {
	if err == nil || !errors.Is(err, unix.ENOSPC) {
		return err
	}
	return fmt.Errorf("%w: the filesystem holding %s had %s free and filled after %s of the stream had arrived: free space there (in a VM: remove files, or give it a larger disk_bytes) and retry: %w",
		ErrNoSpace, rm.dir, sizetext.Down(rm.free), sizetext.Down(rm.read), err)
}
