package operation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/google/go-cmp/cmp"
)

// TestOnChange: the begin, each stage and the end reach OnChange (log
// lines do not), each carrying the operation as Get shows it then, and
// the last one equals what is stored.
func TestOnChange(t *testing.T) {
	tests := []struct {
		name string
		fail bool
		want []string
	}{
		{"success", false, []string{"running -", "running fetch", "running unpack", "succeeded -"}},
		{"failure", true, []string{"running -", "running fetch", "running unpack", "failed -"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, st := newManager(t)
			var mu sync.Mutex
			var evs []api.Event
			m.OnChange = func(ev api.Event) { mu.Lock(); evs = append(evs, ev); mu.Unlock() }
			op, err := m.Begin("image.bootstrap", "base", func(ctx context.Context, r *Run) (any, error) {
				r.Stage("fetch")
				r.Logf("a log line is not a change")
				r.Stage("unpack")
				r.Logf("nor is this one")
				if tt.fail {
					return nil, errors.New("disk full")
				}
				return "ok", nil
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			var got []string
			for _, ev := range evs {
				if ev.Kind != api.EventOperation || ev.ID != op.ID || ev.OperationState == nil || ev.OperationState.ID != op.ID {
					t.Fatalf("event %+v: want an operation event of %s carrying it", ev, op.ID)
				}
				got = append(got, fmt.Sprintf("%s %s", ev.OperationState.State, dash(ev.OperationState.CurrentStage)))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			stored, _ := st.GetOperation(context.Background(), op.ID)
			if diff := cmp.Diff(stored, *evs[len(evs)-1].OperationState); diff != "" {
				t.Errorf("the last event is not the stored operation (-stored +event):\n%s", diff)
			}
		})
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
