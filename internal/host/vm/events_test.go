package vm

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/google/go-cmp/cmp"
)

// changeLog is a hand-written OnChange: it records every event.
type changeLog struct {
	mu  sync.Mutex
	evs []api.Event
}

func (c *changeLog) add(ev api.Event) { c.mu.Lock(); c.evs = append(c.evs, ev); c.mu.Unlock() }

// take returns the events recorded since the last take.
func (c *changeLog) take() []api.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.evs
	c.evs = nil
	return out
}

// states renders events as "name state" (or "name removed"), each run of
// repeats once: a stage that saves the runtime without changing the
// state repeats the state.
func states(t *testing.T, evs []api.Event) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		if ev.Kind != api.EventVM {
			t.Errorf("event of kind %s from the vm manager", ev.Kind)
		}
		s := ev.Name + " removed"
		if !ev.Removed {
			if ev.VMState == nil || ev.VMState.ID != ev.ID || ev.VMState.Name != ev.Name {
				t.Fatalf("event %+v: a change must carry the VM it names", ev)
			}
			s = ev.Name + " " + string(ev.VMState.State)
		}
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// TestOnChangeFollowsTheLifecycle: every state the manager records reaches
// OnChange, and the last event of a change is the VM as GET shows it.
func TestOnChangeFollowsTheLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	log := &changeLog{}
	f.m.OnChange = log.add
	asGET := func(name string) api.VM {
		v, err := f.m.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return f.m.API(ctx, v)
	}
	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"create", func() error { _, err := f.m.Create(ctx, req("demo"), &progress{}); return err },
			[]string{"demo creating", "demo running"}},
		{"stop", func() error { _, err := f.m.Stop(ctx, "demo"); return err }, []string{"demo stopped"}},
		// A start records its TAP and hypervisor before the VM runs.
		{"start", func() error { _, err := f.m.Start(ctx, "demo", &progress{}); return err },
			[]string{"demo stopped", "demo running"}},
		{"delete", func() error { return f.m.Delete(ctx, "demo") }, []string{"demo deleting", "demo removed"}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		evs := log.take()
		if diff := cmp.Diff(s.want, states(t, evs)); diff != "" {
			t.Fatalf("%s: states (-want +got):\n%s", s.name, diff)
		}
		if last := evs[len(evs)-1]; !last.Removed {
			if diff := cmp.Diff(asGET("demo"), *last.VMState); diff != "" {
				t.Errorf("%s: the last event is not the VM as GET shows it (-get +event):\n%s", s.name, diff)
			}
		}
	}
}

// TestOnChangeAtReconcile: a VM found dead at daemon start and one a crash
// left half-created are reported; an adopted one has not changed.
func TestOnChangeAtReconcile(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.m.Create(ctx, req("alive"), &progress{})
	dead, _ := f.m.Create(ctx, req("dead"), &progress{})
	f.hv.Crash(*dead.Runtime.Handle)
	half, _ := f.m.Create(ctx, req("half"), &progress{})
	half.State = api.VMCreating
	f.m.save(ctx, &half)

	log := &changeLog{}
	f.m.OnChange = log.add
	if _, err := f.m.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	last := map[string]string{}
	for _, s := range states(t, log.take()) {
		name, state, _ := strings.Cut(s, " ")
		last[name] = state
	}
	if diff := cmp.Diff(map[string]string{"dead": "stopped", "half": "removed"}, last); diff != "" {
		t.Errorf("last reported state per VM (-want +got):\n%s", diff)
	}
}

// A VM shows how many of its sessions run, and SessionsChanged announces
// it again with the new count.
func TestSessionsCountAndAnnounce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.m.Create(ctx, req("busy"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	var log changeLog
	f.m.OnChange = log.add
	for i, st := range []string{api.SessionRunning, api.SessionRunning, api.SessionExited} {
		id := string(rune('a' + i))
		if err := f.m.Store.PutSession(ctx, store.Session{ID: id, VMID: v.ID, Name: id, State: st}); err != nil {
			t.Fatal(err)
		}
	}
	f.m.SessionsChanged(ctx, "busy")
	evs := log.take()
	if len(evs) != 1 || evs[0].VMState == nil || evs[0].VMState.Sessions != 2 {
		t.Fatalf("events %+v, want one vm event with 2 sessions", evs)
	}
	f.m.SessionsChanged(ctx, "busy") // nothing new: not announced again
	if evs := log.take(); len(evs) != 0 {
		t.Errorf("an unchanged VM was announced again: %+v", evs)
	}
	got, err := f.m.Get(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if n := f.m.API(ctx, got).Sessions; n != 2 {
		t.Errorf("API shows %d sessions, want 2", n)
	}
	f.m.SessionsChanged(ctx, "no-such-vm") // a removed VM: nothing to say
	if evs := log.take(); len(evs) != 0 {
		t.Errorf("events for a missing VM: %+v", evs)
	}
}
