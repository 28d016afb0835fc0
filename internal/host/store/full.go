package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bangerdev/banger/api"
	"golang.org/x/sys/unix"
	"modernc.org/sqlite"
)

// sqliteFull is SQLite's primary result code for "database or disk is
// full" (SQLITE_FULL); its unix VFS returns it when a write gets ENOSPC.
const sqliteFull = 13

// ErrFull is returned (wrapped, inside an api.Error) when a write fails
// because the filesystem holding the database is full.
var ErrFull = errors.New("the store's filesystem is full")

// fullError is an api.Error saying that the store could not write for
// want of space: what SQLite reports ("database or disk is full (13)")
// names neither the filesystem nor the fix.
type fullError struct {
	apiErr *api.Error
}

func (e *fullError) Error() string   { return e.apiErr.Error() }
func (e *fullError) Unwrap() []error { return []error{e.apiErr, ErrFull} }

// full turns a write that failed for want of space into an error naming
// the filesystem, what it has free and the fix; any other error is
// returned as it is. The transaction was rolled back, so nothing of the
// change was kept, and the store works again once there is room.
func (s *Store) full(err error) error {
	if err == nil || !isFull(err) {
		return err
	}
	dir := filepath.Dir(s.path)
	free := "no space"
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) == nil {
		free = fmt.Sprintf("%d KiB", int64(st.Bavail)*int64(st.Bsize)>>10)
	}
	return &fullError{&api.Error{Code: api.CodeFailedPrecondition, Message: fmt.Sprintf(
		"the daemon's store cannot write: the filesystem holding %s is full (%s free; SQLite needs room for its journal): free space in %s and retry (nothing was changed)",
		s.path, free, dir)}}
}

// isFull reports whether err is SQLite's SQLITE_FULL (any extended code
// of it) or ENOSPC.
func isFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqliteFull {
		return true
	}
	return errors.Is(err, unix.ENOSPC)
}

// ReserveBytes is the space the store keeps in a file beside the database
// (ReservePath), released when a write finds the filesystem full: SQLite
// needs room to write anything, even a delete, so without it a full disk
// would refuse the very `vm delete` that frees space. The write that
// finds the disk full releases the reserve and is tried once more; the
// reserve is made again after a write once the filesystem has room.
const ReserveBytes = 8 << 20

// reserveRoom is how much must be free, beyond the reserve itself, before
// the reserve is made again: it is not worth taking the last few MiB.
const reserveRoom = 64 << 20

// ReservePath is the reserve file of the database at dbPath.
func ReservePath(dbPath string) string { return dbPath + ".reserve" }

// keepReserve makes the reserve file when it is missing and the
// filesystem has room for it; the caller holds writeMu. It is best
// effort: a store without its reserve works, only with less slack.
func (s *Store) keepReserve() {
	p := ReservePath(s.path)
	if _, err := os.Stat(p); err == nil {
		return
	}
	var st unix.Statfs_t
	if unix.Statfs(filepath.Dir(s.path), &st) != nil || int64(st.Bavail)*int64(st.Bsize) < ReserveBytes+reserveRoom {
		return
	}
	f, err := os.OpenFile(p+".tmp", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, ReserveBytes)
	if errors.Is(err, unix.EOPNOTSUPP) {
		_, err = f.Write(make([]byte, ReserveBytes))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p+".tmp", p)
	}
	if err != nil {
		os.Remove(p + ".tmp")
	}
}

// releaseReserve removes the reserve file and reports whether there was
// one to remove.
func (s *Store) releaseReserve() bool {
	return os.Remove(ReservePath(s.path)) == nil
}
