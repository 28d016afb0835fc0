package frontend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/shared/workspace"
)

// TestAgainstRealDaemon drives the shared layer against a real in-process
// bangerd with the fake hypervisor: a create followed to its end, its
// timeline, a late follower replaying a finished operation, a refusal
// naming the field, and vm run whose copy fails (the fake guest takes no
// files) keeping the VM.
func TestAgainstRealDaemon(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	ctx := context.Background()

	var types []api.EventType
	var opID string
	v, err := CreateVM(ctx, d.Client, api.CreateVMRequest{Name: "demo"}, func(ev api.OperationEvent) {
		types = append(types, ev.Type)
		opID = ev.Operation.ID
	})
	if err != nil {
		t.Fatalf("CreateVM: %v", err)
	}
	if v.Name != "demo" || v.State != api.VMRunning {
		t.Errorf("created %+v, want demo running", v)
	}
	if len(types) < 3 || types[0] != api.EventSnapshot || types[len(types)-1] != api.EventDone {
		t.Errorf("events %v, want a snapshot first and done last", types)
	}

	op, err := d.Client.Operation(ctx, opID)
	if err != nil {
		t.Fatal(err)
	}
	lines := StageTimeline(op, time.Now())
	if len(lines) == 0 || len(lines) != len(op.Stages) {
		t.Fatalf("timeline %+v of %d stages", lines, len(op.Stages))
	}
	for _, l := range lines {
		if !l.Done || l.Failed || l.Name == "" {
			t.Errorf("stage %+v of a successful create, want done and not failed", l)
		}
	}

	// A follower that comes after the end gets the snapshot and done.
	var late []api.EventType
	final, err := FollowOperation(ctx, d.Client, opID, func(ev api.OperationEvent) { late = append(late, ev.Type) })
	if err != nil || final.State != api.OperationSucceeded {
		t.Fatalf("following a finished operation: %+v, %v", final.State, err)
	}
	if len(late) != 2 || late[0] != api.EventSnapshot || late[1] != api.EventDone {
		t.Errorf("late follower got %v, want snapshot and done", late)
	}
	var decoded api.VM
	if err := DecodeResult(final, &decoded); err != nil || decoded.Name != "demo" {
		t.Errorf("DecodeResult: %+v, %v", decoded, err)
	}

	// The daemon refuses bad input at once, naming the field.
	_, err = CreateVM(ctx, d.Client, api.CreateVMRequest{Name: "demo2", VCPUs: 5000}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || ae.Field != "vcpus" {
		t.Errorf("a create with 5000 vCPUs: %#v, want invalid argument on field vcpus", err)
	}

	// vm run: the VM is created; the fake guest serves no file transfer,
	// so the copy fails, and the VM is kept running for a retry.
	checkout := t.TempDir()
	os.WriteFile(filepath.Join(checkout, "README"), []byte("hi\n"), 0o644)
	var stages []string
	rv, err := RunVM(ctx, d.Client, RunRequest{Create: api.CreateVMRequest{Name: "runner"}, Checkout: checkout, Mode: workspace.ModeFullCopy},
		Progress{OnStage: func(s string) { stages = append(stages, s) }})
	var we *WorkspaceError
	if !errors.As(err, &we) {
		t.Fatalf("RunVM: %v, want a WorkspaceError (the fake guest takes no files)", err)
	}
	if we.VM.Name != "runner" || rv.Name != "runner" {
		t.Errorf("WorkspaceError for %q, returned %q, want runner", we.VM.Name, rv.Name)
	}
	if got, gerr := d.Client.VM(ctx, "runner"); gerr != nil || got.State != api.VMRunning {
		t.Errorf("after a failed copy the VM is %+v, %v; want it kept running", got.State, gerr)
	}
	if len(stages) != 3 || stages[2] != StagePrepareWorkspace {
		t.Errorf("stages %v, want all three", stages)
	}
}
