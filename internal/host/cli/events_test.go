package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/frontend"
)

// TestFeedLine: each kind of change as one human line; what may come
// from a guest (session names, signals, error messages) is escaped.
func TestFeedLine(t *testing.T) {
	at := time.Date(2026, 12, 4, 21, 30, 5, 123e6, time.UTC)
	zero, started := 0, at.Add(-1500*time.Millisecond)
	tests := []struct {
		name string
		ev   api.Event
		want string
	}{
		{"vm running", api.Event{Seq: 12, Kind: api.EventVM, Name: "web", VMState: &api.VM{Name: "web", State: api.VMRunning, IP: "172.30.0.2"}},
			"21:30:05.123  #12    vm        web                      running 172.30.0.2"},
		{"vm creating", api.Event{Seq: 11, Kind: api.EventVM, Name: "web", VMState: &api.VM{Name: "web", State: api.VMCreating, IP: "172.30.0.2"}},
			"21:30:05.123  #11    vm        web                      creating"},
		{"vm removed", api.Event{Seq: 13, Kind: api.EventVM, ID: "vm-1", Name: "web", Removed: true},
			"21:30:05.123  #13    vm        web                      removed"},
		{"image ready", api.Event{Seq: 2, Kind: api.EventImage, Name: "base", ImageState: &api.Image{Name: "base", State: api.ImageReady}},
			"21:30:05.123  #2     image     base                     ready"},
		{"operation at a stage", api.Event{Seq: 3, Kind: api.EventOperation, ID: "op-1", OperationState: &api.Operation{ID: "op-1", Kind: "vm.create", Target: "web", State: api.OperationRunning, CurrentStage: "launch qemu"}},
			"21:30:05.123  #3     operation op-1                     vm.create web: running, launch qemu"},
		{"operation done", api.Event{Seq: 4, Kind: api.EventOperation, ID: "op-1", OperationState: &api.Operation{ID: "op-1", Kind: "doctor", State: api.OperationSucceeded, CreatedAt: started, FinishedAt: at}},
			"21:30:05.123  #4     operation op-1                     doctor: succeeded in 1.5s"},
		{"operation failed", api.Event{Seq: 5, Kind: api.EventOperation, ID: "op-2", OperationState: &api.Operation{ID: "op-2", Kind: "vm.create", State: api.OperationFailed, Error: &api.Error{Message: "guest said \x1b[2Jno"}, FinishedAt: at}},
			`21:30:05.123  #5     operation op-2                     vm.create: failed: guest said \x1b[2Jno`},
		{"session exited", api.Event{Seq: 6, Kind: api.EventSession, ID: "s-1", Name: "agent", VM: "web", SessionState: &api.Session{ID: "s-1", Name: "agent", VM: "web", State: api.SessionExited, ExitCode: &zero}},
			"21:30:05.123  #6     session   web/agent                exited (exit 0)"},
		{"session without a name, killed", api.Event{Seq: 7, Kind: api.EventSession, ID: "s-2", VM: "web", SessionState: &api.Session{ID: "s-2", VM: "web", State: api.SessionExited, Signal: "SIGKILL"}},
			"21:30:05.123  #7     session   web/s-2                  exited (SIGKILL)"},
		{"hostile session name", api.Event{Seq: 8, Kind: api.EventSession, ID: "s-3", Name: "x\x07", VM: "web", SessionState: &api.Session{ID: "s-3", Name: "x\x07", State: api.SessionRunning}},
			`21:30:05.123  #8     session   web/x\x07                running`},
		{"session removed", api.Event{Seq: 9, Kind: api.EventSession, ID: "s-1", Name: "agent", VM: "web", Removed: true},
			"21:30:05.123  #9     session   web/agent                removed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ev.Time = at
			if got := feedLine(tt.ev, time.UTC); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestFeedNotices: connection notices go to stderr; with --json a break
// that lost changes is also a reset line on stdout.
func TestFeedNotices(t *testing.T) {
	tests := []struct {
		name             string
		json, resumed    bool
		items            []frontend.FeedItem
		wantOut, wantErr string
	}{
		{"start", false, false, []frontend.FeedItem{frontend.Reconnected{Reset: true, First: true, Epoch: "e1", Seq: 4}},
			"", "following bangerd's changes (epoch e1, after #4); Ctrl-C stops\n"},
		{"restart, json", true, false, []frontend.FeedItem{
			frontend.Reconnected{Reset: true, First: true, Epoch: "e1"},
			frontend.Disconnected{Err: context.DeadlineExceeded},
			frontend.Reconnected{Reset: true, Epoch: "e2", Seq: 3},
		}, `{"seq":3,"epoch":"e2","time":"0001-01-01T00:00:00Z","kind":"reset"}` + "\n",
			"following bangerd's changes (epoch e1, after #0); Ctrl-C stops\n" +
				"banger: lost bangerd (context deadline exceeded); reconnecting…\n" +
				"connected to bangerd (epoch e2, after #3); changes were missed (it restarted, or no longer keeps them): list again to catch up\n"},
		{"resumed, nothing missed", false, true, []frontend.FeedItem{
			frontend.Reconnected{First: true, Epoch: "e1", Seq: 9},
			frontend.Disconnected{Err: context.Canceled},
			frontend.Reconnected{Epoch: "e1", Seq: 9},
		}, "", "following bangerd's changes (epoch e1, after #9); Ctrl-C stops\n" +
			"banger: lost bangerd (context canceled); reconnecting…\n" +
			"reconnected to bangerd; nothing was missed\n"},
		{"resume refused", true, true, []frontend.FeedItem{frontend.Reconnected{Reset: true, First: true, Epoch: "e2", Seq: 1}},
			`{"seq":1,"epoch":"e2","time":"0001-01-01T00:00:00Z","kind":"reset"}` + "\n",
			"connected to bangerd (epoch e2, after #1); changes were missed (it restarted, or no longer keeps them): list again to catch up\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb strings.Builder
			p := feedPrinter{out: &out, diag: &errb, json: tt.json, resumed: tt.resumed, loc: time.UTC}
			for _, it := range tt.items {
				p.print(it)
			}
			if out.String() != tt.wantOut || errb.String() != tt.wantErr {
				t.Errorf("stdout %q\nwant   %q\nstderr %q\nwant   %q", out.String(), tt.wantOut, errb.String(), tt.wantErr)
			}
		})
	}
}

// TestEventsCommand runs `banger events` against a real bangerd (fake
// hypervisor) and creates a VM: its states are printed as they happen,
// in human form and as JSON lines, until the command is stopped.
func TestEventsCommand(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := config.MapEnv(map[string]string{config.EnvHome: d.Root, "HOME": filepath.Join(d.Root, "home")})
	for i, mode := range []string{"human", "json"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"events"}
			if mode == "json" {
				args = append(args, "--json")
			}
			var out, errb syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan int, 1)
			go func() {
				done <- Run(ctx, args, &App{Stdout: &out, Stderr: &errb, Env: env, UID: os.Getuid(), DaemonBin: self})
			}()
			waitFor(t, "the start notice", func() bool { return strings.Contains(errb.String(), "following bangerd's changes") })
			name := []string{"clivm", "clivm-json"}[i]
			d.CreateVM(t, api.CreateVMRequest{Name: name})
			switch mode {
			case "human":
				waitFor(t, name+" running", func() bool {
					return strings.Contains(out.String(), " vm        "+name+" ") && strings.Contains(out.String(), "running 172.")
				})
			case "json":
				waitFor(t, name+" running", func() bool { return strings.Contains(out.String(), `"state":"running"`) })
				sc := bufio.NewScanner(strings.NewReader(out.String()))
				for sc.Scan() {
					var ev api.Event
					if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Seq == 0 || ev.Epoch == "" {
						t.Errorf("stdout line %q is not a numbered api.Event (%v)", sc.Text(), err)
					}
				}
			}
			cancel()
			select {
			case code := <-done:
				if code != ExitOK {
					t.Errorf("exit %d after Ctrl-C, want 0; stderr %q", code, errb.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("banger events did not stop when its context ended")
			}
		})
	}
	// --epoch alone is a usage error.
	var out, errb syncBuffer
	if code := Run(context.Background(), []string{"events", "--epoch", "e1"}, &App{Stdout: &out, Stderr: &errb, Env: env, UID: os.Getuid(), DaemonBin: self}); code != ExitUsage ||
		!strings.Contains(errb.String(), "--epoch needs --since") {
		t.Errorf("events --epoch alone: exit %d, stderr %q", code, errb.String())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
