package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/createbench"
	"github.com/spf13/cobra"
)

// Every command a user can reach has a short description and examples.
func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	root := newRootCmd(&App{})
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		t.Run(c.CommandPath(), func(t *testing.T) {
			if c.Short == "" {
				t.Error("no Short description")
			}
			// Cobra's generated completion commands carry their own long help.
			generated := strings.Contains(c.CommandPath(), "completion")
			if c.Example == "" && !generated {
				t.Error("no Example")
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func run(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &App{Stdout: &out, Stderr: &errb, Env: config.MapEnv(env)})
	return out.String(), errb.String(), code
}

func TestUsageErrors(t *testing.T) {
	env := map[string]string{"BANGER_HOME": t.TempDir(), "HOME": t.TempDir()}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"explode"}, `unknown command "explode"`},
		{[]string{"daemon", "explode"}, `unknown command "explode" for "banger daemon"`},
		{[]string{"version", "extra"}, "takes no arguments"},
		{[]string{"operation", "show"}, "wants an operation id"},
		{[]string{"doctor", "--frobnicate"}, "unknown flag: --frobnicate"},
		{[]string{"vm", "exec", "demo"}, "wants a VM name and a command after --"},
		{[]string{"vm", "cp", "a", "b"}, "exactly one of SRC and DEST must be VM:/PATH"},
		{[]string{"vm", "cp", "demo:/a", "other:/b"}, "exactly one of SRC and DEST must be VM:/PATH"},
		{[]string{"vm", "cp", "./a", "demo:relative"}, "the guest path must be absolute"},
		{[]string{"vm", "workspace", "prepare"}, "wants a VM name and at most one path"},
		{[]string{"vm", "workspace", "prepare", "demo", ".", "--mode", "rsync"}, `unknown workspace mode "rsync"`},
		{[]string{"vm", "run", "a", "b"}, "takes at most one path"},
		{[]string{"vm", "run", "--mode", "zip"}, `unknown workspace mode "zip"`},
		{[]string{"vm", "session", "start", "demo"}, "wants a VM and a command after --"},
		{[]string{"vm", "session", "attach", "demo", "s", "--stdin-eof", "maybe"}, `--stdin-eof "maybe": want keep, close or detach`},
		{[]string{"vm", "session", "attach", "demo"}, "VM SESSION"},
		{[]string{"vm", "session", "attach", "demo", "s", "--since", "yesterday"}, `--since "yesterday": want resume, all, now or a byte offset`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, stderr, code := run(t, env, tt.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr %q, want one line containing %q", stderr, tt.want)
			}
		})
	}
}

// config commands work without a daemon and print what the daemon would use.
func TestConfigCommandsNeedNoDaemon(t *testing.T) {
	home := t.TempDir()
	env := map[string]string{"BANGER_HOME": home, "HOME": t.TempDir()}
	out, _, code := run(t, env, "config", "path")
	if code != 0 || !strings.Contains(out, home+"/run/bangerd.sock") {
		t.Fatalf("config path: %d %q", code, out)
	}
	out, _, code = run(t, env, "config", "show")
	if code != 0 || !strings.Contains(out, `hypervisor = "auto"`) || !strings.Contains(out, "[network]") {
		t.Fatalf("config show: %d %q", code, out)
	}
	out, _, code = run(t, env, "config", "validate")
	if code != 0 || !strings.Contains(out, "defaults apply") {
		t.Fatalf("config validate: %d %q", code, out)
	}
}

// A broken config file still has a path: config path prints the paths
// (without the file's overrides) and then the file's error.
func TestConfigPathOfABrokenConfig(t *testing.T) {
	home := t.TempDir()
	env := map[string]string{"BANGER_HOME": home, "HOME": t.TempDir()}
	os.MkdirAll(filepath.Join(home, "config"), 0o755)
	os.WriteFile(filepath.Join(home, "config", "config.toml"), []byte("hypervisor = \"kvm\"\n"), 0o644)
	out, stderr, code := run(t, env, "config", "path")
	if code == 0 || !strings.Contains(out, filepath.Join(home, "config", "config.toml")) || !strings.Contains(stderr, `hypervisor = "kvm" is not valid`) || !strings.Contains(stderr, "leave out the file's") {
		t.Errorf("config path of a broken config: exit %d\nstdout %q\nstderr %q", code, out, stderr)
	}
}

func TestPrettyLogLine(t *testing.T) {
	got := prettyLogLine(`{"time":"2026-11-29T09:00:00.5Z","level":"INFO","msg":"stage finished","op":"op-1","stage":"clone rootfs","duration_ms":12}`)
	for _, want := range []string{"INFO  stage finished", "duration_ms=12", "op=op-1", `stage="clone rootfs"`} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if got := prettyLogLine("not json"); got != "not json" {
		t.Errorf("non-JSON line changed: %q", got)
	}
}

// The percentiles themselves are createbench's (TestOf); the report
// carries them in milliseconds.
func TestBenchStageStats(t *testing.T) {
	var xs []time.Duration
	for _, n := range []int{5, 1, 4, 2, 3, 10, 9, 8, 7, 6} {
		xs = append(xs, time.Duration(n)*time.Millisecond+500*time.Microsecond)
	}
	got := stageStats(createbench.Of("x", xs))
	want := StageStats{Stage: "x", Runs: 10, P50MS: 5.5, P95MS: 10.5, MinMS: 1.5, MaxMS: 10.5}
	if got != want {
		t.Errorf("stageStats = %+v, want %+v", got, want)
	}
}
