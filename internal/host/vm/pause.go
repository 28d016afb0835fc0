package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/crashpoint"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/atomicfile"
	"github.com/bangerdev/banger/internal/shared/sizetext"
)

// Pause saves a running VM's whole state (memory and devices) beside its
// disks and ends its hypervisor: the VM's memory is freed and its TAP
// returned; its address, disks, agent key and boot files stay. Resume
// brings it back as it was, processes and sessions included.
func (m *Manager) Pause(ctx context.Context, name string, p Progress) (VM, error) {
	v, unlock, err := m.getLocked(ctx, name)
	defer unlock()
	if err != nil {
		return v, err
	}
	if v.State == api.VMPaused {
		return v, api.Errorf(api.CodeFailedPrecondition, "vm %s is already paused: resume it with `banger vm resume %s`", v.Name, v.Name)
	}
	hv, h, err := m.driverOf(v)
	if err != nil {
		return v, err
	}
	snap, err := snapshotter(hv)
	if err != nil {
		return v, err
	}
	if err := m.checkSpaceForState(&v); err != nil {
		return v, err
	}
	p.Stage("save state")
	if err := m.pause(ctx, &v, snap, h, p); err != nil {
		return v, err
	}
	p.Stage("stop hypervisor")
	return v, m.endHypervisor(ctx, &v)
}

// pause saves running v's state beside its disks and records it paused;
// its hypervisor, stopped, is left for the caller to end (endHypervisor).
// A failed save resumes the VM.
func (m *Manager) pause(ctx context.Context, v *VM, snap hypervisor.Snapshotter, h hypervisor.Handle, p Progress) error {
	dir := m.Dir(v.ID)
	saved, err := saveState(ctx, snap, h, stateTmp(dir))
	if err != nil {
		if rerr := snap.Resume(context.WithoutCancel(ctx), h); rerr != nil {
			m.Log.Error("resuming a VM whose save failed", "vm", v.Name, "error", rerr)
		}
		return err
	}
	crashpoint.Here(ctx)
	// After a save that completed, a hypervisor is only ever ended: QEMU
	// has handed its disks over to the saved state (a `cont` could not
	// always take them back), so a failure from here ends it and the VM
	// is resumed from the state.
	if err := commitState(dir); err != nil {
		return m.abortPause(ctx, v, err)
	}
	p.Detail("%s", sizetext.Up(saved.Bytes))
	// From here the saved state is the VM: the record says so before the
	// hypervisor goes (a crash in between is finished by Reconcile).
	v.State = api.VMPaused
	v.Runtime.Saved = &saved
	if err := m.save(ctx, v); err != nil {
		return m.abortPause(ctx, v, err)
	}
	crashpoint.Here(ctx)
	return nil
}

// abortPause handles a pause that failed after its save completed: the
// hypervisor can only be ended, so the VM becomes what its state says,
// paused when the state was committed, else stopped.
func (m *Manager) abortPause(ctx context.Context, v *VM, err error) error {
	ctx = context.WithoutCancel(ctx)
	dir := m.Dir(v.ID)
	os.RemoveAll(stateTmp(dir))
	if _, serr := os.Stat(stateDir(dir)); serr == nil && v.Runtime.Saved != nil {
		v.State = api.VMPaused
	} else {
		os.RemoveAll(stateDir(dir))
		v.Runtime.Saved = nil
		v.Runtime.LastExit = m.report("a pause failed after its hypervisor had handed its disks to the saved state: "+firstLine(err.Error()), nil)
		m.halt(ctx, v, false)
		return err
	}
	if eerr := m.endHypervisor(ctx, v); eerr != nil {
		m.Log.Error("ending the hypervisor of a failed pause", "vm", v.Name, "error", eerr)
	}
	return err
}

// commitState makes a complete save in stateTmp the VM's saved state.
func commitState(dir string) error {
	if err := os.RemoveAll(stateDir(dir)); err != nil {
		return err
	}
	if err := os.Rename(stateTmp(dir), stateDir(dir)); err != nil {
		return fmt.Errorf("committing the saved state: %w", err)
	}
	return atomicfile.SyncDir(dir)
}

// endHypervisor ends a VM's hypervisor, returns its TAP and forgets the
// handle, leaving the VM's state and boot files as they are: a paused
// VM's (its state on disk) for the resume, a warm template's for its
// snapshot.
func (m *Manager) endHypervisor(ctx context.Context, v *VM) error {
	var errs []error
	if h := v.Runtime.Handle; h != nil {
		if hv, ok := m.Drivers[h.Driver]; ok {
			if err := hv.Kill(*h); err != nil && running(ctx, hv, *h) {
				errs = append(errs, err)
			}
		}
	}
	m.links.Drop(v.ID)
	socks, _ := filepath.Glob(filepath.Join(m.Dir(v.ID), "*.sock"))
	for _, f := range socks {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := m.releaseTAP(ctx, v); err != nil {
		errs = append(errs, err)
	}
	v.Runtime.Handle = nil
	v.Runtime.Resuming = false
	if err := m.save(ctx, v); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Resume restores a paused VM from its saved state: the same memory,
// processes and sessions, on the same address; its clock is set to the
// host's. The saved state is dropped once the VM runs.
func (m *Manager) Resume(ctx context.Context, name string, p Progress) (VM, error) {
	v, unlock, err := m.getLocked(ctx, name)
	defer unlock()
	if err != nil {
		return v, err
	}
	if v.State != api.VMPaused {
		return v, NotPaused(v)
	}
	return v, m.resume(ctx, &v, p)
}

// resume restores paused v from its saved state and lets it run; the
// caller holds v's lock.
func (m *Manager) resume(ctx context.Context, v *VM, p Progress) error {
	saved := v.Runtime.Saved
	if saved == nil {
		return fmt.Errorf("vm %s is paused but its saved state is not recorded: `banger vm stop %s` discards it, then start it", v.Name, v.Name)
	}
	hv, ok := m.Drivers[saved.Driver]
	if !ok {
		return api.Errorf(api.CodeFailedPrecondition, "vm %s was saved by the %s driver, which this bangerd does not have: `banger vm stop %s` discards the saved state", v.Name, saved.Driver, v.Name)
	}
	snap, err := snapshotter(hv)
	if err != nil {
		return err
	}
	img, err := m.Images.Get(ctx, v.ImageID)
	if err != nil {
		return err
	}
	dir := m.Dir(v.ID)
	initrd := bootInitrd(dir)
	if _, err := os.Stat(initrd); err != nil {
		return fmt.Errorf("vm %s: its boot files are missing (%v): `banger vm stop %s` discards the saved state, then start it", v.Name, err, v.Name)
	}
	tap, err := m.takeTAP(ctx, v, p)
	if err != nil {
		return m.abortResume(ctx, v, err)
	}
	p.Stage("restore " + hv.Name())
	spec := m.launchSpec(v, img, Choice{HV: hv, Accel: saved.Accel}, initrd, tap)
	start := time.Now()
	h, err := m.restoreAndRun(ctx, v, snap, spec, stateDir(dir), func(h hypervisor.Handle) error {
		v.Runtime.Handle = &h
		v.Runtime.Resuming = true
		return m.save(ctx, v)
	})
	if err != nil {
		return m.abortResume(ctx, v, err)
	}
	p.Detail("pid %d, %d ms", h.PID, time.Since(start).Milliseconds())
	crashpoint.Here(ctx)
	// The guest has run: the state no longer matches the disks.
	v.State = api.VMRunning
	v.Runtime.Resuming = false
	v.Runtime.Saved = nil
	v.Runtime.StartedAt = m.now()
	if err := m.save(ctx, v); err != nil {
		return err
	}
	if err := os.RemoveAll(stateDir(dir)); err != nil {
		m.Log.Warn("removing a resumed VM's saved state", "vm", v.Name, "error", err)
	}

	p.Stage("clock")
	sess, err := m.waitAgent(ctx, hv, v.ID, h)
	if err != nil {
		return err
	}
	if err := m.setClock(ctx, sess); err != nil {
		p.Logf("could not set the guest's clock: %v", err)
	}
	return nil
}

// abortResume undoes a resume that failed before the guest ran: the
// hypervisor it launched goes, the VM stays paused with its state.
func (m *Manager) abortResume(ctx context.Context, v *VM, err error) error {
	ctx = context.WithoutCancel(ctx)
	if h := v.Runtime.Handle; h != nil {
		if hv, ok := m.Drivers[h.Driver]; ok {
			if st, serr := hv.Status(ctx, *h); serr == nil && st == hypervisor.Running {
				// It ran: the state is spent. Keep the VM running.
				v.State = api.VMRunning
				v.Runtime.Resuming = false
				v.Runtime.Saved = nil
				m.save(ctx, v)
				os.RemoveAll(stateDir(m.Dir(v.ID)))
				return err
			}
		}
	}
	if eerr := m.endHypervisor(ctx, v); eerr != nil {
		m.Log.Error("cleaning up a failed resume", "vm", v.Name, "error", eerr)
	}
	return err
}

// NotPaused is the refusal to resume a VM that is not paused.
func NotPaused(v VM) error {
	if v.State == api.VMRunning {
		return api.Errorf(api.CodeFailedPrecondition, "vm %s is running, not paused: pause it with `banger vm pause %s`", v.Name, v.Name)
	}
	return api.Errorf(api.CodeFailedPrecondition, "vm %s is %s, not paused: start it with `banger vm start %s`", v.Name, v.State, v.Name)
}

// discardState drops a paused VM's saved state (a stop of a paused VM:
// as a power cut, what was in its memory is lost).
func (m *Manager) discardState(ctx context.Context, v *VM) error {
	// halt ends a hypervisor still recorded and returns the TAP.
	if err := os.RemoveAll(stateDir(m.Dir(v.ID))); err != nil {
		return err
	}
	v.Runtime.Saved = nil
	return m.halt(ctx, v, false)
}
