package guest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/store"
)

// putStored records a session in the store only, as a daemon that died
// would have left it; the guest knows nothing of it.
func putStored(t *testing.T, st *store.Store, vmID string, ses api.Session, meta string) {
	t.Helper()
	if meta == "" {
		b, err := json.Marshal(ses)
		if err != nil {
			t.Fatal(err)
		}
		meta = string(b)
	}
	if err := st.PutSession(context.Background(), store.Session{ID: ses.ID, VMID: vmID, Name: ses.Name, State: ses.State, Meta: meta}); err != nil {
		t.Fatal(err)
	}
}

// storedStates reads back what the store says of each session.
func storedStates(t *testing.T, st *store.Store, vmID string) map[string]api.Session {
	t.Helper()
	recs, err := st.ListSessions(context.Background(), vmID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]api.Session{}
	for _, r := range recs {
		var ses api.Session
		if err := json.Unmarshal([]byte(r.Meta), &ses); err != nil {
			t.Fatalf("stored meta of %s: %v", r.ID, err)
		}
		if ses.State != r.State {
			t.Errorf("session %s: state column %q, meta %q", r.ID, r.State, ses.State)
		}
		out[r.ID] = ses
	}
	return out
}

// TestRehydrationEdges: what the store remembers is reconciled with what
// the guest knows, on a running and on a stopped VM, without piling up
// diagnostics on repeated lists and whatever shape the stored row is in.
func TestRehydrationEdges(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		vmState   string
		stored    api.Session
		meta      string // "" stores the session as JSON
		wantState string
		wantDiag  string
	}{
		{"running but unknown to a running guest", api.VMRunning,
			api.Session{ID: "ghost", Name: "ghost", Argv: []string{"sleep", "1"}, State: api.SessionRunning},
			"", api.SessionLost, "the guest no longer knows this session (the VM restarted while it ran)"},
		{"running while the VM is stopped", api.VMStopped,
			api.Session{ID: "ghost", Name: "ghost", State: api.SessionRunning},
			"", api.SessionLost, "the VM g was stopped while the session ran"},
		{"exited stays exited", api.VMRunning,
			api.Session{ID: "done", Name: "done", State: api.SessionExited, Diagnostics: []string{"exit 0"}},
			"", api.SessionExited, ""},
		{"corrupt metadata falls back to the row", api.VMStopped,
			api.Session{ID: "broken", Name: "broken", State: api.SessionRunning},
			"{not json", api.SessionLost, "the VM g was stopped while the session ran"},
		{"metadata without an id falls back to the row", api.VMRunning,
			api.Session{ID: "noid", Name: "noid", State: api.SessionRunning},
			`{"name":"other"}`, api.SessionLost, "the guest no longer knows this session (the VM restarted while it ran)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, st := setup(t)
			f.v.State = tt.vmState
			putStored(t, st, "vm1", tt.stored, tt.meta)
			for round := 1; round <= 2; round++ {
				list, err := s.List(ctx, "g")
				if err != nil {
					t.Fatal(err)
				}
				if len(list) != 1 {
					t.Fatalf("round %d: list %+v, want the one stored session", round, list)
				}
				got := list[0]
				if got.ID != tt.stored.ID || got.Name != tt.stored.Name || got.VM != "g" || got.State != tt.wantState {
					t.Errorf("round %d: listed %+v, want %s/%s on g in state %s", round, got, tt.stored.ID, tt.stored.Name, tt.wantState)
				}
				wantDiags := tt.stored.Diagnostics
				if tt.wantDiag != "" {
					wantDiags = append(append([]string{}, wantDiags...), tt.wantDiag)
				}
				// Listing again must not add the reason a second time.
				if diff := cmp.Diff(wantDiags, got.Diagnostics); diff != "" {
					t.Errorf("round %d: diagnostics (-want +got):\n%s", round, diff)
				}
				if tt.wantState == api.SessionLost && got.AttachCount != 0 {
					t.Errorf("a lost session counts %d attachers", got.AttachCount)
				}
			}
			if st := storedStates(t, st, "vm1")[tt.stored.ID]; st.State != tt.wantState {
				t.Errorf("store keeps %q, want %q", st.State, tt.wantState)
			}
		})
	}
}

// TestSessionsStayWithTheirVM: a session stored for another VM never
// shows in this VM's list, and lookups by id and by name find the same
// session.
func TestSessionsStayWithTheirVM(t *testing.T) {
	s, f, st := setup(t)
	ctx := context.Background()
	f.v.State = api.VMStopped
	if err := st.CreateVM(ctx, store.VM{ID: "vm2", Name: "other", ImageID: "img", State: api.VMStopped}); err != nil {
		t.Fatal(err)
	}
	putStored(t, st, "vm2", api.Session{ID: "theirs", Name: "shared-name", State: api.SessionExited}, "")
	putStored(t, st, "vm1", api.Session{ID: "mine", Name: "shared-name", State: api.SessionExited}, "")
	list, err := s.List(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "mine" {
		t.Fatalf("list of g: %+v, want only its own session", list)
	}
	for _, ref := range []string{"mine", "shared-name"} {
		got, err := s.Get(ctx, "g", ref)
		if err != nil || got.ID != "mine" {
			t.Errorf("Get(%q) = %s, %v; want mine", ref, got.ID, err)
		}
	}
	_, err = s.Get(ctx, "g", "theirs")
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "`banger vm session list g`") {
		t.Errorf("Get of another VM's session: %v, want not_found naming the list command", err)
	}
	if _, err := s.List(ctx, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("List of a missing VM: %v", err)
	}
}

// TestLostSessionActions: a lost session cannot be signalled or attached,
// and removing it needs no guest (the VM may be gone).
func TestLostSessionActions(t *testing.T) {
	s, f, st := setup(t)
	ctx := context.Background()
	f.v.State = api.VMStopped
	putStored(t, st, "vm1", api.Session{ID: "lost1", Name: "agent", State: api.SessionRunning}, "")
	if _, err := s.Signal(ctx, "g", "agent", "TERM"); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "is lost: nothing to signal") {
		t.Errorf("signal of a lost session: %v", err)
	}
	if _, _, err := s.Attach(ctx, "g", "agent", -1, true); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "the VM g was stopped while the session ran") {
		t.Errorf("attach to a lost session: %v", err)
	}
	if err := s.Remove(ctx, "g", "agent"); err != nil {
		t.Fatalf("remove of a lost session on a stopped VM: %v", err)
	}
	if got := storedStates(t, st, "vm1"); len(got) != 0 {
		t.Errorf("store after remove: %+v", got)
	}
	if err := s.Remove(ctx, "g", "agent"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("second remove: %v, want not_found", err)
	}
}

// TestStartRefusals: bad requests are refused before the agent is asked
// and leave nothing in the store.
func TestStartRefusals(t *testing.T) {
	s, _, st := setup(t)
	ctx := context.Background()
	tests := []struct {
		name           string
		req            api.StartSessionRequest
		field, allowed string
		msg            string
	}{
		{"no command", api.StartSessionRequest{Name: "x"}, "argv", AllowedArgv, "argv is empty: a session needs a command to run"},
		{"env without =", api.StartSessionRequest{Argv: []string{"true"}, Env: []string{"PATH"}}, "env", AllowedEnv, `env entry "PATH" is not KEY=VALUE`},
		{"env with an empty key", api.StartSessionRequest{Argv: []string{"true"}, Env: []string{"A=1", "=x"}}, "env", AllowedEnv, `env entry "=x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Start(ctx, "g", tt.req)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || !strings.Contains(err.Error(), tt.msg) ||
				ae.Field != tt.field || ae.Allowed != tt.allowed {
				t.Errorf("got %#v, want invalid_argument about %s (%s) containing %q", err, tt.field, tt.allowed, tt.msg)
			}
		})
	}
	if got := storedStates(t, st, "vm1"); len(got) != 0 {
		t.Errorf("refused starts left %+v in the store", got)
	}
}
