package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// fakeQMP is a QMP server for one connection. It greets (unless greeting
// is ""), then answers each command from replies (keyed by command name,
// each reply is a list of raw JSON lines sent in order) and records the
// commands. A command without a reply closes the connection.
type fakeQMP struct {
	greeting string
	replies  map[string][]string
	got      chan []string
}

func (f *fakeQMP) start(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f.got = make(chan []string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		var cmds []string
		defer func() { f.got <- cmds }()
		if f.greeting == "" {
			io.Copy(io.Discard, conn) // silent until the client hangs up
			return
		}
		conn.Write([]byte(f.greeting + "\r\n"))
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			var req struct {
				Execute string `json:"execute"`
			}
			if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
				return
			}
			cmds = append(cmds, req.Execute)
			lines, ok := f.replies[req.Execute]
			if !ok {
				return
			}
			for _, l := range lines {
				conn.Write([]byte(l + "\r\n"))
			}
		}
	}()
	return path
}

const greeting = `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`

func TestQMP(t *testing.T) {
	ok := `{"return": {}}`
	event := `{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "POWERDOWN"}`
	tests := []struct {
		name     string
		server   fakeQMP
		run      func(q *qmpConn) (string, error)
		want     string
		wantErr  string
		wantCmds []string
	}{
		{
			name: "status running, events skipped",
			server: fakeQMP{greeting: greeting, replies: map[string][]string{
				"qmp_capabilities": {event, ok},
				"query-status":     {event, `{"return": {"status": "running", "singlestep": false, "running": true}}`},
			}},
			run:      func(q *qmpConn) (string, error) { return q.status() },
			want:     "running",
			wantCmds: []string{"qmp_capabilities", "query-status"},
		},
		{
			name: "powerdown",
			server: fakeQMP{greeting: greeting, replies: map[string][]string{
				"qmp_capabilities": {ok}, "system_powerdown": {ok, event},
			}},
			run:      func(q *qmpConn) (string, error) { return "", q.powerdown() },
			wantCmds: []string{"qmp_capabilities", "system_powerdown"},
		},
		{
			name: "quit closing before its reply is success",
			server: fakeQMP{greeting: greeting, replies: map[string][]string{
				"qmp_capabilities": {ok},
			}},
			run:      func(q *qmpConn) (string, error) { return "", q.quit() },
			wantCmds: []string{"qmp_capabilities", "quit"},
		},
		{
			name: "error reply",
			server: fakeQMP{greeting: greeting, replies: map[string][]string{
				"qmp_capabilities": {ok},
				"query-status":     {`{"error": {"class": "CommandNotFound", "desc": "The command query-status has not been found"}}`},
			}},
			run:      func(q *qmpConn) (string, error) { return q.status() },
			wantErr:  "qmp query-status: The command query-status has not been found (CommandNotFound)",
			wantCmds: []string{"qmp_capabilities", "query-status"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.server.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			q, err := dialQMP(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.run(q)
			q.Close()
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
			if diff := cmp.Diff(tt.wantCmds, <-tt.server.got); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDialQMPFailures(t *testing.T) {
	tests := []struct {
		name    string
		server  *fakeQMP // nil: no socket
		wantErr string
	}{
		{"no socket", nil, "connecting to QMP socket"},
		{"not QMP", &fakeQMP{greeting: `{"hello": 1}`}, "not a QMP greeting"},
		{"no greeting before the deadline", &fakeQMP{}, "deadline exceeded"},
		{"capabilities refused", &fakeQMP{greeting: greeting, replies: map[string][]string{
			"qmp_capabilities": {`{"error": {"class": "GenericError", "desc": "no"}}`},
		}}, "qmp qmp_capabilities: no (GenericError)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "none.sock")
			if tt.server != nil {
				path = tt.server.start(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			q, err := dialQMP(ctx, path)
			if err == nil {
				q.Close()
				t.Fatal("dialQMP succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// A QMP socket served by another process than the handle's is not ours.
func TestQMPPeerMismatchIsNotOurs(t *testing.T) {
	srv := &fakeQMP{greeting: greeting, replies: map[string][]string{"qmp_capabilities": {`{"return": {}}`}}}
	path := srv.start(t)
	d := &Driver{Accel: AccelTCG}
	h := hypervisor.Handle{PID: os.Getpid() + 1, ControlSocket: path}
	q, err := d.qmp(context.Background(), h)
	if err == nil {
		q.Close()
		t.Fatal("d.qmp accepted a socket served by this test process for another pid")
	}
	if !errors.Is(err, hypervisor.ErrNotOurs) {
		t.Errorf("error = %v, want ErrNotOurs", err)
	}
}
