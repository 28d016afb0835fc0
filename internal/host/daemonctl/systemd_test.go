package daemonctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemon"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// envHelperDaemon makes the test binary a bangerd "started by systemd"
// (reporting managed_by systemd) rooted at the variable's value: the fake
// systemctl runs it as the unit's daemon.
const envHelperDaemon = "BANGER_TEST_UNIT_DAEMON"

func TestMain(m *testing.M) {
	if root := os.Getenv(envHelperDaemon); root != "" {
		os.Exit(helperDaemon(root))
	}
	os.Exit(m.Run())
}

func helperDaemon(root string) int {
	env := config.MapEnv(map[string]string{config.EnvHome: root, "HOME": filepath.Join(root, "home")})
	paths, err := config.DefaultPaths(env, os.Getuid())
	if err == nil {
		var cfg *config.Config
		if cfg, err = config.Load(paths, env); err == nil {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
			defer stop()
			err = daemon.Run(ctx, daemon.Options{Config: cfg, ManagedBy: "systemd", LogTo: io.Discard})
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// fakeSystemd is a systemctl on a directory of its own: it records each
// call's arguments, answers is-enabled and is-active from the files
// "enabled" and "active", and runs the unit's daemon (the test binary as
// helperDaemon) on start, stop and restart, as systemd would.
type fakeSystemd struct {
	dir  string
	unit *Unit
}

func newFakeSystemd(t *testing.T, root string, enabled bool) *fakeSystemd {
	t.Helper()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`#!/bin/sh
d=%[1]q
echo "$*" >>"$d/calls"
stop() {
	[ -s "$d/pid" ] || return 0
	pid=$(cat "$d/pid"); kill "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
	rm -f "$d/pid" "$d/active"
}
case "$1 $2" in
"is-enabled --quiet") [ -e "$d/enabled" ]; exit ;;
"is-active --quiet") [ -e "$d/active" ]; exit ;;
esac
case "$1" in
stop) stop ;;
start|restart)
	[ "$1" = restart ] && stop
	[ -s "$d/pid" ] && exit 0
	%[2]s=%[3]q %[4]q -test.run='^$' </dev/null >>"$d/out" 2>&1 &
	echo $! >"$d/pid"; touch "$d/active" ;;
*) echo "fake systemctl: $*" >&2; exit 1 ;;
esac
`, dir, envHelperDaemon, root, exe)
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if enabled {
		os.WriteFile(filepath.Join(dir, "enabled"), nil, 0o644)
	}
	f := &fakeSystemd{dir: dir, unit: &Unit{Systemctl: filepath.Join(dir, "systemctl"), Booted: true}}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
			var pid int
			fmt.Sscan(string(b), &pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return f
}

// calls returns the recorded systemctl calls, and forgets them.
func (f *fakeSystemd) calls() []string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "calls"))
	os.Remove(filepath.Join(f.dir, "calls"))
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

// With the unit enabled, banger never spawns a daemon: Start runs
// `systemctl start` and waits for the unit's daemon, Restart and Stop go
// through systemctl too, and the installed bangerd is never executed.
func TestSystemdManagedDaemon(t *testing.T) {
	root := daemontest.ShortTempDir(t)
	sd := newFakeSystemd(t, root, true)
	marker := filepath.Join(t.TempDir(), "spawned")
	bin := filepath.Join(filepath.Dir(marker), "bangerd")
	os.WriteFile(bin, []byte("#!/bin/sh\ntouch "+marker+"\nexit 1\n"), 0o755)
	ctl := &Controller{Paths: daemontest.Config(t, root).Paths, DaemonBin: bin, Notices: io.Discard, Unit: sd.unit}
	ctx := context.Background()

	st, err := ctl.Start(ctx)
	if err != nil {
		t.Fatalf("Start: %v (unit daemon output: %s)", err, readFile(filepath.Join(sd.dir, "out")))
	}
	if st.ManagedBy != "systemd" {
		t.Errorf("started daemon reports managed_by %q, want systemd", st.ManagedBy)
	}
	if d := cmp.Diff([]string{"is-active_--quiet_bangerd.service", "is-enabled_--quiet_bangerd.service", "start_bangerd.service"}, sd.calls()); d != "" {
		t.Errorf("systemctl calls of Start (-want +got):\n%s", d)
	}

	st2, err := ctl.Restart(ctx)
	if err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if st2.PID == st.PID {
		t.Errorf("Restart answered with the old daemon (pid %d)", st.PID)
	}
	if d := cmp.Diff([]string{"is-active_--quiet_bangerd.service", "restart_bangerd.service"}, sd.calls()); d != "" {
		t.Errorf("systemctl calls of Restart (-want +got):\n%s", d)
	}

	if err := ctl.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := cmp.Diff([]string{"stop_bangerd.service"}, sd.calls()); d != "" {
		t.Errorf("systemctl calls of Stop (-want +got):\n%s", d)
	}
	if processAlive(st2.PID) {
		t.Errorf("the unit's daemon (pid %d) still runs after Stop", st2.PID)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("banger spawned bangerd itself while systemd manages it")
	}
}

// A unit that is installed but neither enabled nor active leaves the
// daemon to banger: Start asks systemctl, then spawns bangerd itself.
func TestSystemdUnitNotInUse(t *testing.T) {
	root := daemontest.ShortTempDir(t)
	sd := newFakeSystemd(t, root, false)
	marker := filepath.Join(t.TempDir(), "spawned")
	bin := filepath.Join(filepath.Dir(marker), "bangerd")
	os.WriteFile(bin, []byte("#!/bin/sh\ntouch "+marker+"\necho refused >&2\nexit 1\n"), 0o755)
	ctl := &Controller{Paths: daemontest.Config(t, root).Paths, DaemonBin: bin, Notices: io.Discard, Unit: sd.unit}
	_, err := ctl.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Start = %v, want the spawned stand-in's failure", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("banger did not spawn bangerd with the unit disabled")
	}
	if d := cmp.Diff([]string{"is-active_--quiet_bangerd.service", "is-enabled_--quiet_bangerd.service"}, sd.calls()); d != "" {
		t.Errorf("systemctl calls (-want +got):\n%s", d)
	}
}

// On a host systemd does not run (a container, a chroot), an enabled unit
// is only files: banger starts the daemon itself; an active one (systemd
// says it runs) still counts.
func TestSystemdNotBooted(t *testing.T) {
	root := daemontest.ShortTempDir(t)
	sd := newFakeSystemd(t, root, true)
	sd.unit.Booted = false
	ctx := context.Background()
	if sd.unit.Manages(ctx) {
		t.Error("an enabled unit counts on a host systemd does not run")
	}
	if d := cmp.Diff([]string{"is-active_--quiet_bangerd.service"}, sd.calls()); d != "" {
		t.Errorf("systemctl calls (-want +got):\n%s", d)
	}
	os.WriteFile(filepath.Join(sd.dir, "active"), nil, 0o644)
	if !sd.unit.Manages(ctx) {
		t.Error("an active unit does not count")
	}
}

// FindUnit looks systemctl up on the CLI's PATH, picks the user manager
// for everyone but root, and stays out of a BANGER_HOME.
func TestFindUnit(t *testing.T) {
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\n"), 0o755)
	tests := []struct {
		name string
		env  map[string]string
		uid  int
		want *Unit
	}{
		{"root: the system unit", map[string]string{"PATH": "/nonexistent:" + bin}, 0, &Unit{Systemctl: filepath.Join(bin, "systemctl")}},
		{"a user: the user unit", map[string]string{"PATH": bin}, 1000, &Unit{Systemctl: filepath.Join(bin, "systemctl"), User: true}},
		{"no systemctl", map[string]string{"PATH": t.TempDir()}, 0, nil},
		{"relative PATH entries are ignored", map[string]string{"PATH": "."}, 0, nil},
		{"BANGER_HOME", map[string]string{"PATH": bin, config.EnvHome: "/x"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want != nil {
				_, err := os.Stat(BootedDir)
				tt.want.Booted = err == nil
			}
			if d := cmp.Diff(tt.want, FindUnit(config.MapEnv(tt.env), tt.uid)); d != "" {
				t.Errorf("FindUnit (-want +got):\n%s", d)
			}
		})
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
