package poll

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name      string
		results   []error // one per check; nil = not done, errDone = done
		cancelAt  int     // cancel the context after this many checks (0: never)
		wantErr   error
		wantCalls int
	}{
		{name: "done at once", results: []error{errDone}, wantCalls: 1},
		{name: "done on the third check", results: []error{nil, nil, errDone}, wantCalls: 3},
		{name: "check fails", results: []error{nil, errBoom}, wantErr: errBoom, wantCalls: 2},
		{name: "context ends while waiting", results: []error{nil, nil, nil, nil}, cancelAt: 2, wantErr: context.Canceled, wantCalls: 2},
		{name: "done wins over an ended context", results: []error{errDone}, cancelAt: 1, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			err := Until(ctx, time.Millisecond, func() (bool, error) {
				if calls == len(tt.results) {
					t.Fatalf("check called %d times, past the script", calls+1)
				}
				r := tt.results[calls]
				calls++
				if calls == tt.cancelAt {
					cancel()
				}
				if r == errDone {
					return true, nil
				}
				return false, r
			})
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("Until = %v, want %v", err, tt.wantErr)
			}
			if calls != tt.wantCalls {
				t.Errorf("check called %d times, want %d", calls, tt.wantCalls)
			}
		})
	}
}

var errDone = errors.New("done (test marker)")

// An ended context is noticed without waiting out a long interval.
func TestUntilReturnsPromptlyOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- Until(ctx, time.Hour, func() (bool, error) { calls++; return false, nil })
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Until = %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Errorf("check called %d times, want 1", calls)
	}
}
