package daemontest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/google/go-cmp/cmp"
)

// TestCancelCreateMidway: a create held at its agent health stage (the
// fake guest never answers) is canceled — by a client, by `banger daemon
// stop`, by the daemon's signal — and ends canceled, saying who canceled
// it at that stage, with that stage closed as canceled; its half-made VM,
// TAP and fake hypervisor are gone, and verify finds nothing leaked.
func TestCancelCreateMidway(t *testing.T) {
	uid := os.Getuid()
	tests := []struct {
		name string
		// cancel cancels the create; restart: the daemon stopped, and the
		// test starts it again before it reads the operation.
		cancel  func(t *testing.T, d *daemontest.Daemon, id string)
		restart bool
		by      string
	}{
		{
			name: "banger operation cancel",
			cancel: func(t *testing.T, d *daemontest.Daemon, id string) {
				if err := d.Client.CancelOperation(context.Background(), id, "banger operation cancel"); err != nil {
					t.Fatal(err)
				}
			},
			by: fmt.Sprintf("banger operation cancel (uid %d)", uid),
		},
		{
			name: "a client that names no front end",
			cancel: func(t *testing.T, d *daemontest.Daemon, id string) {
				if err := d.Client.CancelOperation(context.Background(), id, ""); err != nil {
					t.Fatal(err)
				}
			},
			by: fmt.Sprintf("a client (uid %d)", uid),
		},
		{
			name: "banger daemon stop",
			cancel: func(t *testing.T, d *daemontest.Daemon, _ string) {
				if err := d.Client.Shutdown(context.Background(), "banger daemon stop"); err != nil {
					t.Fatal(err)
				}
			},
			restart: true,
			by:      "daemon shutdown (banger daemon stop)",
		},
		{
			name:    "the daemon's signal",
			cancel:  func(t *testing.T, d *daemontest.Daemon, _ string) { d.Stop() },
			restart: true,
			by:      "daemon shutdown (signal)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := daemontest.Start(t, daemontest.Options{Fake: true})
			d.Fake.HealthErr = errors.New("still booting (test)")
			ctx := context.Background()
			op, err := d.Client.BeginCreateVM(ctx, api.CreateVMRequest{Name: "halfway"})
			if err != nil {
				t.Fatal(err)
			}
			waitStage(t, d, op.ID, "agent health")
			tt.cancel(t, d, op.ID)

			var final api.Operation
			if tt.restart {
				d.Restart(t)
				final, err = d.Client.Operation(ctx, op.ID)
			} else {
				final, err = d.Client.WatchOperation(ctx, op.ID, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			want := "vm create canceled by " + tt.by + " at stage agent health"
			if final.State != api.OperationCanceled || final.Error == nil || final.Error.Code != api.CodeCanceled || final.Error.Message != want {
				t.Fatalf("create ended %s, %+v; want canceled: %q", final.State, final.Error, want)
			}
			var details []string
			for _, st := range final.Stages {
				if st.FinishedAt.IsZero() {
					t.Errorf("stage %s left running", st.Name)
				}
				details = append(details, st.Name+": "+st.Detail)
			}
			if got := details[len(details)-1]; got != "agent health: canceled" {
				t.Errorf("last stage %q, want agent health: canceled (stages %v)", got, details)
			}
			if diff := cmp.Diff(createStages[:len(createStages)-1], stageNames(final)); diff != "" {
				t.Errorf("stages (-want +got):\n%s", diff)
			}
			if _, ok := vmNamed(t, d, "halfway"); ok {
				t.Error("the canceled create's VM is still listed")
			}
			requireClean(t, d)
		})
	}
}

// waitStage waits until the operation runs stage.
func waitStage(t *testing.T, d *daemontest.Daemon, id, stage string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		op, err := d.Client.Operation(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if op.State.Terminal() {
			t.Fatalf("operation ended %s (%+v) before stage %q", op.State, op.Error, stage)
		}
		if op.CurrentStage == stage {
			return
		}
	}
	t.Fatalf("operation %s did not reach stage %q within a minute", id, stage)
}
