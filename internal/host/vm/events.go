package vm

import (
	"context"
	"encoding/json"

	"github.com/bangerdev/banger/api"
)

// changed tells OnChange what the store now holds for the VM: it is read
// back and converted the way GET /v1/vms/{name} does, so the event and a
// fresh GET agree.
func (m *Manager) changed(ctx context.Context, id string) {
	if m.OnChange == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	v, err := m.Get(ctx, id)
	if err != nil {
		m.Log.Warn("reading a changed vm back for the event feed", "vm", id, "error", err)
		return
	}
	a := m.API(ctx, v)
	if !m.news(a) {
		return // a save that changed nothing a front end shows
	}
	m.OnChange(api.Event{Kind: api.EventVM, ID: a.ID, Name: a.Name, VMState: &a})
}

// news reports whether a differs from what was last announced for its VM,
// and remembers it.
func (m *Manager) news(a api.VM) bool {
	b, err := json.Marshal(a)
	if err != nil {
		return true
	}
	prev, loaded := m.announced.Swap(a.ID, string(b))
	return !loaded || prev.(string) != string(b)
}

// removed tells OnChange that the VM's record is gone.
func (m *Manager) removed(v *VM) {
	m.announced.Delete(v.ID)
	if m.OnChange != nil {
		m.OnChange(api.Event{Kind: api.EventVM, ID: v.ID, Name: v.Name, Removed: true})
	}
}

// SessionsChanged announces the VM again after one of its sessions was
// recorded or removed: its Sessions count may have changed.
func (m *Manager) SessionsChanged(ctx context.Context, name string) {
	if v, err := m.Get(ctx, name); err == nil {
		m.changed(ctx, v.ID)
	}
}
