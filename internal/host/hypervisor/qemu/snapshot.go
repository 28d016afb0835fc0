package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/poll"
)

// Snapshots are QEMU's migration to a file and back (docs/devel/migration):
// Save stops the vCPUs and migrates the whole machine (device state and
// memory; pages that are all zero take a few bytes) into StateFile through
// a descriptor the daemon opened and handed over QMP (getfd), so a QEMU
// running as the VM user writes a file it could not open; migration's
// completion flushes the disks (fdatasync) and leaves QEMU paused
// ("postmigrate"). Restore starts a QEMU with the same devices, paused
// (-S), that reads the state from an inherited read-only descriptor
// (-incoming fd:N). QEMU's sandbox stays on: nothing is spawned (no exec:
// migration).
//
// Guest memory is anonymous and read back whole at restore. A file-backed
// memory mapped privately (memory-backend-file,share=off) would let a
// restore fault pages in lazily and share them between clones, but QEMU
// 7.2 can skip RAM in the stream (x-ignore-shared) only for a shared
// mapping, which a running clone would write through to the file; the
// stream is read at several hundred MB/s from the page cache, so a
// restore's cost stays small next to a boot under emulation.

// StateFile is the migration stream Save writes in its directory.
const StateFile = "state.qemu"

// stateFD is the name the state's descriptor gets in QMP (getfd).
const stateFD = "banger-state"

// maxBandwidth lifts migration's default bandwidth limit (32 MiB/s, meant
// for live migration over a network) for a local file.
const maxBandwidth = 1 << 40

var _ hypervisor.Snapshotter = (*Driver)(nil)

// incomingArgs makes QEMU start paused and load its state from the
// inherited descriptor fd.
func incomingArgs(fd int) []string { return []string{"-S", "-incoming", "fd:" + strconv.Itoa(fd)} }

// Save stops the VM's vCPUs and migrates it into dir/StateFile; QEMU stays
// paused whether the save succeeds or not.
func (d *Driver) Save(ctx context.Context, h hypervisor.Handle, dir string) (hypervisor.Saved, error) {
	path := filepath.Join(dir, StateFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return hypervisor.Saved{}, fmt.Errorf("qemu: creating the state file: %w", err)
	}
	defer f.Close()
	fail := func(err error) (hypervisor.Saved, error) {
		os.Remove(path)
		return hypervisor.Saved{}, fmt.Errorf("qemu: saving VM (pid %d): %w", h.PID, err)
	}
	if err := d.startMigration(ctx, h, f); err != nil {
		return fail(err)
	}
	if err := d.waitMigration(ctx, h); err != nil {
		return fail(err)
	}
	// The state outlives a host crash, like the disks QEMU just flushed.
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("syncing the state file: %w", err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fail(err)
	}
	d.log().Info("QEMU state saved", "pid", h.PID, "file", path, "bytes", st.Blocks*512)
	return hypervisor.Saved{Bytes: st.Blocks * 512}, nil
}

// startMigration stops the vCPUs and starts the migration into f.
func (d *Driver) startMigration(ctx context.Context, h hypervisor.Handle, f *os.File) error {
	q, err := d.qmp(ctx, h)
	if err != nil {
		return err
	}
	defer q.Close()
	if err := q.execute("stop", nil, nil); err != nil {
		return err
	}
	if err := q.execute("migrate-set-parameters", map[string]any{"max-bandwidth": maxBandwidth}, nil); err != nil {
		return err
	}
	if err := q.executeWithFile("getfd", map[string]any{"fdname": stateFD}, f, nil); err != nil {
		return err
	}
	return q.execute("migrate", map[string]any{"uri": "fd:" + stateFD}, nil)
}

// migrationStatus is what query-migrate says.
type migrationStatus struct {
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc"`
}

// waitMigration polls query-migrate until the migration completed or
// failed, QEMU ended, or ctx ended.
func (d *Driver) waitMigration(ctx context.Context, h hypervisor.Handle) error {
	return poll.Until(ctx, 20*time.Millisecond, func() (bool, error) {
		q, err := d.qmp(ctx, h)
		if err != nil {
			return false, err
		}
		defer q.Close()
		var m migrationStatus
		if err := q.execute("query-migrate", nil, &m); err != nil {
			return false, err
		}
		switch m.Status {
		case "completed":
			return true, nil
		case "failed", "cancelled":
			return false, fmt.Errorf("the migration to the state file %s: %s", m.Status, m.ErrorDesc)
		}
		return false, nil
	})
}

// Restore starts QEMU for spec, paused, loading the state in
// dir/StateFile; it returns once the state is loaded.
func (d *Driver) Restore(ctx context.Context, spec hypervisor.Spec, dir string) (hypervisor.Handle, error) {
	f, err := os.OpenFile(filepath.Join(dir, StateFile), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return hypervisor.Handle{}, fmt.Errorf("qemu: restoring VM %s: opening its saved state: %w", spec.ID, err)
	}
	defer f.Close()
	h, err := d.launch(ctx, spec, f)
	if err != nil {
		return h, fmt.Errorf("restoring from the saved state in %s: %w", dir, err)
	}
	return h, nil
}

// waitIncoming waits until QEMU has loaded its incoming state: its run
// state leaves "inmigrate" (QEMU exits when the state does not load,
// saying why on stderr).
func (d *Driver) waitIncoming(ctx context.Context, proc *hypervisor.Process, path string) error {
	err := poll.Until(ctx, 10*time.Millisecond, func() (bool, error) {
		select {
		case <-proc.Exited():
			return false, hypervisor.ErrExited
		default:
		}
		q, err := dialQMP(ctx, path)
		if err != nil {
			return false, nil // QEMU is exiting, or busy: look again
		}
		defer q.Close()
		st, err := q.status()
		if err != nil {
			return false, nil
		}
		switch st {
		case "inmigrate":
			return false, nil
		case "paused", "prelaunch":
			return true, nil
		}
		return false, fmt.Errorf("QEMU is %q after loading the saved state, want paused", st)
	})
	if errors.Is(err, hypervisor.ErrExited) {
		return fmt.Errorf("QEMU could not load the saved state: %s", proc.StderrTail())
	}
	return err
}

// Resume runs a paused VM's vCPUs (QMP cont, which also takes the disks
// back after a save).
func (d *Driver) Resume(ctx context.Context, h hypervisor.Handle) error {
	q, err := d.qmp(ctx, h)
	if err != nil {
		return fmt.Errorf("qemu: resuming VM (pid %d): %w", h.PID, err)
	}
	defer q.Close()
	if err := q.execute("cont", nil, nil); err != nil {
		return fmt.Errorf("qemu: resuming VM (pid %d): %w", h.PID, err)
	}
	return nil
}

// SaveCompleted reports whether h's QEMU finished migrating into a state
// file: a daemon killed while Save waited leaves QEMU to complete it on
// its own, and the next daemon start keeps the state (a completed
// migration has handed the disks over, so the VM could not run on).
func (d *Driver) SaveCompleted(ctx context.Context, h hypervisor.Handle) (bool, error) {
	q, err := d.qmp(ctx, h)
	if err != nil {
		return false, err
	}
	defer q.Close()
	var m migrationStatus
	if err := q.execute("query-migrate", nil, &m); err != nil {
		return false, err
	}
	return m.Status == "completed", nil
}
