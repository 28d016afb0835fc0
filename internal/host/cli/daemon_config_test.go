package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemon"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// bangerdEnv makes the test binary bangerd itself (daemon.Main), so that
// the lifecycle commands start, find and stop a real daemon process.
const bangerdEnv = "BANGER_CLI_TEST_BANGERD"

func init() {
	if os.Getenv(bangerdEnv) == "1" {
		os.Exit(daemon.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// TestDaemonLifecycleWithBrokenConfig: a real bangerd runs with a config
// file that moves its socket (runtime_dir); then the file breaks. daemon
// start and restart refuse with the file's problem and leave the daemon
// running; daemon status, logs and stop work, warning that the file is
// broken, where, and how to check it, and find the daemon through the
// runtime_dir the broken file still names; stop stops it; then status
// starts nothing. Both a bad value and a TOML syntax error.
func TestDaemonLifecycleWithBrokenConfig(t *testing.T) {
	if _, err := os.Stat("/dev/null"); err != nil {
		t.Skip("no /dev/null")
	}
	tests := []struct {
		name   string
		broken string // appended to the good file
	}{
		{name: "bad-value", broken: "[vm]\nvcpus = 0\n"},
		{name: "bad-toml", broken: "[vm\nvcpus = 2\n"},
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := daemontest.ShortTempDir(t)
			t.Setenv(bangerdEnv, "1")
			t.Setenv(config.EnvHome, root)
			env := config.MapEnv(map[string]string{config.EnvHome: root, "HOME": filepath.Join(root, "home")})
			h := &cliHarness{env: env, self: self, norm: newNormalizer(root, self)}
			runtimeDir := filepath.Join(root, "sock")
			pidFile := filepath.Join(runtimeDir, "bangerd.pid")
			sock := filepath.Join(runtimeDir, "bangerd.sock")
			configFile := filepath.Join(root, "config", "config.toml")
			good := "runtime_dir = \"" + runtimeDir + "\"\nlog_level = \"debug\"\n"
			writeFile(t, configFile, good)
			t.Cleanup(func() { killDaemon(pidFile) })

			step := func(golden string, code int, args ...string) cmdResult {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				r := h.run(ctx, args...)
				if r.code != code {
					t.Fatalf("banger %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
				}
				if golden != "" {
					compareGolden(t, filepath.Join("commands", "broken-config-"+tt.name+"-"+golden+".golden"), h.golden(args, r))
				}
				return r
			}
			step("", ExitOK, "daemon", "start")
			pid := readPID(t, pidFile)

			writeFile(t, configFile, good+tt.broken)
			step("start", ExitError, "daemon", "start")
			step("restart", ExitError, "daemon", "restart")
			if got := readPID(t, pidFile); got != pid || !alive(pid) {
				t.Fatalf("after a refused start and restart the daemon is pid %d (alive %v), want pid %d running", got, alive(pid), pid)
			}

			r := step("status", ExitOK, "daemon", "status")
			if !strings.Contains(r.stdout, "pid       "+strconv.Itoa(pid)+"\n") {
				t.Errorf("daemon status did not show pid %d:\n%s", pid, r.stdout)
			}
			r = step("", ExitOK, "daemon", "logs", "--json", "-n", "0")
			if !strings.Contains(r.stdout, `"msg":"bangerd ready"`) || !strings.Contains(r.stderr, "banger config validate") {
				t.Errorf("daemon logs: stdout lacks the daemon's log or stderr the warning:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}

			step("stop", ExitOK, "daemon", "stop")
			if alive(pid) {
				t.Fatalf("daemon stop returned, and pid %d is still alive", pid)
			}
			if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket %s after stop: %v, want it gone", sock, err)
			}

			for _, cmd := range []string{"status", "start", "restart"} {
				step(cmd+"-stopped", ExitError, "daemon", cmd)
				if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("daemon %s with a broken config started a daemon (%s: %v)", cmd, sock, err)
				}
			}
			step("stop-stopped", ExitOK, "daemon", "stop")

			// Fixed, the file starts a daemon again, at its runtime_dir.
			writeFile(t, configFile, good)
			step("", ExitOK, "daemon", "start")
			if _, err := os.Stat(sock); err != nil {
				t.Errorf("daemon start with the fixed config: %v", err)
			}
			step("", ExitOK, "daemon", "stop")
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readPID(t *testing.T, pidFile string) int {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// alive reports whether pid is a process that has not exited.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// killDaemon ends a daemon a failed test left running.
func killDaemon(pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && pid != os.Getpid() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// TestAuthFileWithSpacesBoots: an auth file whose guest path has spaces
// (once refused deep inside every VM start, after config validate had
// passed it) is valid, and a VM created with it gets the file in its boot
// payload: config validation and the boot agree.
func TestAuthFileWithSpacesBoots(t *testing.T) {
	root := daemontest.ShortTempDir(t)
	tok := filepath.Join(root, "tok")
	writeFile(t, tok, "secret-token")
	writeFile(t, filepath.Join(root, "config", "config.toml"), `auth_files = ["`+tok+`:/root/My App/tok"]`+"\n")
	h := newCLIHarness(t, daemontest.Options{Root: root})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if r := h.run(ctx, "config", "validate"); r.code != ExitOK || !strings.Contains(r.stdout, "is valid") {
		t.Fatalf("config validate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := h.run(ctx, "vm", "create", "--name", "spaced"); r.code != ExitOK {
		t.Fatalf("vm create: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	v, err := h.d.Client.VM(ctx, "spaced")
	if err != nil {
		t.Fatal(err)
	}
	initrd, err := os.ReadFile(filepath.Join(h.d.Config.Paths.StateDir, "vms", v.ID, "initrd.img"))
	if err != nil {
		t.Fatal(err)
	}
	// payload.json holds the file's path, and its content in base64.
	for _, want := range []string{`"path":"/root/My App/tok"`, `"data":"c2VjcmV0LXRva2Vu"`} {
		if !strings.Contains(string(initrd), want) {
			t.Errorf("the VM's boot payload lacks %s", want)
		}
	}
}

// daemon logs reads the log while the config file is broken, from the
// state_dir the file still names, with the warning; with no log there it
// says the broken file may be why, in one line.
func TestDaemonLogsWithBrokenConfig(t *testing.T) {
	root := daemontest.ShortTempDir(t)
	state := filepath.Join(root, "elsewhere")
	env := map[string]string{"BANGER_HOME": root, "HOME": filepath.Join(root, "home")}
	configFile := filepath.Join(root, "config", "config.toml")
	writeFile(t, configFile, "state_dir = \""+state+"\"\nhypervisor = \"vmware\"\n")

	_, stderr, code := run(t, env, "daemon", "logs")
	if code != ExitError || strings.Count(stderr, "\n") != 1 ||
		!strings.Contains(stderr, "no daemon log at "+filepath.Join(state, "bangerd.log")) || !strings.Contains(stderr, `hypervisor = "vmware"`) {
		t.Errorf("daemon logs without a log: exit %d, stderr:\n%s", code, stderr)
	}

	writeFile(t, filepath.Join(state, "bangerd.log"), record(1)+"\n")
	out, stderr, code := run(t, env, "daemon", "logs", "--json")
	if code != ExitOK || out != record(1)+"\n" {
		t.Fatalf("daemon logs: exit %d, stdout %q, stderr:\n%s", code, out, stderr)
	}
	for _, want := range []string{"warning: the config file is broken", `hypervisor = "vmware"`, "state_dir from the file", "banger config validate"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("daemon logs' warning lacks %q:\n%s", want, stderr)
		}
	}
}
