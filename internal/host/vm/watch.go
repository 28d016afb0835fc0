package vm

import (
	"context"
	"sync"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// Watch notices VMs whose hypervisor ended while the daemon ran (the
// guest powered itself off, the process crashed or was killed) and
// records them stopped, as reconcile does at start: the TAP goes back to
// the pool, the boot key is removed, and the change reaches OnChange (the
// event feed), so no front end shows a dead VM as running; why it
// stopped, with the console's last lines, is kept as its LastExit. It checks
// every interval until ctx ends; a VM busy with another operation (its
// lock held) is left to that operation.
func (m *Manager) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.CheckRunning(ctx)
	}
}

// CheckRunning is one pass of Watch: it returns the names of the VMs it
// found dead and recorded stopped.
func (m *Manager) CheckRunning(ctx context.Context) []string {
	vms, err := m.List(ctx)
	if err != nil {
		m.Log.Warn("watching vms", "error", err)
		return nil
	}
	var gone []string
	for i := range vms {
		v := &vms[i]
		h := v.Runtime.Handle
		if v.State != api.VMRunning || h == nil {
			continue
		}
		hv, ok := m.Drivers[h.Driver]
		if !ok || running(ctx, hv, *h) {
			continue
		}
		unlock, ok := m.tryLock(v.ID)
		if !ok {
			continue // a stop, start or delete is at work on it
		}
		// Re-read under the lock: the VM may have been stopped or
		// restarted since the list.
		cur, err := m.Get(ctx, v.ID)
		if err == nil && cur.State == api.VMRunning && cur.Runtime.Handle != nil &&
			sameProcess(*cur.Runtime.Handle, *h) && !running(ctx, hv, *h) {
			cur.Runtime.LastExit = m.exitReport(ctx, *h, "")
			m.Log.Warn("hypervisor exited while the vm ran: marking it stopped", "vm", cur.Name, "pid", h.PID, "reason", cur.Runtime.LastExit.Reason)
			if err := m.halt(ctx, &cur, false); err != nil {
				m.Log.Warn("recording a dead vm stopped", "vm", cur.Name, "error", err)
			}
			gone = append(gone, cur.Name)
		}
		unlock()
	}
	return gone
}

func sameProcess(a, b hypervisor.Handle) bool {
	return a.PID == b.PID && a.StartTime == b.StartTime && a.Driver == b.Driver
}

// tryLock takes a VM's lock if nobody holds it.
func (m *Manager) tryLock(id string) (func(), bool) {
	v, _ := m.locks.LoadOrStore(id, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	if !mu.TryLock() {
		return nil, false
	}
	return mu.Unlock, true
}
