package hypervisor

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// DefaultLogLimit bounds a console log whose Spec leaves ConsoleLimit 0.
const DefaultLogLimit = 1 << 20

// TrimLog cuts the oldest bytes off the append-only log at path when it is
// larger than limit, keeping about the newest three quarters of limit, and
// returns how many bytes it removed. With collapse it uses
// FALLOC_FL_COLLAPSE_RANGE where the filesystem has it (ext4, xfs), which is
// atomic with a writer's O_APPEND writes; otherwise it copies the tail to
// the front and truncates, which can misplace bytes written meanwhile. A
// missing file is not an error. Both drivers bound their console logs with
// it.
func TrimLog(path string, limit int64, collapse bool) (int64, error) {
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("trimming console log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("trimming console log: %w", err)
	}
	size := fi.Size()
	if size <= limit {
		return 0, nil
	}
	keep := limit - limit/4
	cut := size - keep
	if collapse {
		var st unix.Statfs_t
		if err := unix.Fstatfs(int(f.Fd()), &st); err == nil && st.Bsize > 0 {
			bs := st.Bsize
			aligned := (cut + bs - 1) / bs * bs
			if aligned < size { // the range may not reach the end of the file
				err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_COLLAPSE_RANGE, 0, aligned)
				if err == nil {
					return aligned, nil
				}
				if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
					return 0, fmt.Errorf("trimming console log %s: %w", path, err)
				}
			}
		}
	}
	// Copy the tail to the front and truncate.
	tail := make([]byte, keep)
	n, err := f.ReadAt(tail, size-keep)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("trimming console log %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		return 0, fmt.Errorf("trimming console log %s: %w", path, err)
	}
	if _, err := f.Write(tail[:n]); err != nil { // O_APPEND: at the end
		return 0, fmt.Errorf("trimming console log %s: %w", path, err)
	}
	return size - int64(n), nil
}
