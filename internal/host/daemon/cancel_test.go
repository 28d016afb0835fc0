package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// TestCancelRoute: POST /v1/operations/{id}/cancel with and without a
// body. The operation's error names the front end the body gives (cleaned
// of control characters, bounded) and the caller's uid from the socket's
// peer credentials; a request through the web listener is "the web UI"
// whatever its body says; a body that is not a CancelOperationRequest is
// refused and cancels nothing.
func TestCancelRoute(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.Fake.HealthErr = errors.New("still booting (test)")
	b, _ := webLogin(t, d, "127.0.0.1:0")
	hc := rawClient(d)
	uid := os.Getuid()
	viaSocket := func(body string) func(t *testing.T, id string) int {
		return func(t *testing.T, id string) int {
			return send(t, hc, http.MethodPost, "/v1/operations/"+id+"/cancel", body, nil).status
		}
	}
	tests := []struct {
		name   string
		cancel func(t *testing.T, id string) int
		by     string
	}{
		{"no body", viaSocket(""), "a client"},
		{"empty object", viaSocket(`{}`), "a client"},
		{"a front end's name", viaSocket(`{"by":"banger operation cancel"}`), "banger operation cancel"},
		{"control characters dropped", viaSocket(`{"by":"evil\u001b[31m\nname"}`), "evil [31m name"},
		{"a long name cut", viaSocket(`{"by":"` + strings.Repeat("x", 100) + `"}`), strings.Repeat("x", 64)},
		{"through the web listener", func(t *testing.T, id string) int {
			resp, _ := b.do(t, http.MethodPost, "/v1/operations/"+id+"/cancel", `{"by":"banger operation cancel"}`, true)
			return resp.StatusCode
		}, "the web UI"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := beginHeldCreate(t, d, fmt.Sprintf("held-%d", i))
			if status := tt.cancel(t, id); status != http.StatusAccepted {
				t.Fatalf("cancel answered %d, want 202", status)
			}
			final, err := d.Client.WatchOperation(context.Background(), id, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("vm create canceled by %s (uid %d) at stage agent health", tt.by, uid)
			if final.State != api.OperationCanceled || final.Error == nil || final.Error.Message != want {
				t.Errorf("ended %s, %+v; want canceled: %q", final.State, final.Error, want)
			}
		})
	}

	t.Run("a body of another shape", func(t *testing.T) {
		id := beginHeldCreate(t, d, "held-bad")
		a := send(t, hc, http.MethodPost, "/v1/operations/"+id+"/cancel", `{"who":"me"}`, nil)
		if a.status != http.StatusBadRequest || a.err == nil || a.err.Code != api.CodeInvalidArgument {
			t.Fatalf("cancel with {\"who\"} answered %d %+v, want 400 invalid_argument", a.status, a.err)
		}
		if op, _ := d.Client.Operation(context.Background(), id); op.State != api.OperationRunning {
			t.Errorf("a refused cancel ended the operation: %s", op.State)
		}
		if err := d.Client.CancelOperation(context.Background(), id, "test"); err != nil {
			t.Fatal(err)
		}
		if final, _ := d.Client.WatchOperation(context.Background(), id, nil); final.State != api.OperationCanceled {
			t.Errorf("ended %s, want canceled", final.State)
		}
	})
}

// beginHeldCreate begins a create that stays at its agent health stage
// (the daemon's Fake has a HealthErr) and returns its id once it is there.
func beginHeldCreate(t *testing.T, d *daemontest.Daemon, name string) string {
	t.Helper()
	ctx := context.Background()
	op, err := d.Client.BeginCreateVM(ctx, api.CreateVMRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		got, err := d.Client.Operation(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State.Terminal() {
			t.Fatalf("create of %s ended %s (%+v) before agent health", name, got.State, got.Error)
		}
		if got.CurrentStage == "agent health" {
			return op.ID
		}
	}
	t.Fatalf("create of %s did not reach agent health within a minute", name)
	return ""
}
