package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/host/config"
)

// banger tui without a terminal says so and starts nothing: no daemon,
// no screen written into a pipe or a file.
func TestTUINeedsATerminal(t *testing.T) {
	home := t.TempDir()
	env := config.MapEnv(map[string]string{"BANGER_HOME": home, "HOME": t.TempDir()})
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, tc := range []struct {
		name string
		in   io.Reader
		out  io.Writer
	}{
		{"buffers", &bytes.Buffer{}, &bytes.Buffer{}},
		{"files that are not terminals", devnull, devnull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := Run(context.Background(), []string{"tui"}, &App{Stdin: tc.in, Stdout: tc.out, Stderr: &stderr, Env: env})
			if code != ExitError {
				t.Errorf("exit %d, want %d", code, ExitError)
			}
			if want := "banger tui needs a terminal: run it in one, or use the CLI commands"; !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr %q, want %q", stderr.String(), want)
			}
			if b, ok := tc.out.(*bytes.Buffer); ok && b.Len() > 0 {
				t.Errorf("stdout %q, want nothing", b.String())
			}
			if _, err := os.Stat(filepath.Join(home, "run", "bangerd.pid")); err == nil {
				t.Error("a daemon was started")
			}
		})
	}
	_, stderr, code := run(t, map[string]string{"BANGER_HOME": home}, "tui", "extra")
	if code != ExitUsage || !strings.Contains(stderr, "takes no arguments") {
		t.Errorf("tui extra: exit %d %q, want a usage error", code, stderr)
	}
}
