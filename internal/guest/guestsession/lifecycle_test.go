package guestsession

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A spec that cannot run is refused before anything starts, with
// diagnostics that name what is missing, and leaves no session behind.
func TestPreflightRefusesAndCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "notexec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		opts      []Option
		spec      Spec
		wantDiags []string // a *PreflightError's
		wantErr   error    // otherwise
	}{
		{
			name:      "missing cwd",
			spec:      Spec{Argv: []string{"true"}, Cwd: "/nonexistent-banger"},
			wantDiags: []string{`cwd "/nonexistent-banger" does not exist: create it (e.g. banger vm workspace prepare) or pick another`},
		},
		{
			name:      "cwd is a file",
			spec:      Spec{Argv: []string{"true"}, Cwd: notExec},
			wantDiags: []string{fmt.Sprintf("cwd %q is not a directory", notExec)},
		},
		{
			name:      "unknown command",
			spec:      Spec{Argv: []string{"opencode-nosuch"}, Env: []string{"PATH=/usr/bin:/bin"}},
			wantDiags: []string{`command "opencode-nosuch" not found in PATH=/usr/bin:/bin: install it in the guest image or give its full path`},
		},
		{
			name: "missing cwd and unknown command",
			spec: Spec{Argv: []string{"opencode-nosuch"}, Cwd: "/nonexistent-banger"},
			wantDiags: []string{
				`cwd "/nonexistent-banger" does not exist: create it (e.g. banger vm workspace prepare) or pick another`,
				`command "opencode-nosuch" not found in PATH=` + testPATH + `: install it in the guest image or give its full path`,
			},
		},
		{
			name:      "missing command path",
			spec:      Spec{Argv: []string{"/nonexistent-banger/bin/tool"}},
			wantDiags: []string{`command "/nonexistent-banger/bin/tool" does not exist`},
		},
		{
			name:      "command not executable",
			spec:      Spec{Argv: []string{notExec}},
			wantDiags: []string{fmt.Sprintf("command %q: is not executable (mode -rw-r--r--): chmod +x it", notExec)},
		},
		{
			name:      "no default cwd",
			opts:      []Option{WithDefaultCwd("/nonexistent-banger/repo", "/nonexistent-banger")},
			spec:      Spec{Argv: []string{"true"}},
			wantDiags: []string{"no default cwd: none of /nonexistent-banger/repo, /nonexistent-banger is a directory; give a cwd"},
		},
		{name: "empty argv", spec: Spec{}, wantErr: ErrInvalidSpec},
		{name: "unknown mode", spec: Spec{Argv: []string{"true"}, Mode: "screen"}, wantErr: ErrInvalidSpec},
		{name: "relative cwd", spec: Spec{Argv: []string{"true"}, Cwd: "repo"}, wantErr: ErrInvalidSpec},
		{name: "env without =", spec: Spec{Argv: []string{"true"}, Env: []string{"TOKEN"}}, wantErr: ErrInvalidSpec},
		{name: "bad name", spec: Spec{Argv: []string{"true"}, Name: "-x y"}, wantErr: ErrInvalidSpec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stateDir := t.TempDir()
			m := newManager(t, stateDir, tt.opts...)
			_, err := m.Start(context.Background(), tt.spec)
			if tt.wantDiags != nil {
				var pe *PreflightError
				if !errors.As(err, &pe) || !errors.Is(err, ErrPreflight) {
					t.Fatalf("Start error = %v, want a *PreflightError", err)
				}
				if diff := cmp.Diff(tt.wantDiags, pe.Diagnostics); diff != "" {
					t.Errorf("diagnostics (-want +got):\n%s", diff)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Start error = %v, want %v", err, tt.wantErr)
			}
			if got := m.List(); len(got) != 0 {
				t.Errorf("List() = %+v, want no session", got)
			}
			if entries, _ := os.ReadDir(stateDir); len(entries) != 0 {
				t.Errorf("state dir holds %v, want nothing", entries)
			}
		})
	}
}

// argv[0] resolves in the session's PATH, not the agent's, and an empty
// cwd takes the first default directory that exists.
func TestStartResolvesInSessionEnvironment(t *testing.T) {
	bin, work := t.TempDir(), t.TempDir()
	script := "#!/bin/sh\necho \"$0 in $(pwd) with $GREETING\"\n"
	if err := os.WriteFile(filepath.Join(bin, "greet"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, "", WithDefaultCwd("/nonexistent-banger", work))
	info := start(t, m, Spec{Argv: []string{"greet"}, Env: []string{"PATH=" + bin + ":/usr/bin:/bin", "GREETING=hi"}})

	want := fmt.Sprintf("%s in %s with hi\n", filepath.Join(bin, "greet"), work)
	if diff := cmp.Diff(want, text(drain(t, m, info.ID))); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{work, "PATH", "GREETING"}, append([]string{info.Cwd}, info.EnvKeys...)); diff != "" {
		t.Errorf("[Cwd, EnvKeys...] (-want +got):\n%s", diff)
	}
}

// A process that dies within the early-exit window leaves a launch
// diagnostic with its exit code and first stderr bytes.
func TestEarlyExitDiagnostics(t *testing.T) {
	const hour = time.Hour // a window no test run outlasts: every exit is early
	tests := []struct {
		name      string
		window    time.Duration
		spec      Spec
		want      Info   // State, ExitCode, Signal
		wantDiags string // regexp over the joined Diagnostics
	}{
		{
			name:      "exit code and stderr",
			window:    hour,
			spec:      Spec{Argv: []string{"sh", "-c", "echo boom >&2; exit 3"}},
			want:      Info{State: StateFailed, ExitCode: intp(3)},
			wantDiags: `^exited 3 within 1h0m0s: stderr: "boom"$`,
		},
		{
			name:      "command the shell cannot find",
			window:    hour,
			spec:      Spec{Argv: []string{"sh", "-c", "nosuch-banger-cmd"}},
			want:      Info{State: StateFailed, ExitCode: intp(127)},
			wantDiags: `^exited 127 within 1h0m0s: stderr: ".*nosuch-banger-cmd:.* not found"$`,
		},
		{
			name:      "killed by a signal",
			window:    hour,
			spec:      Spec{Argv: []string{"sh", "-c", "echo dying >&2; kill -9 $$"}},
			want:      Info{State: StateFailed, Signal: "SIGKILL"},
			wantDiags: `^killed by SIGKILL within 1h0m0s: stderr: "dying"$`,
		},
		{
			name:      "quick success is recorded but not a failure",
			window:    hour,
			spec:      Spec{Argv: []string{"true"}},
			want:      Info{State: StateExited, ExitCode: intp(0)},
			wantDiags: `^exited 0 within 1h0m0s, no stderr$`,
		},
		{
			name:      "only the first 4 KiB of stderr",
			window:    hour,
			spec:      Spec{Argv: []string{"sh", "-c", `head -c 10000 /dev/zero | tr '\0' x >&2; exit 1`}},
			want:      Info{State: StateFailed, ExitCode: intp(1)},
			wantDiags: `^exited 1 within 1h0m0s: stderr: "` + strings.Repeat("x", 4096) + `"$`,
		},
		{
			name:      "tty session quotes the terminal",
			window:    hour,
			spec:      Spec{Argv: []string{"sh", "-c", "echo boom; exit 2"}, Mode: ModeTTY},
			want:      Info{State: StateFailed, ExitCode: intp(2)},
			wantDiags: `^exited 2 within 1h0m0s: terminal output: "boom"$`,
		},
		{
			name:      "exit after the window",
			window:    0,
			spec:      Spec{Argv: []string{"sh", "-c", "echo boom >&2; exit 3"}},
			want:      Info{State: StateExited, ExitCode: intp(3)},
			wantDiags: `^$`,
		},
		{
			name:      "still running when the window ends",
			window:    20 * time.Millisecond,
			spec:      Spec{Argv: []string{"sleep", "1000"}},
			want:      Info{State: StateRunning},
			wantDiags: `^$`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.spec.Mode == ModeTTY {
				requirePTY(t)
			}
			m := newManager(t, "", WithEarlyExitWindow(tt.window))
			info := start(t, m, tt.spec)
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			got, err := m.WaitEarly(ctx, info.ID)
			if err != nil {
				t.Fatal(err)
			}
			if tt.window == 0 {
				// No window to wait out: WaitEarly returns at once.
				got = waitExit(t, m, info.ID)
			}
			if diff := cmp.Diff(tt.want, Info{State: got.State, ExitCode: got.ExitCode, Signal: got.Signal}); diff != "" {
				t.Errorf("exit (-want +got):\n%s", diff)
			}
			if diags := strings.Join(got.Diagnostics, "\n"); !regexp.MustCompile(tt.wantDiags).MatchString(diags) {
				t.Errorf("Diagnostics = %q, want a match for %s", got.Diagnostics, tt.wantDiags)
			}
		})
	}
}

// stop and kill go to the whole process group, so they reach the children
// of the session's command.
func TestSignalReachesChildren(t *testing.T) {
	tests := []struct {
		name   string
		script string
		sig    syscall.Signal
	}{
		{name: "stop", script: "sleep 1000 & echo $!; wait", sig: syscall.SIGTERM},
		{name: "kill when TERM is ignored", script: `trap "" TERM; sleep 1000 & echo $!; wait`, sig: syscall.SIGKILL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, "")
			info := start(t, m, Spec{Argv: []string{"sh", "-c", tt.script}})
			a := attach(t, m, info.ID, -1)
			chunks, _ := readUntil(t, a, contains("\n"))
			child, err := strconv.Atoi(strings.TrimSpace(text(chunks)))
			if err != nil {
				t.Fatalf("child pid %q: %v", text(chunks), err)
			}

			if err := m.Signal(info.ID, tt.sig); err != nil {
				t.Fatal(err)
			}
			end := waitExit(t, m, info.ID)
			if diff := cmp.Diff(Info{State: StateExited, Signal: sigName(tt.sig)}, Info{State: end.State, ExitCode: end.ExitCode, Signal: end.Signal}); diff != "" {
				t.Errorf("exit (-want +got):\n%s", diff)
			}
			eventually(t, fmt.Sprintf("child %d ends", child), func() bool {
				state, _, ok := procStat("/proc", child)
				return !ok || state == 'Z'
			})
			readAll(t, a)
			if err := m.Signal(info.ID, tt.sig); !errors.Is(err, ErrNotRunning) {
				t.Errorf("Signal after the end: %v, want ErrNotRunning", err)
			}
		})
	}
}

func sigName(sig syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}[sig]
}

// Names are unique, usable wherever an id is, and free again once the
// session is removed; only an ended session can be removed.
func TestNamesAndRemove(t *testing.T) {
	stateDir := t.TempDir()
	m := newManager(t, stateDir)
	info := start(t, m, Spec{Name: "web", Argv: []string{"cat"}})

	if _, err := m.Start(context.Background(), Spec{Name: "web", Argv: []string{"true"}}); !errors.Is(err, ErrNameInUse) {
		t.Errorf("second Start named web: %v, want ErrNameInUse", err)
	}
	byName, err := m.Get("web")
	if err != nil || byName.ID != info.ID {
		t.Errorf("Get(web) = %s, %v; want session %s", byName.ID, err, info.ID)
	}
	if _, err := m.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nope): %v, want ErrNotFound", err)
	}
	if err := m.Remove("web"); !errors.Is(err, ErrStillRunning) {
		t.Errorf("Remove while running: %v, want ErrStillRunning", err)
	}

	a := attach(t, m, "web", -1)
	a.CloseStdin()
	readAll(t, a)
	a.Detach()
	if err := m.Remove("web"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(info.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove: %v, want ErrNotFound", err)
	}
	if entries, _ := os.ReadDir(stateDir); len(entries) != 0 {
		t.Errorf("state dir holds %v after Remove, want nothing", entries)
	}
	start(t, m, Spec{Name: "web", Argv: []string{"true"}})
}
