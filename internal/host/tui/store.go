package tui

import (
	"cmp"
	"slices"

	"github.com/bangerdev/banger/api"
)

// statsHistory is how many stats samples a VM keeps for its sparkline.
const statsHistory = 30

// Store is the daemon's state as the TUI knows it: filled by one list call
// per kind, then changed only by events. Only the App writes it, on the UI
// goroutine.
type Store struct {
	vms        map[string]api.VM
	images     map[string]api.Image
	operations map[string]api.Operation
	// sessions by VM name, then by session ID. A VM is present once its
	// sessions were listed or an event named one of them.
	sessions map[string]map[string]api.Session
	// listed: the VM's sessions were listed (so a count is known).
	listed map[string]bool
	stats  map[string][]api.VMStats
	// sorted is VMs' answer until the VMs change.
	sorted []api.VM
	// Loaded: the first lists arrived.
	Loaded bool
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		vms:        map[string]api.VM{},
		images:     map[string]api.Image{},
		operations: map[string]api.Operation{},
		sessions:   map[string]map[string]api.Session{},
		listed:     map[string]bool{},
		stats:      map[string][]api.VMStats{},
	}
}

// SetVMs replaces every VM (after a list call).
func (s *Store) SetVMs(list []api.VM) {
	s.sorted = nil
	s.vms = make(map[string]api.VM, len(list))
	for _, v := range list {
		s.vms[v.Name] = v
	}
	for name := range s.stats {
		if _, ok := s.vms[name]; !ok {
			delete(s.stats, name)
		}
	}
}

// SetImages replaces every image.
func (s *Store) SetImages(list []api.Image) {
	s.images = make(map[string]api.Image, len(list))
	for _, im := range list {
		s.images[im.Name] = im
	}
}

// SetOperations replaces every operation.
func (s *Store) SetOperations(list []api.Operation) {
	s.operations = make(map[string]api.Operation, len(list))
	for _, op := range list {
		s.operations[op.ID] = op
	}
}

// SetSessions replaces one VM's sessions (after listing them).
func (s *Store) SetSessions(vm string, list []api.Session) {
	m := make(map[string]api.Session, len(list))
	for _, ses := range list {
		m[ses.ID] = ses
	}
	s.sessions[vm] = m
	s.listed[vm] = true
}

// AddStats appends one sample per VM (from one GET /v1/stats).
func (s *Store) AddStats(list []api.VMStats) {
	for _, st := range list {
		h := append(s.stats[st.VM], st)
		if len(h) > statsHistory {
			h = h[len(h)-statsHistory:]
		}
		s.stats[st.VM] = h
	}
}

// Apply changes the store by one event of the feed.
func (s *Store) Apply(ev api.Event) {
	switch ev.Kind {
	case api.EventVM:
		name := ev.Name
		if ev.VMState != nil {
			name = ev.VMState.Name
		}
		_, known := s.vms[name]
		if ev.Removed || !known {
			s.sorted = nil
		} else if i, ok := slices.BinarySearchFunc(s.sorted, name, func(v api.VM, n string) int { return cmp.Compare(v.Name, n) }); ok && ev.VMState != nil {
			// A VM that changed keeps its place: no sort per event.
			s.sorted[i] = *ev.VMState
		}
		if ev.Removed {
			delete(s.vms, name)
			delete(s.stats, name)
			delete(s.sessions, name)
			delete(s.listed, name)
			return
		}
		if ev.VMState != nil {
			s.vms[name] = *ev.VMState
		}
	case api.EventImage:
		name := ev.Name
		if ev.ImageState != nil {
			name = ev.ImageState.Name
		}
		keep(s.images, name, ev.Removed, ev.ImageState)
	case api.EventOperation:
		id := ev.ID
		if ev.OperationState != nil {
			id = ev.OperationState.ID
		}
		keep(s.operations, id, ev.Removed, ev.OperationState)
	case api.EventSession:
		vm, id := ev.VM, ev.ID
		if ev.SessionState != nil {
			vm, id = ev.SessionState.VM, ev.SessionState.ID
		}
		if s.sessions[vm] == nil && !ev.Removed && ev.SessionState != nil {
			s.sessions[vm] = map[string]api.Session{}
		}
		keep(s.sessions[vm], id, ev.Removed, ev.SessionState)
	}
}

// keep records one object's change in m: gone when removed, else its new
// state when the event carries one.
func keep[T any](m map[string]T, key string, removed bool, state *T) {
	switch {
	case removed:
		delete(m, key)
	case state != nil:
		m[key] = *state
	}
}

// VMs returns the VMs sorted by name. The slice is shared until the VMs
// change (each frame draws it): callers must not modify it.
func (s *Store) VMs() []api.VM {
	if s.sorted != nil || len(s.vms) == 0 {
		return s.sorted
	}
	out := make([]api.VM, 0, len(s.vms))
	for _, v := range s.vms {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b api.VM) int { return cmp.Compare(a.Name, b.Name) })
	s.sorted = out
	return out
}

// VMCount is how many VMs there are.
func (s *Store) VMCount() int { return len(s.vms) }

// VM returns one VM by name.
func (s *Store) VM(name string) (api.VM, bool) {
	v, ok := s.vms[name]
	return v, ok
}

// Images returns the images sorted by name.
func (s *Store) Images() []api.Image {
	out := make([]api.Image, 0, len(s.images))
	for _, im := range s.images {
		out = append(out, im)
	}
	slices.SortFunc(out, func(a, b api.Image) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Image returns one image by name.
func (s *Store) Image(name string) (api.Image, bool) {
	im, ok := s.images[name]
	return im, ok
}

// Operations returns the operations, newest first.
func (s *Store) Operations() []api.Operation {
	out := make([]api.Operation, 0, len(s.operations))
	for _, op := range s.operations {
		out = append(out, op)
	}
	slices.SortFunc(out, func(a, b api.Operation) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return out
}

// Operation returns one operation by ID.
func (s *Store) Operation(id string) (api.Operation, bool) {
	op, ok := s.operations[id]
	return op, ok
}

// LastOperation returns the newest operation on target whose kind is one
// of kinds (a VM's last create or start), if any.
func (s *Store) LastOperation(target string, kinds ...string) (api.Operation, bool) {
	var best api.Operation
	found := false
	for _, op := range s.operations {
		if op.Target != target || !slices.Contains(kinds, op.Kind) {
			continue
		}
		if !found || op.CreatedAt.After(best.CreatedAt) {
			best, found = op, true
		}
	}
	return best, found
}

// Sessions returns a VM's sessions, newest first, and whether they were
// listed (else only those events named are known).
func (s *Store) Sessions(vm string) ([]api.Session, bool) {
	out := make([]api.Session, 0, len(s.sessions[vm]))
	for _, ses := range s.sessions[vm] {
		out = append(out, ses)
	}
	slices.SortFunc(out, func(a, b api.Session) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, s.listed[vm]
}

// Stats returns a VM's recent samples, oldest first.
func (s *Store) Stats(vm string) []api.VMStats { return s.stats[vm] }

// LatestStats returns a VM's newest sample.
func (s *Store) LatestStats(vm string) (api.VMStats, bool) {
	h := s.stats[vm]
	if len(h) == 0 {
		return api.VMStats{}, false
	}
	return h[len(h)-1], true
}
