package tui

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata")

// harness runs an App the way tea.Program does, on the test's goroutine:
// commands run in goroutines and their messages come back through msgs,
// and each message goes through Update one at a time. It drives the App
// with key messages and reads the screen it draws.
type harness struct {
	tb   testing.TB
	app  *App
	msgs chan tea.Msg
	done chan struct{}
	quit bool
}

// testFormat keeps what changes from run to run out of golden screens.
var testFormat = Format{
	Age:      func(time.Time) string { return "1m" },
	Duration: func(time.Duration) string { return "1s" },
	Percent:  func(float64) string { return "5%" },
}

// fakeOptions are the Options of a TUI on daemon d: its client, the real
// event feed, stable figures, no stats refresh unless the test wants it.
func fakeOptions(d *daemontest.Daemon) Options {
	return Options{
		Connect: func(ctx context.Context) (*client.Client, error) {
			if _, err := d.Client.DaemonStatus(ctx); err != nil {
				return nil, err
			}
			return d.Client, nil
		},
		NoColor:     true,
		Format:      testFormat,
		StatsEvery:  -1,
		SuggestName: func(func(string) bool) string { return "brisk-otter" },
		Banger:      "/bin/false",
	}
}

func newHarness(tb testing.TB, opts Options) *harness {
	tb.Helper()
	h := &harness{tb: tb, app: New(opts), msgs: make(chan tea.Msg, 1024), done: make(chan struct{})}
	tb.Cleanup(func() {
		close(h.done)
		h.app.Close()
	})
	h.process(tea.WindowSizeMsg{Width: 80, Height: 24})
	h.run(h.app.Init())
	return h
}

func (h *harness) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		m := cmd()
		if m == nil {
			return
		}
		select {
		case h.msgs <- m:
		case <-h.done:
		}
	}()
}

func (h *harness) process(m tea.Msg) {
	switch m := m.(type) {
	case tea.BatchMsg:
		for _, c := range m {
			h.run(c)
		}
	case tea.QuitMsg:
		h.quit = true
	default:
		_, cmd := h.app.Update(m)
		h.run(cmd)
	}
}

// key sends one key by its name as Bubble Tea spells it ("enter", "esc",
// "ctrl+x", "K", "/").
func (h *harness) key(name string) {
	h.tb.Helper()
	h.process(keyMsg(name))
}

// typeText types s one key at a time.
func (h *harness) typeText(s string) {
	for _, r := range s {
		h.process(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

func keyMsg(name string) tea.KeyPressMsg {
	special := map[string]rune{
		"enter": tea.KeyEnter, "esc": tea.KeyEscape, "tab": tea.KeyTab, "up": tea.KeyUp,
		"down": tea.KeyDown, "left": tea.KeyLeft, "right": tea.KeyRight, "backspace": tea.KeyBackspace,
		"pgup": tea.KeyPgUp, "pgdown": tea.KeyPgDown, "home": tea.KeyHome, "end": tea.KeyEnd,
	}
	if c, ok := special[name]; ok {
		return tea.KeyPressMsg{Code: c}
	}
	switch name {
	case "space":
		return tea.KeyPressMsg{Code: ' ', Text: " "}
	case "shift+tab":
		return tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
	}
	if rest, ok := strings.CutPrefix(name, "ctrl+"); ok {
		return tea.KeyPressMsg{Code: []rune(rest)[0], Mod: tea.ModCtrl}
	}
	r := []rune(name)[0]
	return tea.KeyPressMsg{Code: r, Text: name}
}

// screen is the screen as plain text.
func (h *harness) screen() string { return ansi.Strip(h.app.Screen()) }

// waitFor processes messages until cond holds for the screen, failing the
// test after 15s with the screen it had.
func (h *harness) waitFor(what string, cond func(screen string) bool) {
	h.tb.Helper()
	deadline := time.After(15 * time.Second)
	for !cond(h.screen()) {
		select {
		case m := <-h.msgs:
			h.process(m)
		case <-deadline:
			h.tb.Fatalf("timed out waiting for %s; the screen:\n%s", what, h.screen())
		}
	}
}

// waitText waits until the screen shows every text.
func (h *harness) waitText(texts ...string) {
	h.tb.Helper()
	h.waitFor(strings.Join(texts, ", "), func(s string) bool {
		for _, t := range texts {
			if !strings.Contains(s, t) {
				return false
			}
		}
		return true
	})
}

// settle processes messages until none came for a while.
func (h *harness) settle() {
	for {
		select {
		case m := <-h.msgs:
			h.process(m)
		case <-time.After(150 * time.Millisecond):
			return
		}
	}
}

// golden compares the screen with testdata/name.golden (or writes it with
// -update).
func (h *harness) golden(name string) {
	h.tb.Helper()
	got := normalize(h.screen())
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			h.tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			h.tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		h.tb.Fatalf("%v (run with -update to write it); the screen:\n%s", err, got)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		h.tb.Errorf("screen %s differs from the golden (-want +got):\n%s", name, diff)
	}
}

// volatile matches what differs between runs of the same test and is not
// the TUI's to format: generated VM IDs.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\bvm-[0-9a-f]{12}\b`), "vm-XXXXXXXXXXXX"},
	{regexp.MustCompile(`\bpid [0-9]+`), "pid N"},
}

func normalize(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}
