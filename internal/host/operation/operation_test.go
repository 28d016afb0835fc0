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

func TestCancel(t *testing.T) {
	m, _ := newManager(t)
	op, _ := m.Begin("test", "", func(ctx context.Context, r *Run) (any, error) {
		r.Stage("wait")
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if err := m.Cancel(context.Background(), op.ID); err != nil {
		t.Fatal(err)
	}
	evs := collect(t, m, op.ID)
	if final := evs[len(evs)-1].Operation; final.Error == nil || final.Error.Code != api.CodeCanceled {
		t.Fatalf("final = %+v, want canceled", final)
	}
	if err := m.Cancel(context.Background(), "op-missing"); !errors.Is(err, api.ErrNotFound) {
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
