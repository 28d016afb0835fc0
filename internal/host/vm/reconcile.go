package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// Finding is one thing reconcile did or could not explain.
type Finding struct {
	VM     string
	Action string // "adopted", "marked stopped", "removed half-created", "deleted", "unexplained"
	Detail string
}

// Reconcile brings the store in line with the host after a daemon start:
// running VMs whose hypervisor is still theirs (pid + start time + control
// socket) are re-adopted and left alone; dead ones are marked stopped and
// their TAP returned; VMs a crash left half-created or half-deleted are
// removed with everything they took; a stopped VM whose start a crash
// interrupted loses the hypervisor it had launched. It never kills a
// running VM that is still its own.
func (m *Manager) Reconcile(ctx context.Context) ([]Finding, error) {
	vms, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []Finding
	var errs []error
	procs := hypervisorProcs(m.strayCommands())
	for i := range vms {
		v := &vms[i]
		switch v.State {
		case api.VMCreating:
			// A create never finished: nothing in it is worth keeping,
			// including a hypervisor launched just before the crash, before
			// its handle was recorded.
			detail := "its create was interrupted"
			if pids := killStrays(m.Dir(v.ID), procs); len(pids) > 0 {
				detail += fmt.Sprintf("; killed its unrecorded hypervisor (pid %v)", pids)
			}
			if err := m.destroy(ctx, v); err != nil {
				errs = append(errs, err)
			}
			out = append(out, Finding{VM: v.Name, Action: "removed half-created", Detail: detail})
		case api.VMDeleting:
			// A delete never finished: finish it.
			detail := "its delete was interrupted"
			if pids := killStrays(m.Dir(v.ID), procs); len(pids) > 0 {
				detail += fmt.Sprintf("; killed its hypervisor (pid %v)", pids)
			}
			if err := m.destroy(ctx, v); err != nil {
				errs = append(errs, err)
			}
			out = append(out, Finding{VM: v.Name, Action: "deleted", Detail: detail})
		case api.VMRunning:
			f := m.readopt(ctx, v)
			if v.State == api.VMRunning {
				f = m.reapplyEgress(ctx, v, f)
			}
			out = append(out, f)
		case api.VMPaused:
			if f, ok := m.reconcilePaused(ctx, v, procs); ok {
				out = append(out, f)
			}
		case api.VMStopped:
			// A stopped VM has no hypervisor: one that runs is from a start
			// the crash interrupted (launched, its handle recorded or not
			// yet), and is killed with everything the start took.
			pids := killStrays(m.Dir(v.ID), procs)
			if v.Runtime.Handle != nil || len(pids) > 0 || v.Runtime.TAP != "" || v.Lease.TAP != "" {
				if err := m.halt(ctx, v, false); err != nil {
					errs = append(errs, err)
				}
				if v.Runtime.Handle != nil || len(pids) > 0 {
					out = append(out, Finding{VM: v.Name, Action: "marked stopped", Detail: fmt.Sprintf("its start was interrupted; killed its hypervisor %v", pids)})
				}
			}
		}
	}
	for i := range vms {
		if f, ok := m.tidyStates(&vms[i]); ok {
			out = append(out, f)
		}
	}
	for _, f := range out {
		m.Log.Info("reconcile", "vm", f.VM, "action", f.Action, "detail", f.Detail)
	}
	return out, errors.Join(errs...)
}

func (m *Manager) readopt(ctx context.Context, v *VM) Finding {
	h := v.Runtime.Handle
	if h == nil {
		v.Runtime.LastExit = m.report("the daemon found it recorded running without a hypervisor handle at its start", nil)
		m.halt(ctx, v, false)
		return Finding{VM: v.Name, Action: "marked stopped", Detail: "no hypervisor handle recorded"}
	}
	hv, ok := m.Drivers[h.Driver]
	if !ok {
		return Finding{VM: v.Name, Action: "unexplained", Detail: fmt.Sprintf("recorded driver %q is unknown to this bangerd", h.Driver)}
	}
	err := hv.Adopt(ctx, *h)
	if err == nil {
		detail := fmt.Sprintf("%s pid %d", h.Driver, h.PID)
		if st, serr := hv.Status(ctx, *h); serr == nil && st == hypervisor.Paused {
			// A save (pause, fork) the crash interrupted left it paused:
			// banger never leaves a running VM's vCPUs stopped.
			return m.finishSave(ctx, v, hv, *h)
		}
		return Finding{VM: v.Name, Action: "adopted", Detail: detail}
	}
	st, serr := hv.Status(ctx, *h)
	if !errors.Is(err, hypervisor.ErrNotOurs) && (serr != nil || st != hypervisor.Stopped) {
		// Alive but not answering: leave it, say so.
		return Finding{VM: v.Name, Action: "unexplained", Detail: fmt.Sprintf("pid %d is alive but does not answer: %v", h.PID, err)}
	}
	// Gone, or the pid now belongs to someone else: our side is cleaned
	// up; the driver's Kill signals only a process that is still the VM's
	// own (pid + start time), so it only removes stale sockets here.
	hc := *h
	v.Runtime.LastExit = m.exitReport(ctx, hc, "found at daemon start")
	hv.Kill(hc)
	v.Runtime.Handle = nil
	m.halt(ctx, v, false)
	return Finding{VM: v.Name, Action: "marked stopped", Detail: fmt.Sprintf("%s pid %d is gone: %v", hc.Driver, hc.PID, err)}
}

func (m *Manager) strayCommands() []string {
	if m.StrayCommands != nil {
		return m.StrayCommands
	}
	return hypervisorCommands
}

// finishSave settles a running VM whose hypervisor a crash left paused by
// a save: when the save was committed (stateDir), the pause is finished;
// otherwise the VM runs on (Resume), or, when its hypervisor cannot take
// its disks back from a completed migration, it is stopped.
func (m *Manager) finishSave(ctx context.Context, v *VM, hv hypervisor.Hypervisor, h hypervisor.Handle) Finding {
	dir := m.Dir(v.ID)
	if sc, ok := hv.(saveChecker); ok {
		// The save may have completed after the daemon died: its state is
		// whole, and the VM is what it says.
		if done, err := sc.SaveCompleted(ctx, h); err == nil && done && syncTree(stateTmp(dir)) == nil {
			commitState(dir)
		}
	}
	if _, err := os.Stat(stateDir(dir)); err == nil {
		v.State = api.VMPaused
		v.Runtime.Saved = &SavedState{Bytes: treeBytes(stateDir(dir)), SavedAt: m.now(), Driver: h.Driver, Accel: h.Accel}
		if err := m.save(ctx, v); err == nil {
			m.endHypervisor(ctx, v)
			return Finding{VM: v.Name, Action: "kept paused", Detail: "its pause was interrupted after the state was saved: finished it"}
		}
	}
	if snap, ok := hv.(hypervisor.Snapshotter); ok {
		if err := snap.Resume(ctx, h); err == nil {
			return Finding{VM: v.Name, Action: "adopted", Detail: fmt.Sprintf("%s pid %d; resumed its vCPUs, which an interrupted save had left paused", h.Driver, h.PID)}
		} else {
			v.Runtime.LastExit = m.report("a save was interrupted after its hypervisor handed its disks over, so it could not run on: "+firstLine(err.Error()), nil)
		}
	}
	m.halt(ctx, v, false)
	return Finding{VM: v.Name, Action: "marked stopped", Detail: "an interrupted save left its hypervisor paused for good"}
}

// saveChecker is a driver that can tell whether a save it began completed
// (QEMU finishes a migration whoever waits for it).
type saveChecker interface {
	SaveCompleted(ctx context.Context, h hypervisor.Handle) (bool, error)
}

// syncTree flushes the files of a directory that holds a state and the
// directory itself.
func syncTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return atomicfile.SyncDir(dir)
}

// reapplyEgress puts an adopted VM's egress policy back in force (the
// daemon's start rebuilt the host's rules); a VM whose policy cannot be is
// stopped, never left running on NAT.
func (m *Manager) reapplyEgress(ctx context.Context, v *VM, f Finding) Finding {
	err := m.applyEgress(v)
	if err == nil {
		return f
	}
	v.Runtime.LastExit = m.report("its egress policy could not be put back in force at the daemon's start: "+err.Error(), nil)
	if herr := m.halt(ctx, v, false); herr != nil {
		m.Log.Error("stopping a VM whose egress policy failed", "vm", v.Name, "error", herr)
	}
	return Finding{VM: v.Name, Action: "marked stopped", Detail: err.Error()}
}
