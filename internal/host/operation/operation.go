// Package operation runs banger's long operations (VM create, image
// bootstrap, deep doctor runs) in the background: Begin returns an id at
// once, each run reports named stages with their durations, every change is
// persisted, and any number of subscribers can follow the events live.
package operation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/crashpoint"
)

// InterruptedReason is the error recorded on operations that were running
// when the daemon stopped without finishing them.
const InterruptedReason = "interrupted by daemon restart"

// Cancellation is the cause an operation's context is canceled with: who
// asked it to stop. An operation that ends with an error after its context
// was canceled ends canceled (not failed), its error saying "KIND canceled
// by BY at stage STAGE".
type Cancellation struct {
	// By names who asked, e.g. "banger operation cancel (uid 1000)" or
	// "daemon shutdown (banger daemon stop)".
	By string
}

func (c *Cancellation) Error() string { return "canceled by " + c.By }

// Is makes a Cancellation match context.Canceled, as the context error it
// stands for.
func (c *Cancellation) Is(target error) bool { return target == context.Canceled }

// baseEnded is who canceled the runs when the manager's base context ended
// without a Cancellation of its own.
const baseEnded = "the daemon stopping"

// Store is what the manager needs from persistence.
type Store interface {
	SaveOperation(ctx context.Context, op api.Operation) error
	GetOperation(ctx context.Context, id string) (api.Operation, error)
}

// Func is the body of an operation. It reports progress through r and
// returns a JSON-encodable result or an error.
type Func func(ctx context.Context, r *Run) (any, error)

// DefaultKeep is how many finished operations a Manager keeps in its
// store (about 2 KiB each).
const DefaultKeep = 1000

// maxEvents bounds the events kept for late subscribers of one live run;
// log lines beyond it are dropped (stage and done events never are).
const maxEvents = 2000

// Manager owns the running operations.
type Manager struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
	base  context.Context

	// OnChange, when set, hears of every change to an operation that the
	// manager persists: its begin, each stage (a stage start closes the
	// one before), and its end; not its log lines. Set it before the
	// first Begin. The daemon feeds its event hub with it.
	OnChange func(api.Event)

	// Keep is how many operations the store keeps when it can prune
	// (Pruner): the newest finished ones, besides those running.
	Keep int

	mu       sync.Mutex
	live     map[string]*Run
	wg       sync.WaitGroup
	finished atomic.Int64
}

// NewManager returns a manager whose runs derive their context from base:
// cancelling base cancels every running operation, as canceled by the
// base's cause when that is a *Cancellation (context.WithCancelCause),
// by "the daemon stopping" otherwise.
func NewManager(base context.Context, store Store, log *slog.Logger) *Manager {
	return &Manager{store: store, log: log, now: time.Now, base: base, live: map[string]*Run{}, Keep: DefaultKeep}
}

// Run is one executing operation. Its methods are safe for concurrent use.
type Run struct {
	m      *Manager
	ctx    context.Context
	cancel context.CancelCauseFunc
	crash  *crashpoint.Tracker // the stages, for a crashpoints build's test points

	mu      sync.Mutex
	op      api.Operation
	events  []api.OperationEvent
	dropped int
	changed chan struct{} // closed and replaced on every new event
	// stopped is the index in op.Stages of the stage that was running
	// when the run's context was canceled (-1: none was); stopSet once
	// it is known.
	stopped int
	stopSet bool
}

// NewID returns a fresh operation id.
func NewID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "op-" + hex.EncodeToString(b)
}

// Begin starts fn in the background and returns the operation as it stands
// at once (state running, no stages yet).
func (m *Manager) Begin(kind, target string, fn Func) (api.Operation, error) {
	now := m.now().UTC()
	ctx, cancel := context.WithCancelCause(m.base)
	ctx, crash := crashpoint.Track(ctx, kind)
	r := &Run{
		m:       m,
		ctx:     ctx,
		cancel:  cancel,
		crash:   crash,
		changed: make(chan struct{}),
		op: api.Operation{
			ID: NewID(), Kind: kind, Target: target, State: api.OperationRunning,
			Stages: []api.Stage{}, CreatedAt: now, UpdatedAt: now,
		},
	}
	// Where the run stood when it was canceled, by Cancel or by base.
	context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.noteStopLocked()
		r.mu.Unlock()
	})
	if err := m.store.SaveOperation(context.WithoutCancel(ctx), r.op); err != nil {
		cancel(nil)
		return api.Operation{}, fmt.Errorf("recording operation: %w", err)
	}
	m.mu.Lock()
	m.live[r.op.ID] = r
	m.mu.Unlock()
	m.log.Info("operation begun", "op", r.op.ID, "kind", kind, "target", target)
	m.changed(r.Snapshot())

	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel(nil)
		result, err := runSafely(ctx, r, fn)
		r.crash.Done()
		r.finish(result, err)
		m.mu.Lock()
		delete(m.live, r.op.ID)
		m.mu.Unlock()
	}()
	return r.Snapshot(), nil
}

func runSafely(ctx context.Context, r *Run, fn Func) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = api.Errorf(api.CodeInternal, "operation crashed: %v", p)
		}
	}()
	return fn(ctx, r)
}

// Snapshot returns a copy of the operation's current state.
func (r *Run) Snapshot() api.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotLocked()
}

func (r *Run) snapshotLocked() api.Operation {
	op := r.op
	op.Stages = append([]api.Stage(nil), r.op.Stages...)
	return op
}

// ID returns the operation id.
func (r *Run) ID() string { return r.op.ID }

// Stage finishes the current stage (if any) and starts the named one.
func (r *Run) Stage(name string) {
	r.mu.Lock()
	now := r.m.now().UTC()
	r.closeStageLocked(now, "")
	r.op.Stages = append(r.op.Stages, api.Stage{Name: name, StartedAt: now})
	r.op.CurrentStage = name
	r.op.UpdatedAt = now
	r.emitLocked(api.OperationEvent{Type: api.EventStageStarted, Time: now, Stage: name})
	op := r.snapshotLocked()
	r.mu.Unlock()
	r.persist(op)
	r.crash.Stage(name)
}

// Detail attaches a short note to the current stage (e.g. "reflink", "3 modules").
func (r *Run) Detail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.op.Stages); n > 0 {
		r.op.Stages[n-1].Detail = fmt.Sprintf(format, args...)
	}
}

// Logf emits a progress line within the current stage.
func (r *Run) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.emitLocked(api.OperationEvent{Type: api.EventLog, Time: r.m.now().UTC(), Stage: r.op.CurrentStage,
		Message: fmt.Sprintf(format, args...)})
}

func (r *Run) closeStageLocked(now time.Time, detail string) {
	n := len(r.op.Stages)
	if n == 0 || !r.op.Stages[n-1].FinishedAt.IsZero() {
		return
	}
	st := &r.op.Stages[n-1]
	st.FinishedAt = now
	st.Duration = api.Duration(now.Sub(st.StartedAt))
	if detail != "" && st.Detail == "" {
		st.Detail = detail
	}
	r.m.log.Info("stage finished", "op", r.op.ID, "kind", r.op.Kind, "target", r.op.Target,
		"stage", st.Name, "duration_ms", st.Duration.D().Milliseconds())
	r.emitLocked(api.OperationEvent{Type: api.EventStageFinished, Time: now, Stage: st.Name, Duration: st.Duration,
		Message: st.Detail})
}

func (r *Run) emitLocked(ev api.OperationEvent) {
	if ev.Type == api.EventLog && len(r.events) >= maxEvents {
		r.dropped++
		return
	}
	ev.Operation = r.snapshotLocked()
	r.events = append(r.events, ev)
	close(r.changed)
	r.changed = make(chan struct{})
}

// cancellation returns who canceled the run, or nil while its context
// has not been canceled.
func (r *Run) cancellation() *Cancellation {
	if r.ctx.Err() == nil {
		return nil
	}
	var c *Cancellation
	if errors.As(context.Cause(r.ctx), &c) {
		return c
	}
	return &Cancellation{By: baseEnded}
}

// noteStopLocked records the stage running now as the one the run was
// canceled in, unless one is recorded already.
func (r *Run) noteStopLocked() {
	if r.stopSet {
		return
	}
	r.stopSet, r.stopped = true, -1
	if n := len(r.op.Stages); n > 0 && r.op.Stages[n-1].FinishedAt.IsZero() {
		r.stopped = n - 1
	}
}

// canceledError is a canceled operation's error: who, and where it
// stopped (stage, "" for none). err, what the body returned, is kept when
// it says more than that the context ended (a cleanup that failed).
func canceledError(op api.Operation, stage string, c *Cancellation, err error) *api.Error {
	where := "before its first stage"
	switch {
	case stage != "":
		where = "at stage " + stage
	case len(op.Stages) > 0:
		where = "between stages, after " + op.Stages[len(op.Stages)-1].Name
	}
	msg := fmt.Sprintf("%s canceled by %s %s", strings.ReplaceAll(op.Kind, ".", " "), c.By, where)
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		msg += ": " + err.Error()
	}
	return &api.Error{Code: api.CodeCanceled, Message: msg}
}

func (r *Run) finish(result any, err error) {
	r.mu.Lock()
	now := r.m.now().UTC()
	if c := r.cancellation(); err != nil && c != nil {
		r.noteStopLocked() // when the run ends before AfterFunc ran
		stage := ""
		if r.stopped >= 0 {
			stage = r.op.Stages[r.stopped].Name
		}
		r.op.Error = canceledError(r.op, stage, c, err)
		r.op.State = api.OperationCanceled
		if r.stopped >= 0 {
			// Whatever note the stage had, it now says it was canceled
			// (and its stage_finished event says so when it closes now).
			r.op.Stages[r.stopped].Detail = api.StageCanceled
		}
		r.closeStageLocked(now, "")
		r.m.log.Info("operation canceled", "op", r.op.ID, "by", c.By, "stage", stage, "error", err)
	} else if err != nil {
		r.closeStageLocked(now, "failed")
		r.op.State = api.OperationFailed
		r.op.Error = api.FromError(err)
	} else {
		r.closeStageLocked(now, "")
		r.op.State = api.OperationSucceeded
		if result != nil {
			b, jerr := json.Marshal(result)
			if jerr != nil {
				r.op.State = api.OperationFailed
				r.op.Error = api.Errorf(api.CodeInternal, "encoding result: %v", jerr)
			} else {
				r.op.Result = b
			}
		}
	}
	r.op.CurrentStage = ""
	r.op.UpdatedAt, r.op.FinishedAt = now, now
	op := r.snapshotLocked()
	r.mu.Unlock()
	// Stored before it is announced: whoever hears "done" and then lists
	// the operations finds it finished.
	defer func() {
		r.mu.Lock()
		r.emitLocked(api.OperationEvent{Type: api.EventDone, Time: now})
		r.mu.Unlock()
	}()

	attrs := []any{"op", op.ID, "kind", op.Kind, "target", op.Target, "state", op.State,
		"duration_ms", now.Sub(op.CreatedAt).Milliseconds()}
	if op.State == api.OperationCanceled {
		r.m.log.Info("operation ended canceled", append(attrs, "error", op.Error.Message)...)
	} else if op.Error != nil {
		r.m.log.Warn("operation failed", append(attrs, "error", op.Error.Message)...)
	} else {
		r.m.log.Info("operation finished", attrs...)
	}
	r.persist(op)
	r.m.prune()
}

// Pruner is a Store that can forget old finished operations.
type Pruner interface {
	PruneOperations(ctx context.Context, keep int) (int64, error)
}

// pruneEvery: the store is pruned once per this many finished operations.
const pruneEvery = 64

// prune keeps the store's operations to Keep (when the store can prune),
// checked once per pruneEvery finished operations.
func (m *Manager) prune() {
	p, ok := m.store.(Pruner)
	if !ok || m.finished.Add(1)%pruneEvery != 0 {
		return
	}
	if n, err := p.PruneOperations(context.Background(), m.Keep); err != nil {
		m.log.Warn("pruning operations", "error", err)
	} else if n > 0 {
		m.log.Info("pruned operations", "deleted", n, "kept", m.Keep)
	}
}

func (r *Run) persist(op api.Operation) {
	if err := r.m.store.SaveOperation(context.Background(), op); err != nil {
		r.m.log.Error("persisting operation", "op", op.ID, "error", err)
	}
	// Get answers from the live run, so the change is real even when
	// storing it failed.
	r.m.changed(op)
}

// changed tells OnChange about op's new state.
func (m *Manager) changed(op api.Operation) {
	if m.OnChange != nil {
		m.OnChange(api.Event{Kind: api.EventOperation, ID: op.ID, OperationState: &op})
	}
}

// Live returns the operations running now.
func (m *Manager) Live() []api.Operation {
	m.mu.Lock()
	runs := make([]*Run, 0, len(m.live))
	for _, r := range m.live {
		runs = append(runs, r)
	}
	m.mu.Unlock()
	out := make([]api.Operation, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.Snapshot())
	}
	return out
}

// Get returns the operation: live state when it is running here, the
// stored record otherwise.
func (m *Manager) Get(ctx context.Context, id string) (api.Operation, error) {
	if r := m.liveRun(id); r != nil {
		return r.Snapshot(), nil
	}
	return m.store.GetOperation(ctx, id)
}

func (m *Manager) liveRun(id string) *Run {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live[id]
}

// Cancel asks a running operation to stop on behalf of by (who asked,
// e.g. "banger operation cancel (uid 1000)"): its context is canceled with
// a *Cancellation, and followers hear a log line saying so. The first
// cancel of a run is the one recorded. It is not an error to cancel an
// operation that already finished.
func (m *Manager) Cancel(ctx context.Context, id, by string) error {
	if r := m.liveRun(id); r != nil {
		if by == "" {
			by = "a client"
		}
		if r.ctx.Err() == nil {
			r.mu.Lock()
			r.noteStopLocked()
			r.emitLocked(api.OperationEvent{Type: api.EventLog, Time: r.m.now().UTC(), Stage: r.op.CurrentStage,
				Message: "cancel requested by " + by})
			r.mu.Unlock()
			m.log.Info("operation cancel requested", "op", id, "by", by)
		}
		r.cancel(&Cancellation{By: by})
		return nil
	}
	_, err := m.store.GetOperation(ctx, id)
	return err
}

// Subscribe streams the operation's events to send, starting with a
// snapshot and ending with EventDone. It returns when the operation is done,
// ctx ends, or send fails.
func (m *Manager) Subscribe(ctx context.Context, id string, send func(api.OperationEvent) error) error {
	r := m.liveRun(id)
	if r == nil {
		op, err := m.store.GetOperation(ctx, id)
		if err != nil {
			return err
		}
		if !op.State.Terminal() {
			// Recorded as running but not live here: a record from before a
			// restart that reconciliation has not reached. Report as is.
			return send(api.OperationEvent{Type: api.EventSnapshot, Time: m.now().UTC(), Operation: op})
		}
		if err := send(api.OperationEvent{Type: api.EventSnapshot, Time: m.now().UTC(), Operation: op}); err != nil {
			return err
		}
		return send(api.OperationEvent{Type: api.EventDone, Time: op.FinishedAt, Operation: op})
	}

	r.mu.Lock()
	snap := api.OperationEvent{Type: api.EventSnapshot, Time: m.now().UTC(), Operation: r.snapshotLocked()}
	cursor := len(r.events)
	r.mu.Unlock()
	if err := send(snap); err != nil {
		return err
	}
	if snap.Operation.State.Terminal() {
		return send(api.OperationEvent{Type: api.EventDone, Time: snap.Operation.FinishedAt, Operation: snap.Operation})
	}
	for {
		r.mu.Lock()
		pending := append([]api.OperationEvent(nil), r.events[cursor:]...)
		cursor = len(r.events)
		changed := r.changed
		r.mu.Unlock()
		for _, ev := range pending {
			if err := send(ev); err != nil {
				return err
			}
			if ev.Type == api.EventDone {
				return nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Wait blocks until every running operation has returned or ctx ends.
func (m *Manager) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("operations still running at shutdown")
	}
}
