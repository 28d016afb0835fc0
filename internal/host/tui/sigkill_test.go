package tui

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemonctl"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// TestDaemonSIGKILL: a real bangerd process, started the way the CLI
// starts it (daemonctl.Ensure), is killed with SIGKILL while the TUI is
// open. The feed reports the outage (the notice), connects again — which
// starts a new daemon — and the TUI says it is back and still answers
// keys.
func TestDaemonSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs bangerd")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH: it builds bangerd for this test")
	}
	root := daemontest.ShortTempDir(t)
	bin := filepath.Join(root, "bangerd")
	_, file, _, _ := runtime.Caller(0)
	build := exec.Command(gobin, "build", "-o", bin, "./cmd/bangerd")
	build.Dir = filepath.Join(filepath.Dir(file), "..", "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building bangerd: %v\n%s", err, out)
	}
	// The daemon the controller spawns finds its home the way a user's
	// does.
	t.Setenv("BANGER_HOME", root)
	t.Setenv("HOME", filepath.Join(root, "home"))
	cfg := daemontest.Config(t, root)
	ctl := &daemonctl.Controller{Paths: cfg.Paths, DaemonBin: bin, ConfigFile: cfg.Paths.ConfigFile, Notices: io.Discard}
	t.Cleanup(func() { ctl.Stop(context.Background()) })

	outages := make(chan error, 8)
	opts := Options{
		Connect:     ctl.Ensure,
		NoColor:     true,
		Format:      testFormat,
		StatsEvery:  -1,
		SuggestName: func(func(string) bool) string { return "brisk-otter" },
		Banger:      "/bin/false",
		// The real feed, watched: the notice may be on screen for less
		// time than a screen check takes.
		Feed: func(ctx context.Context, connect func(context.Context) (*client.Client, error), deliver func(tea.Msg)) error {
			return frontendFeed(ctx, connect, func(m tea.Msg) {
				if d, ok := m.(DisconnectedMsg); ok {
					outages <- d.Err
				}
				deliver(m)
			})
		},
	}
	h := newHarness(t, opts)
	h.waitText("No VMs yet")
	pid := daemonPID(t, cfg.Paths.PIDFile())
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the feed to report the outage", func(string) bool { return len(outages) > 0 })
	h.waitText(StatusReconnected)
	if again := daemonPID(t, cfg.Paths.PIDFile()); again == pid {
		t.Fatalf("the daemon's pid is still %d after SIGKILL", pid)
	}
	h.key("c")
	h.waitText("Create a VM")
	h.key("esc")
	h.waitText("No VMs yet")
}

func daemonPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return pid
}
