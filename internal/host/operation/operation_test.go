package operation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/google/go-cmp/cmp"
)

// memStore is a hand-written fake that records every save.
type memStore struct {
	mu    sync.Mutex
	ops   map[string]api.Operation
	saves []api.OperationState
}

func newMemStore() *memStore { return &memStore{ops: map[string]api.Operation{}} }

func (s *memStore) SaveOperation(_ context.Context, op api.Operation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops[op.ID] = op
	s.saves = append(s.saves, op.State)
	return nil
}

func (s *memStore) GetOperation(_ context.Context, id string) (api.Operation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	op, ok := s.ops[id]
	if !ok {
		return op, api.Errorf(api.CodeNotFound, "operation %s not found", id)
	}
	return op, nil
}

func newManager(t *testing.T) (*Manager, *memStore) {
	st := newMemStore()
	m := NewManager(context.Background(), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Wait(ctx)
	})
	return m, st
}

func collect(t *testing.T, m *Manager, id string) []api.OperationEvent {
	return collectAttached(t, m, id, nil)
}

// collectAttached subscribes and closes attached once the snapshot arrived,
// so a test can start the work only when the subscriber is in place.
func collectAttached(t *testing.T, m *Manager, id string, attached chan struct{}) []api.OperationEvent {
	t.Helper()
	var evs []api.OperationEvent
	err := m.Subscribe(context.Background(), id, func(ev api.OperationEvent) error {
		evs = append(evs, ev)
		if ev.Type == api.EventSnapshot && attached != nil {
			close(attached)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func eventTypes(evs []api.OperationEvent) []string {
	var out []string
	for _, ev := range evs {
		s := string(ev.Type)
		if ev.Stage != "" {
			s += ":" + ev.Stage
		}
		out = append(out, s)
	}
	return out
}

func TestBeginReturnsAtOnceAndStreamsStages(t *testing.T) {
	m, st := newManager(t)
	release := make(chan struct{})
	op, err := m.Begin("test", "thing", func(ctx context.Context, r *Run) (any, error) {
		<-release
		r.Stage("one")
		r.Logf("working %d", 1)
		r.Stage("two")
		r.Detail("fast path")
		return map[string]int{"answer": 42}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if op.State != api.OperationRunning || op.ID == "" {
		t.Fatalf("Begin returned %+v, want a running operation with an id", op)
	}
	if got, _ := st.GetOperation(context.Background(), op.ID); got.State != api.OperationRunning {
		t.Errorf("operation not persisted at begin: %+v", got)
	}

	done := make(chan []api.OperationEvent)
	attached := make(chan struct{})
	go func() { done <- collectAttached(t, m, op.ID, attached) }()
	<-attached
	close(release)
	evs := <-done

	want := []string{"snapshot", "stage_started:one", "log:one", "stage_finished:one", "stage_started:two", "stage_finished:two", "done"}
	if diff := cmp.Diff(want, eventTypes(evs)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	final := evs[len(evs)-1].Operation
	if final.State != api.OperationSucceeded || string(final.Result) != `{"answer":42}` {
		t.Errorf("final = %+v", final)
	}
	if len(final.Stages) != 2 || final.Stages[1].Detail != "fast path" || final.Stages[0].FinishedAt.IsZero() {
		t.Errorf("stages = %+v", final.Stages)
	}
	stored, _ := m.Get(context.Background(), op.ID)
	if diff := cmp.Diff(final, stored); diff != "" {
		t.Errorf("stored differs from the final event (-event +stored):\n%s", diff)
	}
	// A subscriber that arrives after the end gets snapshot + done.
	if diff := cmp.Diff([]string{"snapshot", "done"}, eventTypes(collect(t, m, op.ID))); diff != "" {
		t.Errorf("late subscriber (-want +got):\n%s", diff)
	}
}

func TestFailuresKeepTheirCode(t *testing.T) {
	tests := []struct {
		name string
		fn   Func
		code api.Code
	}{
		{"typed error", func(ctx context.Context, r *Run) (any, error) {
			r.Stage("s")
			return nil, fmt.Errorf("doing s: %w", api.Errorf(api.CodeFailedPrecondition, "no kernel; run banger image bootstrap"))
		}, api.CodeFailedPrecondition},
		{"plain error", func(ctx context.Context, r *Run) (any, error) { return nil, errors.New("boom") }, api.CodeInternal},
		{"panic", func(ctx context.Context, r *Run) (any, error) { panic("bad") }, api.CodeInternal},
		{"unencodable result", func(ctx context.Context, r *Run) (any, error) { return func() {}, nil }, api.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newManager(t)
			op, err := m.Begin("test", "", tt.fn)
			if err != nil {
				t.Fatal(err)
			}
			evs := collect(t, m, op.ID)
			final := evs[len(evs)-1].Operation
			if final.State != api.OperationFailed || final.Error == nil || final.Error.Code != tt.code {
				t.Fatalf("final = %+v, want failed with %s", final, tt.code)
			}
			for _, st := range final.Stages {
				if st.FinishedAt.IsZero() {
					t.Errorf("stage %s left open after failure", st.Name)
				}
			}
		})
	}
}

// TestCancel: a canceled run ends canceled (not failed), its error says
// who canceled it and at which stage, that stage is closed as canceled,
// and the record stored is the one streamed.
func TestCancel(t *testing.T) {
	byClient := func(m *Manager, _ context.CancelCauseFunc, id string) error {
		return m.Cancel(context.Background(), id, "banger operation cancel (uid 0)")
	}
	tests := []struct {
		name string
		// stages run before the body waits; none: it waits before its first.
		stages []string
		// cancel cancels the running operation (m's base is stop's).
		cancel func(m *Manager, stop context.CancelCauseFunc, id string) error
		// ret is what the body returns once its context ended.
		ret       func(ctx context.Context) (any, error)
		state     api.OperationState
		message   string
		stageNote []string // each stage's final detail
	}{
		{
			name:   "by a client at a stage",
			stages: []string{"allocate", "launch"}, cancel: byClient,
			ret:       func(ctx context.Context) (any, error) { return nil, fmt.Errorf("launching: %w", ctx.Err()) },
			state:     api.OperationCanceled,
			message:   "vm create canceled by banger operation cancel (uid 0) at stage launch",
			stageNote: []string{"", "canceled"},
		},
		{
			name:   "before its first stage",
			cancel: byClient,
			ret:    func(ctx context.Context) (any, error) { return nil, ctx.Err() },
			state:  api.OperationCanceled, message: "vm create canceled by banger operation cancel (uid 0) before its first stage",
		},
		{
			name:   "a cleanup error is kept",
			stages: []string{"launch"}, cancel: byClient,
			ret:       func(ctx context.Context) (any, error) { return nil, errors.New("removing the work disk: device busy") },
			state:     api.OperationCanceled,
			message:   "vm create canceled by banger operation cancel (uid 0) at stage launch: removing the work disk: device busy",
			stageNote: []string{"canceled"},
		},
		{
			name:   "by the daemon shutting down, with its reason",
			stages: []string{"launch"},
			cancel: func(_ *Manager, stop context.CancelCauseFunc, _ string) error {
				stop(&Cancellation{By: "daemon shutdown (banger daemon stop)"})
				return nil
			},
			ret:       func(ctx context.Context) (any, error) { return nil, ctx.Err() },
			state:     api.OperationCanceled,
			message:   "vm create canceled by daemon shutdown (banger daemon stop) at stage launch",
			stageNote: []string{"canceled"},
		},
		{
			name:   "by the base context without a cause",
			stages: []string{"launch"},
			cancel: func(_ *Manager, stop context.CancelCauseFunc, _ string) error { stop(nil); return nil },
			ret:    func(ctx context.Context) (any, error) { return nil, ctx.Err() },
			state:  api.OperationCanceled, message: "vm create canceled by the daemon stopping at stage launch",
			stageNote: []string{"canceled"},
		},
		{
			name:   "finished anyway",
			stages: []string{"launch"}, cancel: byClient,
			ret:       func(ctx context.Context) (any, error) { return "made", nil },
			state:     api.OperationSucceeded,
			stageNote: []string{""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newMemStore()
			base, stop := context.WithCancelCause(context.Background())
			defer stop(nil)
			m := NewManager(base, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
			waiting := make(chan struct{})
			op, err := m.Begin("vm.create", "demo", func(ctx context.Context, r *Run) (any, error) {
				for _, s := range tt.stages {
					r.Stage(s)
				}
				close(waiting)
				<-ctx.Done()
				return tt.ret(ctx)
			})
			if err != nil {
				t.Fatal(err)
			}
			<-waiting
			if err := tt.cancel(m, stop, op.ID); err != nil {
				t.Fatal(err)
			}
			evs := collect(t, m, op.ID)
			final := evs[len(evs)-1].Operation
			if final.State != tt.state {
				t.Fatalf("final state %s, want %s (error %+v)", final.State, tt.state, final.Error)
			}
			var msg string
			if final.Error != nil {
				msg = final.Error.Message
				if final.Error.Code != api.CodeCanceled {
					t.Errorf("error code %s, want canceled", final.Error.Code)
				}
			}
			if msg != tt.message {
				t.Errorf("error message\n got %q\nwant %q", msg, tt.message)
			}
			var notes []string
			for _, s := range final.Stages {
				if s.FinishedAt.IsZero() {
					t.Errorf("stage %s left running", s.Name)
				}
				notes = append(notes, s.Detail)
			}
			if diff := cmp.Diff(tt.stageNote, notes); diff != "" {
				t.Errorf("stage details (-want +got):\n%s", diff)
			}
			if stored, _ := st.GetOperation(context.Background(), op.ID); stored.State != tt.state {
				t.Errorf("stored state %s, want %s", stored.State, tt.state)
			}
			// The event that closed the canceled stage says so.
			for i, want := range tt.stageNote {
				if want != api.StageCanceled {
					continue
				}
				i := slices.IndexFunc(evs, func(ev api.OperationEvent) bool {
					return ev.Type == api.EventStageFinished && ev.Stage == tt.stages[i]
				})
				if i < 0 || evs[i].Message != api.StageCanceled {
					t.Errorf("no stage_finished event for %s saying canceled: %v", tt.stages[i], eventTypes(evs))
				}
			}
		})
	}
}

// TestCancelRequestIsHeard: followers hear who asked as a log line, a
// second cancel does not change who is recorded, and cancelling an
// unknown operation is not found.
func TestCancelRequestIsHeard(t *testing.T) {
	m, _ := newManager(t)
	waiting := make(chan struct{})
	op, _ := m.Begin("image.bootstrap", "deb", func(ctx context.Context, r *Run) (any, error) {
		r.Stage("debootstrap")
		close(waiting)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	<-waiting
	done := make(chan []api.OperationEvent)
	attached := make(chan struct{})
	go func() { done <- collectAttached(t, m, op.ID, attached) }()
	<-attached
	if err := m.Cancel(context.Background(), op.ID, "banger tui (uid 1000)"); err != nil {
		t.Fatal(err)
	}
	if err := m.Cancel(context.Background(), op.ID, "someone later"); err != nil {
		t.Fatal(err)
	}
	evs := <-done
	var logs []string
	for _, ev := range evs {
		if ev.Type == api.EventLog {
			logs = append(logs, ev.Stage+": "+ev.Message)
		}
	}
	if diff := cmp.Diff([]string{"debootstrap: cancel requested by banger tui (uid 1000)"}, logs); diff != "" {
		t.Errorf("log events (-want +got):\n%s", diff)
	}
	final := evs[len(evs)-1].Operation
	if want := "image bootstrap canceled by banger tui (uid 1000) at stage debootstrap"; final.Error == nil || final.Error.Message != want {
		t.Errorf("final error %+v, want %q", final.Error, want)
	}
	if err := m.Cancel(context.Background(), "op-missing", "x"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("cancel unknown: %v", err)
	}
}

func TestManySubscribers(t *testing.T) {
	m, _ := newManager(t)
	release := make(chan struct{})
	op, _ := m.Begin("test", "", func(ctx context.Context, r *Run) (any, error) {
		<-release
		for i := range 20 {
			r.Stage(fmt.Sprintf("s%d", i))
		}
		return nil, nil
	})
	var wg, attached sync.WaitGroup
	counts := make([]int, 8)
	for i := range counts {
		wg.Add(1)
		attached.Add(1)
		go func() {
			defer wg.Done()
			m.Subscribe(context.Background(), op.ID, func(ev api.OperationEvent) error {
				switch ev.Type {
				case api.EventSnapshot:
					attached.Done()
				case api.EventStageFinished:
					counts[i]++
				}
				return nil
			})
		}()
	}
	attached.Wait()
	close(release)
	wg.Wait()
	for i, c := range counts {
		// A subscriber sees every stage that finished after it attached;
		// all attached before the first stage, so all 20.
		if c != 20 {
			t.Errorf("subscriber %d saw %d finished stages, want 20", i, c)
		}
	}
}

// Whoever hears "done" finds the operation finished in the store: the end
// is stored before it is announced (a list right after a watch must not
// say running).
func TestDoneIsStoredBeforeItIsAnnounced(t *testing.T) {
	for i := 0; i < 20; i++ {
		m, st := newManager(t)
		release := make(chan struct{})
		op, err := m.Begin("test", "x", func(ctx context.Context, r *Run) (any, error) {
			<-release
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		attached := make(chan struct{})
		go func() { <-attached; close(release) }()
		var stored api.Operation
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
		defer cancel()
		err = m.Subscribe(ctx, op.ID, func(ev api.OperationEvent) error {
			switch ev.Type {
			case api.EventSnapshot:
				close(attached)
			case api.EventDone:
				stored, _ = st.GetOperation(context.Background(), op.ID)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if stored.State != api.OperationSucceeded {
			t.Fatalf("run %d: at done the store says %q", i, stored.State)
		}
	}
}

// prunedStore is a memStore that records prune calls.
type prunedStore struct {
	*memStore
	prunes []int
}

func (p *prunedStore) PruneOperations(_ context.Context, keep int) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prunes = append(p.prunes, keep)
	return 0, nil
}

// TestFinishedOperationsArePruned: the manager asks a store that can
// prune to keep Keep operations, once per pruneEvery finished ones.
func TestFinishedOperationsArePruned(t *testing.T) {
	st := &prunedStore{memStore: newMemStore()}
	m := NewManager(context.Background(), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.Keep = 5
	for range 2 * pruneEvery {
		if _, err := m.Begin("test", "x", func(context.Context, *Run) (any, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if want := []int{5, 5}; !slices.Equal(st.prunes, want) {
		t.Errorf("prunes = %v after %d operations, want %v", st.prunes, 2*pruneEvery, want)
	}
}
