package tui

import (
	"strings"
	"testing"
	"time"

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
		{opEventMsg{stream: f.streamID, ev: api.OperationEvent{Type: api.EventLog, Message: "\x1b[2J\x1b]0;owned\x07Setting up git (1:2.39.5-0+deb12u2) ...\n", Operation: running}}, true},
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
	failed.Error = &api.Error{Code: api.CodeFailedPrecondition, Message: "apt-get install git exited with status 100: see the log above"}
	if !f.update(opEndMsg{stream: f.streamID, op: failed, err: failed.Error}) || !f.ended {
		t.Fatal("the end of the follow was not taken")
	}
	if f.err != nil {
		t.Errorf("the operation's own failure was kept as a follow error: %v", f.err)
	}
	raw := strings.Join(f.render(env, env.Height), "\n")
	for _, bad := range []string{"\x1b[2J", "\x1b]0;", "\x07"} {
		if strings.Contains(raw, bad) {
			t.Errorf("a log line reached the terminal raw (%q): %q", bad, raw)
		}
	}
	if strings.Contains(raw, "another operation") {
		t.Error("a line of another stream was shown")
	}
	goldenText(t, "opfollow-build-log", ansi.Strip(box(raw, env.Width, env.Height)))
}
