package tui

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bangerdev/banger/api"
	"github.com/charmbracelet/x/ansi"
)

// TestOpFollowStagesAndLog feeds a followed build the events its stream
// would carry: log lines land under the stages escaped (a package's
// output cannot drive the terminal), another stream's lines are ignored,
// a finished stage and the failure show as the daemon reported them.
func TestOpFollowStagesAndLog(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	running := api.Operation{ID: "op-build", Kind: "image.build", Target: "dev", State: api.OperationRunning,
		CurrentStage: "install packages", CreatedAt: t0, UpdatedAt: t0.Add(2 * time.Second),
		Stages: []api.Stage{
			{Name: "clone base", StartedAt: t0, FinishedAt: t0.Add(time.Second), Duration: api.Duration(time.Second), Detail: "reflink"},
			{Name: "install packages", StartedAt: t0.Add(time.Second)},
		}}
	env := &Env{Store: NewStore(), Theme: NewTheme(true), Format: testFormat, Width: 80, Height: 20}
	f := &opFollow{id: running.ID, last: running, log: newTextLog(), streamID: nextStreamID()}
	other := f.streamID + 1000

	steps := []struct {
		msg   any
		taken bool
	}{
		{opEventMsg{stream: f.streamID, ev: api.OperationEvent{Type: api.EventSnapshot, Operation: running}}, true},
		{opEventMsg{stream: f.streamID, ev: api.OperationEvent{Type: api.EventLog, Message: "Get:1 http://deb.debian.org/debian bookworm InRelease", Operation: running}}, true},
		{opEventMsg{stream: f.streamID, ev: api.OperationEvent{Type: api.EventLog, Message: "Setting up git (1:2.39.5-0+deb12u2) ...\n", Operation: running}}, true},
		{opEventMsg{stream: other, ev: api.OperationEvent{Type: api.EventLog, Message: "a line of another operation", Operation: running}}, false},
		{EventMsg{Kind: api.EventOperation, OperationState: &running}, false},
	}
	for i, s := range steps {
		if got := f.update(s.msg); got != s.taken {
			t.Errorf("step %d: update took it = %v, want %v", i, got, s.taken)
		}
	}
	failed := running
	failed.State, failed.CurrentStage = api.OperationFailed, ""
	failed.UpdatedAt, failed.FinishedAt = t0.Add(3*time.Second), t0.Add(3*time.Second)
	failed.Stages = []api.Stage{running.Stages[0], {Name: "install packages", StartedAt: t0.Add(time.Second),
		FinishedAt: t0.Add(3 * time.Second), Duration: api.Duration(2 * time.Second), Detail: "failed"}}
	failed.Error = &api.Error{Code: api.CodeFailedPrecondition, Message: "apt-get install git exited with status 100 (E: Unable to locate package git): check that the packages field names Debian packages of the base image's suite, then build again"}
	if !f.update(opEndMsg{stream: f.streamID, op: failed, err: failed.Error}) || !f.ended {
		t.Fatal("the end of the follow was not taken")
	}
	if f.err != nil {
		t.Errorf("the operation's own failure was kept as a follow error: %v", f.err)
	}
	raw := strings.Join(f.render(env, env.Height), "\n")
	if strings.Contains(raw, "another operation") {
		t.Error("a line of another stream was shown")
	}
	goldenText(t, "opfollow-build-log", ansi.Strip(box(raw, env.Width, env.Height)))
}

// TestOpFollowLogCannotDriveTheTerminal: a build's output (from a
// package's scripts: untrusted) that carries escape sequences and control
// characters reaches the screen inert.
func TestOpFollowLogCannotDriveTheTerminal(t *testing.T) {
	op := api.Operation{ID: "op-build", Kind: "image.build", State: api.OperationRunning}
	env := &Env{Store: NewStore(), Theme: NewTheme(true), Format: testFormat, Width: 80, Height: 20}
	for _, hostile := range []string{
		"\x1b[2J\x1b[HSetting up git",
		"\x1b]0;owned\x07Setting up git",
		"\x1b]52;c;cGF5bG9hZA==\x07Setting up git",
		"Setting up git\x1bP+q\x1b\\",
		"\x9b31mSetting up git",
	} {
		f := &opFollow{id: op.ID, last: op, log: newTextLog(), streamID: nextStreamID()}
		f.update(opEventMsg{stream: f.streamID, ev: api.OperationEvent{Type: api.EventLog, Message: hostile, Operation: op}})
		// The theme styles the screen around the log (bold, faint): look
		// at the log's own lines as render draws them.
		raw := f.log.render(env.Width-2, env.Height)
		if c, at := controlChar(raw); at >= 0 {
			t.Errorf("%q reached the screen with control character %q at %d: %q", hostile, c, at, raw)
		}
		if !strings.Contains(raw, "Setting up git") {
			t.Errorf("%q: the line's text is gone: %q", hostile, raw)
		}
	}
}

// controlChar finds the first byte sequence a terminal could act on: a C0
// control but newline, DEL, a C1 control, or a byte that is not UTF-8
// (an 8-bit terminal reads a lone 0x9b as CSI).
func controlChar(s string) (string, int) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1,
			r < 0x20 && r != '\n',
			r == 0x7f,
			r >= 0x80 && r < 0xa0:
			return s[i : i+n], i
		}
		i += n
	}
	return "", -1
}
