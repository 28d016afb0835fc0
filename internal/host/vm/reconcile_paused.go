package vm

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// reconcilePaused finishes what a crash interrupted on a paused VM, so
// that it is paused with a state that matches its disks, or stopped:
//   - a resume recorded its hypervisor (Resuming): if that still runs the
//     guest, the resume is finished (the VM runs); if it is paused, the
//     guest never ran and the VM stays paused; if it is gone, the guest
//     may have run, so the state is discarded and the VM is stopped;
//   - a pause recorded the VM paused before its hypervisor ended: it ends;
//   - a resume launched a hypervisor before recording it: it is killed;
//   - the state is missing: the VM is stopped.
func (m *Manager) reconcilePaused(ctx context.Context, v *VM, procs map[int][]string) (Finding, bool) {
	pids := killStraysUnless(m.Dir(v.ID), procs, v.Runtime.Handle)
	if h := v.Runtime.Handle; h != nil {
		hv, ok := m.Drivers[h.Driver]
		st := hypervisor.Stopped
		if ok && hv.Adopt(ctx, *h) == nil {
			st, _ = hv.Status(ctx, *h)
		}
		switch {
		case v.Runtime.Resuming && st == hypervisor.Running:
			v.State = api.VMRunning
			v.Runtime.Resuming, v.Runtime.Saved = false, nil
			m.save(ctx, v)
			os.RemoveAll(stateDir(m.Dir(v.ID)))
			return Finding{VM: v.Name, Action: "adopted", Detail: "its resume was interrupted after the guest ran: finished it"}, true
		case v.Runtime.Resuming && st != hypervisor.Paused:
			v.Runtime.LastExit = m.report("a resume was interrupted and its hypervisor is gone: the guest may have run, so its saved state no longer matches its disks and was discarded", nil)
			if err := m.discardState(ctx, v); err != nil {
				m.Log.Error("discarding a spent saved state", "vm", v.Name, "error", err)
			}
			return Finding{VM: v.Name, Action: "marked stopped", Detail: "its resume was interrupted; the saved state was discarded"}, true
		}
		if err := m.endHypervisor(ctx, v); err != nil {
			m.Log.Error("ending a paused VM's hypervisor", "vm", v.Name, "error", err)
		}
		return Finding{VM: v.Name, Action: "kept paused", Detail: fmt.Sprintf("ended the hypervisor (pid %d) an interrupted pause or resume left", h.PID)}, true
	}
	if _, err := os.Stat(stateDir(m.Dir(v.ID))); errors.Is(err, os.ErrNotExist) {
		v.Runtime.LastExit = m.report("it was paused but its saved state is gone", nil)
		v.Runtime.Saved = nil
		m.halt(ctx, v, false)
		return Finding{VM: v.Name, Action: "marked stopped", Detail: "its saved state is missing"}, true
	}
	if len(pids) > 0 || v.Runtime.TAP != "" || v.Lease.TAP != "" {
		m.endHypervisor(ctx, v)
		return Finding{VM: v.Name, Action: "kept paused", Detail: fmt.Sprintf("an interrupted resume's hypervisor %v and TAP were released", pids)}, true
	}
	return Finding{}, false
}

// tidyStates removes saved states that no longer count: a save that never
// completed (stateTmp), and the state of a VM that is not paused (a
// resume finished with it).
func (m *Manager) tidyStates(v *VM) (Finding, bool) {
	dir := m.Dir(v.ID)
	var removed []string
	paths := []string{stateTmp(dir)}
	if v.State != api.VMPaused {
		paths = append(paths, stateDir(dir))
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			if err := os.RemoveAll(p); err == nil {
				removed = append(removed, p)
			}
		}
	}
	if len(removed) == 0 {
		return Finding{}, false
	}
	return Finding{VM: v.Name, Action: "tidied", Detail: fmt.Sprintf("removed saved state no longer valid: %v", removed)}, true
}
