package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemonctl"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// fakeSystemdBin is a directory for PATH holding a systemctl that answers
// is-active and is-enabled as enabled says (a unit enabled and running,
// or neither) and a journalctl that prints a line; both
// record their arguments, one call a line, in calls.
func fakeSystemdBin(t *testing.T, enabled bool) (bin, calls string) {
	t.Helper()
	bin = t.TempDir()
	calls = filepath.Join(bin, "calls")
	answer := "exit 1"
	if enabled {
		answer = "exit 0"
	}
	scripts := map[string]string{
		"systemctl":  "#!/bin/sh\necho \"systemctl $*\" >>" + calls + "\ncase \"$*\" in *is-enabled*|*is-active*) " + answer + ";; esac\nexit 3\n",
		"journalctl": "#!/bin/sh\necho \"journalctl $*\" >>" + calls + "\necho 'Dec 05 07:00:00 host bangerd[42]: level=INFO msg=\"bangerd ready\"'\n",
	}
	for name, text := range scripts {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin, calls
}

// whereBooted returns calls on a host systemd runs, else nothing.
func whereBooted(calls ...string) []string {
	if fi, err := os.Stat(daemonctl.BootedDir); err == nil && fi.IsDir() {
		return calls
	}
	return nil
}

// daemon logs reads the journal through journalctl when systemd manages
// bangerd (the unit for the CLI's user: system for root, --user for
// others), and the log file when the unit is not in use.
func TestDaemonLogsUnderSystemd(t *testing.T) {
	tests := []struct {
		name      string
		enabled   bool
		uid       int
		args      []string
		wantCalls []string
		wantOut   string
	}{
		{
			name: "root, unit enabled", enabled: true, uid: 0, args: []string{"daemon", "logs", "-n", "5"},
			wantCalls: []string{"systemctl is-active --quiet bangerd.service", "journalctl --unit bangerd.service --no-pager --lines 5"},
			wantOut:   "bangerd[42]: level=INFO",
		},
		{
			name: "a user, unit enabled, follow as JSON", enabled: true, uid: 1000, args: []string{"daemon", "logs", "-f", "--json", "-n", "0"},
			wantCalls: []string{"systemctl --user is-active --quiet bangerd.service", "journalctl --user --unit bangerd.service --no-pager --lines all --follow --output json"},
			wantOut:   "bangerd[42]: level=INFO",
		},
		{
			name: "unit disabled: the log file", enabled: false, uid: 0, args: []string{"daemon", "logs"},
			// is-enabled is asked only where systemd runs (daemonctl.BootedDir).
			wantCalls: append([]string{"systemctl is-active --quiet bangerd.service"}, whereBooted("systemctl is-enabled --quiet bangerd.service")...),
			wantOut:   "from the file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin, calls := fakeSystemdBin(t, tt.enabled)
			home := t.TempDir()
			state := filepath.Join(home, "state", "banger")
			os.MkdirAll(state, 0o700)
			os.WriteFile(filepath.Join(state, "bangerd.log"), []byte(`{"msg":"from the file"}`+"\n"), 0o600)
			var stdout, stderr bytes.Buffer
			app := &App{
				Stdout: &stdout, Stderr: &stderr, UID: tt.uid,
				Env: config.MapEnv(map[string]string{
					"PATH": bin, "HOME": home, "XDG_STATE_HOME": filepath.Join(home, "state"),
					"XDG_RUNTIME_DIR": filepath.Join(home, "run"), "XDG_CONFIG_HOME": filepath.Join(home, "config"),
				}),
			}
			if code := Run(context.Background(), tt.args, app); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantOut)
			}
			b, _ := os.ReadFile(calls)
			if d := cmp.Diff(tt.wantCalls, strings.Split(strings.TrimSpace(string(b)), "\n")); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
		})
	}
}

// With the unit enabled, daemon start asks systemd and never spawns
// bangerd: a unit that fails to start is reported with systemctl's words
// and where to look, and the installed bangerd is not run.
func TestDaemonStartUnderSystemd(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >>"+calls+"\ncase \"$1\" in is-active) exit 0;; start) echo 'Job for bangerd.service failed.' >&2; exit 1;; esac\nexit 3\n"), 0o755)
	marker := filepath.Join(bin, "spawned")
	daemonBin := filepath.Join(bin, "bangerd")
	os.WriteFile(daemonBin, []byte("#!/bin/sh\ntouch "+marker+"\nexit 1\n"), 0o755)
	home := daemontest.ShortTempDir(t) // the state directory's sockets must fit
	var stdout, stderr bytes.Buffer
	app := &App{
		Stdout: &stdout, Stderr: &stderr, UID: 0, DaemonBin: daemonBin,
		Env: config.MapEnv(map[string]string{
			"PATH": bin, "HOME": home, "XDG_RUNTIME_DIR": filepath.Join(home, "run"),
		}),
	}
	if code := Run(context.Background(), []string{"daemon", "start"}, app); code == 0 {
		t.Fatalf("daemon start succeeded with a failing unit: %s", stdout.String())
	}
	want := "systemctl start bangerd.service failed: Job for bangerd.service failed.; see `systemctl status bangerd.service` and `journalctl -u bangerd`"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr:\n%s\nwant it to contain:\n%s", stderr.String(), want)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("banger spawned bangerd while systemd manages it")
	}
	b, _ := os.ReadFile(calls)
	if d := cmp.Diff("is-active --quiet bangerd.service\nstart bangerd.service\n", string(b)); d != "" {
		t.Errorf("systemctl calls (-want +got):\n%s", d)
	}
}
