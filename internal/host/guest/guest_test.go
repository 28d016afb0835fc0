package guest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/guest/agent"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// testKey is the fake VM's agent key.
var testKey = []byte("the fake VM's agent key, 32 B...")

// fakeVMs is one VM whose agent is banger-agent's real protocol 2 end,
// served over a pipe with its sessions in a temporary directory.
type fakeVMs struct {
	dir   string // the test's temporary directory
	v     vm.VM
	guest *agentmux.Guest
	sess  *agentmux.Session
}

func (f *fakeVMs) Get(_ context.Context, name string) (vm.VM, error) {
	if name != f.v.Name {
		return vm.VM{}, api.Errorf(api.CodeNotFound, "no VM %q", name)
	}
	return f.v, nil
}

func (f *fakeVMs) Agent(ctx context.Context, name string) (vm.VM, *agentmux.Session, error) {
	v, err := f.Get(ctx, name)
	if err != nil {
		return v, nil, err
	}
	if v.State != api.VMRunning {
		return v, nil, api.Errorf(api.CodeFailedPrecondition, "VM %s is %s", v.Name, v.State)
	}
	return v, f.sess, nil
}

func (f *fakeVMs) SetWorkspace(_ context.Context, name string, ws api.Workspace) error {
	if name != f.v.Name {
		return api.Errorf(api.CodeNotFound, "no VM %q", name)
	}
	b, err := json.Marshal(ws)
	f.v.VM.Workspace = string(b)
	return err
}

// connect gives the fake a new host connection to the same agent, as a
// restarted daemon would make.
func (f *fakeVMs) connect(t *testing.T) {
	t.Helper()
	host, guest := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	go f.guest.Serve(ctx, guest)
	t.Cleanup(cancel)
	sess, err := agentmux.Upgrade(context.Background(), host, testKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	f.sess = sess
}

func setup(t *testing.T) (*Service, *fakeVMs, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.DB().QueryRowContext(ctx, `SELECT 1`).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().ExecContext(ctx, `INSERT INTO images (id, name, state, created_at, updated_at) VALUES ('img', 'base', 'ready', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	rec := store.VM{ID: "vm1", Name: "g", ImageID: "img", State: api.VMRunning}
	if err := st.CreateVM(ctx, rec); err != nil {
		t.Fatal(err)
	}
	g, err := agent.NewGuest(filepath.Join(dir, "sessions"), testKey, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeVMs{dir: dir, v: vm.VM{VM: rec}, guest: g}
	f.connect(t)
	return &Service{VMs: f, Store: st}, f, st
}

func TestSessionsRehydrateAndGoLost(t *testing.T) {
	s, f, st := setup(t)
	ctx := context.Background()

	// Preflight and bad input are refused with API codes; nothing is kept.
	if _, err := s.Start(ctx, "g", api.StartSessionRequest{Argv: []string{"no-such-command"}}); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "not found in PATH") {
		t.Errorf("unknown command: %v", err)
	}
	if _, err := s.Start(ctx, "g", api.StartSessionRequest{Argv: []string{"true"}, Env: []string{"NOEQUALS"}}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("bad env: %v", err)
	}
	if recs, _ := st.ListSessions(ctx, "vm1"); len(recs) != 0 {
		t.Errorf("refused starts were recorded: %+v", recs)
	}

	ses, err := s.Start(ctx, "g", api.StartSessionRequest{Name: "cat", Argv: []string{"cat"}, Env: []string{"SECRET=x"}})
	if err != nil {
		t.Fatal(err)
	}
	if ses.State != api.SessionRunning || ses.VM != "g" || len(ses.EnvKeys) != 1 || ses.EnvKeys[0] != "SECRET" {
		t.Errorf("started: %+v", ses)
	}
	if _, err := s.Start(ctx, "g", api.StartSessionRequest{Name: "cat", Argv: []string{"cat"}}); !errors.Is(err, api.ErrAlreadyExists) {
		t.Errorf("duplicate name: %v", err)
	}

	// The store holds what the guest said, values of env never.
	recs, _ := st.ListSessions(ctx, "vm1")
	if len(recs) != 1 || recs[0].ID != ses.ID || strings.Contains(recs[0].Meta, "SECRET=x") {
		t.Fatalf("store after start: %+v", recs)
	}

	// Attach, write, read back; the output gets offsets.
	stream, _, err := s.Attach(ctx, "g", "cat", -1, true)
	if err != nil {
		t.Fatal(err)
	}
	a := agentmux.NewAttached(stream)
	a.Write([]byte("hello\n"))
	ch, err := a.Next()
	if err != nil || string(ch.Data) != "hello\n" || ch.Offset != 0 {
		t.Fatalf("attach read %+v %v", ch, err)
	}
	a.Close()

	// A new daemon (a new Service over the same store, a new connection
	// to the same agent) lists the session from the guest.
	f.connect(t)
	s2 := &Service{VMs: f, Store: st}
	list, err := s2.List(ctx, "g")
	if err != nil || len(list) != 1 || list[0].State != api.SessionRunning || list[0].OutputBytes != 6 {
		t.Fatalf("after reconnect: %+v %v", list, err)
	}
	// Logs (no follow) replay from the buffer.
	stream, _, err = s2.Attach(ctx, "g", ses.ID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	a = agentmux.NewAttached(stream)
	var got []byte
	for {
		ch, err := a.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ch.Data...)
	}
	if string(got) != "hello\n" {
		t.Errorf("logs: %q", got)
	}

	// Remove refuses a running session; stop, then remove.
	if err := s2.Remove(ctx, "g", "cat"); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("remove running: %v", err)
	}
	if _, err := s2.Signal(ctx, "g", "cat", "NOPE"); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("bad signal: %v", err)
	}
	if _, err := s2.Signal(ctx, "g", "cat", "TERM"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := s2.Get(ctx, "g", "cat")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != api.SessionRunning {
			if got.Signal != "SIGTERM" {
				t.Errorf("after TERM: %+v", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cat did not end after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A second session, then the VM stops: what ran is reported lost,
	// from the store alone.
	sleeper, err := s2.Start(ctx, "g", api.StartSessionRequest{Name: "sleeper", Argv: []string{"sleep", "600"}})
	if err != nil {
		t.Fatal(err)
	}
	f.v.State = api.VMStopped
	list, err = s2.List(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, l := range list {
		states[l.Name] = l.State
	}
	if states["cat"] != api.SessionExited || states["sleeper"] != api.SessionLost {
		t.Errorf("after the VM stopped: %v", states)
	}
	if _, _, err := s2.Attach(ctx, "g", "sleeper", -1, true); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("attach to a lost session: %v", err)
	}
	if err := s2.Remove(ctx, "g", "sleeper"); err != nil {
		t.Errorf("remove lost: %v", err)
	}
	if _, err := s2.Get(ctx, "g", "sleeper"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("removed session still there: %v", err)
	}
	// Clean up the sleeper's process (the guest is this test process) and
	// wait until the agent has recorded its end, so the state directory is
	// quiet when the test's temporary directory goes.
	f.v.State = api.VMRunning
	f.sess.Call(ctx, "session.signal", map[string]string{"session": "sleeper", "signal": "KILL"}, nil)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var rec struct {
			Info struct {
				State string `json:"state"`
			} `json:"info"`
		}
		b, _ := os.ReadFile(filepath.Join(f.dir, "sessions", sleeper.ID+".json"))
		if json.Unmarshal(b, &rec) == nil && rec.Info.State != "" && rec.Info.State != api.SessionRunning {
			break
		}
	}
}
