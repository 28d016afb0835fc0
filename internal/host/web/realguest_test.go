package web_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/guest/agent"
	"github.com/bangerdev/banger/internal/host/guest"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/host/web"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// agentKey is the stand-in VM's agent key.
var agentKey = []byte("the web test VM's agent key, 32B")

// oneVM is a running VM whose agent is banger-agent's real protocol 2
// end over a pipe, running its sessions as local processes.
type oneVM struct {
	v    vm.VM
	sess *agentmux.Session
}

func (o *oneVM) Get(_ context.Context, name string) (vm.VM, error) {
	if name != o.v.Name {
		return vm.VM{}, api.Errorf(api.CodeNotFound, "no VM %q", name)
	}
	return o.v, nil
}

func (o *oneVM) Agent(ctx context.Context, name string) (vm.VM, *agentmux.Session, error) {
	v, err := o.Get(ctx, name)
	return v, o.sess, err
}

func (o *oneVM) SetWorkspace(_ context.Context, name string, ws api.Workspace) error {
	if name != o.v.Name {
		return api.Errorf(api.CodeNotFound, "no VM %q", name)
	}
	b, err := json.Marshal(ws)
	o.v.VM.Workspace = string(b)
	return err
}

// realGuest is the daemon's guest service over a real agent: the path a
// terminal takes in bangerd, short of the VM.
func realGuest(t *testing.T) *guest.Service {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.DB().ExecContext(ctx, `INSERT INTO images (id, name, state, created_at, updated_at) VALUES ('img', 'base', 'ready', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	rec := store.VM{ID: "vm1", Name: "dev", ImageID: "img", State: api.VMRunning}
	if err := st.CreateVM(ctx, rec); err != nil {
		t.Fatal(err)
	}
	g, err := agent.NewGuest(filepath.Join(dir, "sessions"), agentKey, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	host, end := net.Pipe()
	gctx, cancel := context.WithCancel(context.Background())
	go g.Serve(gctx, end)
	t.Cleanup(cancel)
	sess, err := agentmux.Upgrade(ctx, host, agentKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return &guest.Service{VMs: &oneVM{v: vm.VM{VM: rec}, sess: sess}, Store: st}
}

// readUntil reads output until it holds want (control messages are
// skipped), and returns it.
func readUntil(t *testing.T, c *websocket.Conn, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out strings.Builder
	for !strings.Contains(out.String(), want) {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v; output so far %q", want, err, out.String())
		}
		if typ == websocket.MessageBinary {
			out.Write(b)
		}
	}
	return out.String()
}

// TestTerminalRealAgent runs the terminal on GuestTerminals over the
// guest service and a real agent: a TTY shell answers typed input, takes
// the browser's size, replays its output to a second viewer that joins
// later, and its exit ends both terminals with the session's exit code.
func TestTerminalRealAgent(t *testing.T) {
	g := realGuest(t)
	f := newFixtureWith(t, web.GuestTerminals(g))
	ctx := context.Background()
	ses, err := g.Start(ctx, "dev", api.StartSessionRequest{Name: "shell", Argv: []string{"sh"}, TTY: true, Rows: 24, Cols: 80,
		Env: []string{"PS1=$ ", "TERM=dumb"}})
	if err != nil {
		t.Fatal(err)
	}
	cookie := f.login(t)
	path := "/v1/vms/dev/sessions/" + ses.ID + "/terminal"
	a := f.dial(t, cookie, path)
	var m message
	readText(t, a, &m)
	if m.Type != "session" || m.Session.ID != ses.ID || !m.Session.TTY {
		t.Fatalf("first message %+v, want the session", m)
	}

	sendJSON(t, a, map[string]any{"type": "resize", "rows": 33, "cols": 101})
	sendJSON(t, a, map[string]any{"type": "input", "data": "echo hi; stty size\r"})
	readUntil(t, a, "33 101")

	// A second browser joins later: the shell's output is replayed.
	b := f.dial(t, f.login(t), path+"?since=0")
	readText(t, b, &m)
	readUntil(t, b, "33 101")

	sendJSON(t, b, map[string]any{"type": "input", "data": "exit 3\r"})
	for _, c := range []*websocket.Conn{a, b} {
		for {
			typ, data := read(t, c)
			if typ == websocket.MessageBinary {
				continue
			}
			var m message
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			if m.Type != "exit" {
				continue
			}
			if m.Session.State != api.SessionExited || m.Session.ExitCode == nil || *m.Session.ExitCode != 3 {
				t.Errorf("exit message %+v, want exited with 3", m.Session)
			}
			break
		}
		if status, reason := closed(t, c); status != websocket.StatusNormalClosure || reason != "session ended" {
			t.Errorf("closed with %d %q", status, reason)
		}
	}
}
