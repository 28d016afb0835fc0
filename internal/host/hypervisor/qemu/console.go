package qemu

import (
	"log/slog"
	"time"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// Bounding the serial console log.
//
// QEMU cannot bound a file it writes, and the console must keep being
// captured while the daemon is down (it may restart while VMs run), so the
// capture cannot run through the daemon. The alternatives, and why not:
//   - a pipe or socket chardev read by the daemon: output is lost (or the
//     guest's console blocks) whenever the daemon is not reading;
//   - a ringbuf chardev: bounded, but it lives in QEMU's memory, is gone
//     when QEMU exits (when a crash log matters most), and QMP's
//     ringbuf-read consumes what it reads;
//   - a helper process owning the file: one more process per VM to start,
//     supervise, adopt and clean up.
//
// So QEMU writes Dir/console.log itself, opened with O_APPEND
// (-chardev file,append=on), and the driver cuts the head off the file in
// place, leaving QEMU's descriptor valid: with O_APPEND every write lands
// at the current end, whatever the file's size became. The cut is
// fallocate(FALLOC_FL_COLLAPSE_RANGE) where the filesystem has it (ext4,
// xfs): atomic with respect to QEMU's appends, so nothing is lost or
// reordered; the cut is a whole number of filesystem blocks. Elsewhere
// (tmpfs, ...) the driver copies the tail and truncates: bytes QEMU writes
// during that copy may be lost or land before the kept tail.
//
// The bound holds while a daemon runs: the driver trims every
// Driver.ConsoleTrimInterval, when it adopts the VM and when it stops it,
// so the log exceeds the limit at most by what the guest prints in one
// interval. While no daemon runs the log grows; the first Adopt after a
// restart cuts it back. A trim keeps the newest three quarters of the
// limit, so the file is not rewritten on every tick.

// DefaultConsoleLimit bounds a console log whose Spec leaves ConsoleLimit 0.
const DefaultConsoleLimit = hypervisor.DefaultLogLimit

// TrimConsole cuts the oldest bytes off the log at path when it is larger
// than limit, keeping about the newest three quarters of limit, and
// returns how many bytes it removed. A missing file is not an error.
func TrimConsole(path string, limit int64) (int64, error) {
	return trimConsole(path, limit, true)
}

func trimConsole(path string, limit int64, collapse bool) (int64, error) {
	return hypervisor.TrimLog(path, limit, collapse)
}

// keepConsole starts trimming h's console log while the VM runs.
func (d *Driver) keepConsole(h hypervisor.Handle) { d.logKeeper().Keep(h) }

// stopKeeping stops trimming h's console log and trims it a last time.
func (d *Driver) stopKeeping(h hypervisor.Handle) { d.logKeeper().Stop(h) }

func (d *Driver) logKeeper() *hypervisor.LogKeeper {
	d.keeperOnce.Do(func() {
		d.keeper = &hypervisor.LogKeeper{Interval: d.trimInterval(), Log: d.log(), Bound: func(h hypervisor.Handle) error {
			_, err := TrimConsole(h.ConsoleLog, h.ConsoleLimit)
			return err
		}}
	})
	return d.keeper
}

func (d *Driver) trimInterval() time.Duration {
	if d.ConsoleTrimInterval > 0 {
		return d.ConsoleTrimInterval
	}
	return DefaultConsoleTrimInterval
}

// DefaultConsoleTrimInterval is how often a running VM's console log is
// trimmed when Driver.ConsoleTrimInterval is 0.
const DefaultConsoleTrimInterval = 2 * time.Second

func (d *Driver) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}
