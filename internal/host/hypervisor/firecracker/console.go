package firecracker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// Bounding the serial console log.
//
// Firecracker writes the guest's serial console to its stdout. Launch
// makes that stdout Dir/console.log, opened with O_APPEND, so the capture
// goes on while the daemon is down; Firecracker cannot bound it (the
// /serial endpoint of v1.14 only moves it to another file, and its rate
// limiter drops bytes rather than keeping the newest). The bound has the
// semantics of the QEMU driver's: the driver cuts the head off the file in
// place, leaving Firecracker's descriptor valid because with O_APPEND
// every write lands at the current end. The cut is
// fallocate(FALLOC_FL_COLLAPSE_RANGE), a whole number of filesystem
// blocks, where the filesystem has it (ext4, xfs), atomic with respect to
// Firecracker's writes; elsewhere the tail is copied to the front and the
// file truncated, and bytes written during that copy may be lost.
//
// The bound holds while a daemon runs: the driver trims every
// Driver.ConsoleTrimInterval, when it adopts the VM and when it stops it,
// so the log exceeds the limit at most by what the guest prints in one
// interval. A trim keeps the newest three quarters of the limit.
//
// (The same technique as the QEMU driver's console.go; the two could move
// to a package of their own.)
//
// Firecracker's log and metrics files need a bound too: Firecracker
// flushes its metrics, a JSON line of several KiB, every minute, to the
// end of the file. But it opens them without O_APPEND and writes at its
// own file offset, so their head cannot be cut. The driver punches a hole
// over their head instead (FALLOC_FL_PUNCH_HOLE): the blocks are freed and
// Firecracker's offset stays valid, so the disk they use is bounded by
// LogLimit, while their apparent size (ls -l) keeps growing over zeros;
// the newest lines stay readable (tail -n 1 firecracker.metrics).

// DefaultConsoleLimit bounds a console log whose Spec leaves ConsoleLimit 0.
const DefaultConsoleLimit = 1 << 20

// LogLimit bounds the disk space Firecracker's log and metrics files use.
const LogLimit = 1 << 20

// DefaultConsoleTrimInterval is how often a running VM's console log is
// trimmed when Driver.ConsoleTrimInterval is 0.
const DefaultConsoleTrimInterval = 2 * time.Second

// TrimConsole cuts the oldest bytes off the log at path when it is larger
// than limit, keeping about the newest three quarters of limit, and
// returns how many bytes it removed. A missing file is not an error.
func TrimConsole(path string, limit int64) (int64, error) {
	return trimConsole(path, limit, true)
}

func trimConsole(path string, limit int64, collapse bool) (int64, error) {
	return hypervisor.TrimLog(path, limit, collapse)
}

// PunchHead frees the blocks of the file at path beyond the newest three
// quarters of limit when the file uses more than limit bytes of disk,
// keeping its size and its writer's offset, and returns how many bytes it
// punched out. A missing file is not an error.
func PunchHead(path string, limit int64) (int64, error) {
	if limit <= 0 {
		limit = LogLimit
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("bounding %s: %w", path, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("bounding %s: %w", path, err)
	}
	if st.Blocks*512 <= limit || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, nil
	}
	bs := int64(st.Blksize)
	if bs <= 0 {
		bs = 4096
	}
	end := (st.Size - (limit - limit/4)) / bs * bs
	if end <= 0 {
		return 0, nil
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, end); err != nil {
		return 0, fmt.Errorf("bounding %s: %w", path, err)
	}
	return end, nil
}

// boundFiles bounds h's console log, Firecracker's log and its metrics.
func (d *Driver) boundFiles(h hypervisor.Handle) error {
	_, err := TrimConsole(h.ConsoleLog, h.ConsoleLimit)
	if h.ControlSocket != "" {
		dir := filepath.Dir(h.ControlSocket) // Spec.Dir, or the jail's root
		for _, name := range []string{LogFile, MetricsFile} {
			if _, perr := PunchHead(filepath.Join(dir, name), LogLimit); perr != nil && err == nil {
				err = perr
			}
		}
	}
	return err
}

// keepConsole starts bounding h's console log, log and metrics while the
// VM runs.
func (d *Driver) keepConsole(h hypervisor.Handle) { d.logKeeper().Keep(h) }

// stopKeeping stops bounding h's files and bounds them a last time.
func (d *Driver) stopKeeping(h hypervisor.Handle) { d.logKeeper().Stop(h) }

func (d *Driver) logKeeper() *hypervisor.LogKeeper {
	d.keeperOnce.Do(func() {
		interval := d.ConsoleTrimInterval
		if interval <= 0 {
			interval = DefaultConsoleTrimInterval
		}
		d.keeper = &hypervisor.LogKeeper{Interval: interval, Log: d.log(), Bound: d.boundFiles}
	})
	return d.keeper
}
