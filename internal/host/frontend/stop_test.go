package frontend

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
)

// quickStop polls often and waits little, so the escalation runs fast;
// the tests never measure time.
func quickStop(o StopOptions) StopOptions {
	o.Poll = time.Millisecond
	if o.KillWait == 0 {
		o.KillWait = 50 * time.Millisecond
	}
	return o
}

// TestStopSession: the signals sent, whether the escalation was
// announced, and the state returned, for sessions that honour SIGTERM,
// ignore it, or ignore everything.
func TestStopSession(t *testing.T) {
	ends := func(sig string) func(*fakeSession) { return func(s *fakeSession) { s.exitLocked(0, sig) } }
	tests := []struct {
		name          string
		honours       map[string]func(*fakeSession)
		o             StopOptions
		wantSignals   []string
		wantEscalated bool
		wantState     string
		wantSignal    string
	}{
		{"TERM honoured", map[string]func(*fakeSession){"TERM": ends("TERM")},
			StopOptions{Timeout: time.Minute}, []string{"TERM"}, false, api.SessionExited, "TERM"},
		{"TERM ignored: KILL after the timeout", map[string]func(*fakeSession){"KILL": ends("KILL")},
			StopOptions{Timeout: 20 * time.Millisecond}, []string{"TERM", "KILL"}, true, api.SessionExited, "KILL"},
		{"nothing ends it: still running after KILL", nil,
			StopOptions{Timeout: 5 * time.Millisecond}, []string{"TERM", "KILL"}, true, api.SessionRunning, ""},
		{"no timeout only signals", map[string]func(*fakeSession){"KILL": ends("KILL")},
			StopOptions{Signal: "INT"}, []string{"INT"}, false, api.SessionRunning, ""},
		{"a signal that ends it at once", map[string]func(*fakeSession){"KILL": ends("KILL")},
			StopOptions{Signal: "KILL"}, []string{"KILL"}, false, api.SessionExited, "KILL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, cl := startFakeDaemon(t)
			s := d.add(api.Session{ID: "ses-1", Name: "echo", PID: 7})
			if tt.honours != nil {
				s.onSignal = tt.honours
			}
			var escalated []api.Session
			o := tt.o
			o.OnEscalate = func(s api.Session) { escalated = append(escalated, s) }
			got, err := StopSession(context.Background(), cl, "demo", "echo", quickStop(o))
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tt.wantState || got.Signal != tt.wantSignal {
				t.Errorf("returned state %s signal %q, want %s %q", got.State, got.Signal, tt.wantState, tt.wantSignal)
			}
			if diff := cmp.Diff(tt.wantSignals, s.signals); diff != "" {
				t.Errorf("signals sent (-want +got):\n%s", diff)
			}
			if tt.wantEscalated != (len(escalated) == 1) || len(escalated) > 1 {
				t.Errorf("OnEscalate called %d times, want escalation %v", len(escalated), tt.wantEscalated)
			}
			if len(escalated) == 1 && escalated[0].State != api.SessionRunning {
				t.Errorf("OnEscalate was told %+v, want the running session", escalated[0])
			}
		})
	}
}

// TestStopSessionContext: ending ctx ends the wait, before any SIGKILL.
func TestStopSessionContext(t *testing.T) {
	d, cl := startFakeDaemon(t)
	s := d.add(api.Session{ID: "ses-1"})
	ctx, cancel := context.WithCancel(context.Background())
	s.onSignal["TERM"] = func(*fakeSession) { cancel() } // ignored, but the user gives up
	_, err := StopSession(ctx, cl, "demo", "ses-1", StopOptions{Timeout: time.Hour, Poll: time.Millisecond})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the cancel", err)
	}
	if diff := cmp.Diff([]string{"TERM"}, s.signals); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
}

// TestStopSessionUnknown: the daemon's refusal comes back as is.
func TestStopSessionUnknown(t *testing.T) {
	_, cl := startFakeDaemon(t)
	if _, err := StopSession(context.Background(), cl, "demo", "nope", StopOptions{}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("got %v, want not found", err)
	}
}

// TestRemoveSession: a session that ended is removed and its cursor
// forgotten; a running one is refused and keeps its cursor.
func TestRemoveSession(t *testing.T) {
	d, cl := startFakeDaemon(t)
	cur := testCursors(t)
	ended := endedSession(d, 0)
	running := d.add(api.Session{ID: "ses-2", Name: "busy"})
	cur.Save("demo", ended.info.ID, 17)
	cur.Save("demo", running.info.ID, 3)

	got, err := RemoveSession(context.Background(), cl, cur, "demo", "echo")
	if err != nil || got.ID != "ses-1" {
		t.Fatalf("RemoveSession(echo) = %+v, %v", got, err)
	}
	if _, ok := d.lookup("ses-1"); ok {
		t.Error("the daemon still has the session")
	}
	if _, ok := cur.Load("demo", "ses-1"); ok {
		t.Error("the cursor of the removed session is still there")
	}
	if _, err := RemoveSession(context.Background(), cl, cur, "demo", "busy"); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("removing a running session: %v, want failed precondition", err)
	}
	if off, ok := cur.Load("demo", "ses-2"); !ok || off != 3 {
		t.Errorf("the running session's cursor is %d (%v), want 3", off, ok)
	}
}
