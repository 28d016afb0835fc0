package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
)

// FollowOptions tune how FollowOperationWith gets through a daemon that
// went away.
type FollowOptions struct {
	// Reconnect returns a client of the daemon once the event stream
	// broke; it may start a new daemon (the CLI passes its daemon
	// starter). nil waits for a daemon to answer on cl's socket again.
	Reconnect func(ctx context.Context) (*client.Client, error)
	// ReconnectWait bounds how long to wait for the daemon to answer
	// again (30s when 0).
	ReconnectWait time.Duration
	// Poll is the pause between attempts to reach it (250ms when 0).
	Poll time.Duration
}

// StoppedFollowingError is returned when the caller stopped following
// (ctx ended) before the operation did: the operation keeps running in
// the daemon.
type StoppedFollowingError struct {
	ID  string
	Err error // ctx's error
}

func (e *StoppedFollowingError) Error() string {
	return fmt.Sprintf("stopped following operation %s; it keeps running: `banger operation watch %s`, or `banger operation cancel %s` to stop it", e.ID, e.ID, e.ID)
}

func (e *StoppedFollowingError) Unwrap() error { return e.Err }

// FollowOperation is FollowOperationWith with the default options: after
// a broken stream it waits for a daemon on cl's socket.
func FollowOperation(ctx context.Context, cl *client.Client, id string, fn func(api.OperationEvent)) (api.Operation, error) {
	return FollowOperationWith(ctx, cl, id, fn, FollowOptions{})
}

// FollowOperationWith hands the operation's events to fn (which may be
// nil) until it ends, and returns its final state: with the operation's
// own *api.Error when it failed. When the stream breaks (the daemon went
// away, even SIGKILLed) it reaches the daemon again and reads the
// operation: an operation the daemon's restart interrupted is reported as
// the failure it was recorded as, one still running is followed on, and
// fn sees the stages it missed (never one twice). When ctx ends first the
// error is a *StoppedFollowingError.
func FollowOperationWith(ctx context.Context, cl *client.Client, id string, fn func(api.OperationEvent), o FollowOptions) (api.Operation, error) {
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	if fn == nil {
		fn = func(api.OperationEvent) {}
	}
	var seen stagesSeen
	resumed := false
	var owned *client.Client
	defer func() {
		if owned != nil {
			owned.Close()
		}
	}()
	for {
		final, err := cl.WatchOperation(ctx, id, func(ev api.OperationEvent) error {
			if resumed && ev.Type == api.EventSnapshot {
				resumed = false
				for _, e := range seen.catchUp(ev.Operation, ev.Time) {
					fn(e)
				}
				return nil
			}
			seen.note(ev)
			fn(ev)
			return nil
		})
		if err == nil {
			return outcome(final)
		}
		if ctx.Err() != nil {
			return final, &StoppedFollowingError{ID: id, Err: ctx.Err()}
		}
		var ae *api.Error
		if errors.As(err, &ae) {
			return final, err // the daemon answered: no such operation, say
		}
		next, op, rerr := reread(ctx, cl, id, o)
		if rerr != nil {
			if ctx.Err() != nil {
				return final, &StoppedFollowingError{ID: id, Err: ctx.Err()}
			}
			return final, fmt.Errorf("%w; reading operation %s again: %w", err, id, rerr)
		}
		if next != cl {
			if owned != nil {
				owned.Close()
			}
			cl, owned = next, next
		}
		if op.State != api.OperationRunning {
			for _, e := range seen.catchUp(op, op.UpdatedAt) {
				fn(e)
			}
			return outcome(op)
		}
		resumed = true
	}
}

// outcome is what following returns for a finished operation: a failed
// or canceled one's *api.Error ("vm create canceled by banger operation
// cancel (uid 1000) at stage launch").
func outcome(op api.Operation) (api.Operation, error) {
	if (op.State == api.OperationFailed || op.State == api.OperationCanceled) && op.Error != nil {
		return op, op.Error
	}
	return op, nil
}

// reread reaches the daemon again and reads the operation, within
// o.ReconnectWait. A daemon that answers with an error (the operation is
// unknown) ends the wait.
func reread(ctx context.Context, cl *client.Client, id string, o FollowOptions) (*client.Client, api.Operation, error) {
	deadline := time.Now().Add(o.ReconnectWait)
	for {
		c := cl
		var err error
		if o.Reconnect != nil {
			c, err = o.Reconnect(ctx)
		}
		if err == nil {
			var op api.Operation
			op, err = c.Operation(ctx, id)
			if err == nil {
				return c, op, nil
			}
			if c != cl {
				c.Close()
			}
			var ae *api.Error
			if errors.As(err, &ae) {
				return nil, api.Operation{}, err
			}
		}
		if !time.Now().Add(o.Poll).Before(deadline) {
			return nil, api.Operation{}, fmt.Errorf("the daemon did not answer within %s: %w", o.ReconnectWait, err)
		}
		t := time.NewTimer(o.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, api.Operation{}, ctx.Err()
		case <-t.C:
		}
	}
}

// stagesSeen remembers which stages a follower was told about.
type stagesSeen struct {
	started, finished map[string]bool
}

func (s *stagesSeen) init() {
	if s.started == nil {
		s.started, s.finished = map[string]bool{}, map[string]bool{}
	}
}

func (s *stagesSeen) note(ev api.OperationEvent) {
	s.init()
	switch ev.Type {
	case api.EventSnapshot:
		for _, st := range ev.Operation.Stages {
			s.started[st.Name] = true
			if !st.FinishedAt.IsZero() {
				s.finished[st.Name] = true
			}
		}
	case api.EventStageStarted:
		s.started[ev.Stage] = true
	case api.EventStageFinished:
		s.started[ev.Stage] = true
		s.finished[ev.Stage] = true
	}
}

// catchUp turns what changed in op since the events seen into the events
// a follower missed: stages started and finished, and done when op has
// ended.
func (s *stagesSeen) catchUp(op api.Operation, at time.Time) []api.OperationEvent {
	s.init()
	var evs []api.OperationEvent
	for _, st := range op.Stages {
		if !s.started[st.Name] {
			s.started[st.Name] = true
			evs = append(evs, api.OperationEvent{Type: api.EventStageStarted, Time: st.StartedAt, Stage: st.Name, Operation: op})
		}
		if !st.FinishedAt.IsZero() && !s.finished[st.Name] {
			s.finished[st.Name] = true
			evs = append(evs, api.OperationEvent{Type: api.EventStageFinished, Time: st.FinishedAt, Stage: st.Name,
				Message: st.Detail, Duration: st.Duration, Operation: op})
		}
	}
	if op.State != api.OperationRunning {
		evs = append(evs, api.OperationEvent{Type: api.EventDone, Time: at, Operation: op})
	}
	return evs
}

// StageLine is one stage of an operation's timeline, ready to render.
type StageLine struct {
	Name string
	// Duration is how long the stage took, or has taken so far.
	Duration time.Duration
	// Detail is the stage's note (it may quote the guest: escape it).
	Detail string
	// Done is true once the stage finished; Failed when it failed or
	// was interrupted; Canceled when the operation was canceled in it.
	Done, Failed, Canceled bool
}

// StageTimeline is op's stages as lines; a running stage's duration runs
// to now.
func StageTimeline(op api.Operation, now time.Time) []StageLine {
	lines := make([]StageLine, 0, len(op.Stages))
	for _, st := range op.Stages {
		l := StageLine{Name: st.Name, Detail: st.Detail, Done: !st.FinishedAt.IsZero()}
		if l.Done {
			l.Duration = st.Duration.D()
			l.Failed = StageFailed(st.Detail)
			l.Canceled = st.Detail == api.StageCanceled
		} else if !st.StartedAt.IsZero() && now.After(st.StartedAt) {
			l.Duration = now.Sub(st.StartedAt)
		}
		lines = append(lines, l)
	}
	return lines
}

// StageFailed reports whether a finished stage's detail marks it failed.
func StageFailed(detail string) bool { return detail == "failed" || detail == "interrupted" }

// DecodeResult unpacks a finished operation's result into v.
func DecodeResult(op api.Operation, v any) error {
	if len(op.Result) == 0 {
		return fmt.Errorf("operation %s finished without a result", op.ID)
	}
	if err := json.Unmarshal(op.Result, v); err != nil {
		return fmt.Errorf("decoding the result of operation %s: %w", op.ID, err)
	}
	return nil
}
