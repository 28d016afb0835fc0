package guest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/google/go-cmp/cmp"
)

// changeLog is a hand-written OnChange: it records every event.
type changeLog struct {
	mu  sync.Mutex
	evs []api.Event
}

func (c *changeLog) add(ev api.Event) { c.mu.Lock(); c.evs = append(c.evs, ev); c.mu.Unlock() }

func (c *changeLog) take() []api.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.evs
	c.evs = nil
	return out
}

// sessionStates renders session events as "name state" or "name removed",
// checking that each names its VM and carries the session it names.
func sessionStates(t *testing.T, evs []api.Event) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		if ev.Kind != api.EventSession || ev.VM != "g" {
			t.Errorf("event %+v: want a session event of VM g", ev)
		}
		if ev.Removed {
			out = append(out, ev.Name+" removed")
			continue
		}
		if ev.SessionState == nil || ev.SessionState.ID != ev.ID || ev.SessionState.Name != ev.Name || ev.SessionState.VM != "g" {
			t.Fatalf("event %+v: a change must carry the session it names", ev)
		}
		out = append(out, ev.Name+" "+ev.SessionState.State)
	}
	return out
}

// TestOnChangeFollowsSessions: start, exit (seen by a list), remove, and
// a session lost with its VM each reach OnChange once; a list that finds
// nothing new reports nothing.
func TestOnChangeFollowsSessions(t *testing.T) {
	s, f, _ := setup(t)
	ctx := context.Background()
	log := &changeLog{}
	s.OnChange = log.add

	started, err := s.Start(ctx, "g", api.StartSessionRequest{Name: "cat", Argv: []string{"cat"}})
	if err != nil {
		t.Fatal(err)
	}
	evs := log.take()
	if diff := cmp.Diff([]string{"cat running"}, sessionStates(t, evs)); diff != "" {
		t.Fatalf("start (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(started, *evs[0].SessionState); diff != "" {
		t.Errorf("the start event is not the session Start returned (-start +event):\n%s", diff)
	}
	if _, err := s.List(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if evs := log.take(); len(evs) != 0 {
		t.Errorf("a list that changed nothing reported %v", sessionStates(t, evs))
	}

	if _, err := s.Signal(ctx, "g", "cat", "KILL"); err != nil {
		t.Fatal(err)
	}
	// The exit is recorded when the daemon next asks the guest.
	var seen []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.Get(ctx, "g", "cat")
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, sessionStates(t, log.take())...)
		if got.State != api.SessionRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cat did not end after KILL: %+v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(seen) == 0 || seen[len(seen)-1] != "cat exited" {
		t.Errorf("signal and exit reported %v, want cat exited last", seen)
	}

	if err := s.Remove(ctx, "g", "cat"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"cat removed"}, sessionStates(t, log.take())); diff != "" {
		t.Errorf("remove (-want +got):\n%s", diff)
	}

	if _, err := s.Start(ctx, "g", api.StartSessionRequest{Name: "agent", Argv: []string{"cat"}}); err != nil {
		t.Fatal(err)
	}
	log.take()
	f.v.State = api.VMStopped
	if _, err := s.List(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"agent lost"}, sessionStates(t, log.take())); diff != "" {
		t.Errorf("VM stopped under a running session (-want +got):\n%s", diff)
	}
}
