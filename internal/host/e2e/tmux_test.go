package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// screen is a real terminal for a full-screen program: a detached tmux
// session of a fixed size on a private tmux server, driven with
// send-keys and read with capture-pane, as a user at a terminal would.
type screen struct {
	t      testing.TB
	socket string // tmux -S path: a server of our own, never the user's
	target string
}

// newScreen starts argv (run through env, so the environment is exactly
// envv) in a cols×rows tmux window. The server goes at the end of the test.
func newScreen(t testing.TB, cols, rows int, envv []string, argv ...string) *screen {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: apt-get install tmux")
	}
	b := make([]byte, 4)
	rand.Read(b)
	s := &screen{t: t, socket: filepath.Join(t.TempDir(), "tmux-"+hex.EncodeToString(b)), target: "tui"}
	args := []string{"new-session", "-d", "-s", s.target, "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows), "--", "env", "-i"}
	args = append(args, envv...)
	args = append(args, argv...)
	if out, err := s.tmux(args...); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	// Keep the pane after the program exits, so a crash leaves its last
	// screen for the failure message.
	s.tmux("set-option", "-t", s.target, "remain-on-exit", "on")
	// Hand an Escape to the program at once, as a terminal does, instead
	// of tmux's wait for a following key.
	s.tmux("set-option", "-s", "escape-time", "0")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last screen:\n%s", s.capture())
		}
		s.tmux("kill-server")
	})
	return s
}

func (s *screen) tmux(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-S", s.socket}, args...)...).CombinedOutput()
	return string(out), err
}

// keys sends tmux key names ("Enter", "Escape", "C-]", "Down") or, with
// literal, text typed as is.
func (s *screen) keys(keys ...string) {
	s.t.Helper()
	if out, err := s.tmux(append([]string{"send-keys", "-t", s.target}, keys...)...); err != nil {
		s.t.Fatalf("tmux send-keys %q: %v\n%s", keys, err, out)
	}
}

// typeText types text literally (no key-name lookup).
func (s *screen) typeText(text string) {
	s.t.Helper()
	if out, err := s.tmux("send-keys", "-t", s.target, "-l", text); err != nil {
		s.t.Fatalf("tmux send-keys -l %q: %v\n%s", text, err, out)
	}
}

// capture returns what the window shows now, one line per row.
func (s *screen) capture() string {
	out, _ := s.tmux("capture-pane", "-p", "-t", s.target)
	return out
}

// waitFor waits until the screen shows every one of texts and returns
// that screen; the wait is a guard against hanging, not a speed check.
func (s *screen) waitFor(texts ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		scr := s.capture()
		missing := ""
		for _, want := range texts {
			if !strings.Contains(scr, want) {
				missing = want
				break
			}
		}
		if missing == "" {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen never showed %q; it shows:\n%s", missing, scr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitGone waits until the screen no longer shows text.
func (s *screen) waitGone(text string) string {
	s.t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		scr := s.capture()
		if !strings.Contains(scr, text) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen still shows %q:\n%s", text, scr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exited reports whether the program in the window has ended.
func (s *screen) exited() bool {
	out, _ := s.tmux("display-message", "-p", "-t", s.target, "#{pane_dead}")
	return strings.TrimSpace(out) == "1"
}

// waitExit waits until the program in the window has ended.
func (s *screen) waitExit() {
	s.t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !s.exited() {
		if time.Now().After(deadline) {
			s.t.Fatalf("the program did not end; the screen shows:\n%s", s.capture())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestScreenDriver checks the driver itself against a plain shell
// program, so a TUI test failure is about the TUI.
func TestScreenDriver(t *testing.T) {
	s := newScreen(t, 80, 24, []string{"PATH=/usr/bin:/bin", "TERM=tmux-256color"},
		"sh", "-c", `printf 'ready\n'; read line; printf 'got %s\n' "$line"; sleep 0.2`)
	s.waitFor("ready")
	s.typeText("hello there")
	s.keys("Enter")
	s.waitFor("got hello there")
	s.waitExit()
}
