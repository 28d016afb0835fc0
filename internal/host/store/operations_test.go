package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
)

// TestFailedOperationKeepsItsFieldError: an operation that failed on a
// request field reads back with the field and what it accepts, so a front
// end that follows it after it finished still shows the error beside the
// field (the CLI prints the flag).
func TestFailedOperationKeepsItsFieldError(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	op := api.Operation{ID: "op1", Kind: "vm.create", State: api.OperationFailed, Stages: []api.Stage{},
		Error: &api.Error{Code: api.CodeFailedPrecondition, Field: "hypervisor", Allowed: "qemu",
			Message: "hypervisor firecracker needs KVM, and KVM cannot boot guests on this host: use qemu"},
		CreatedAt: t0, UpdatedAt: t0, FinishedAt: t0}
	if err := s.SaveOperation(ctx, op); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetOperation(ctx, "op1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(op, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// An error without a field reads back without one.
	op.ID, op.Error = "op2", &api.Error{Code: api.CodeInternal, Message: "boom"}
	if err := s.SaveOperation(ctx, op); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetOperation(ctx, "op2"); got.Error == nil || *got.Error != *op.Error {
		t.Errorf("op2 error = %+v, want %+v", got.Error, op.Error)
	}
}

// TestCanceledOperationRoundTrip: the state is free text (no migration):
// a canceled operation reads back as saved, with who canceled it and the
// stage it stopped at, and a daemon start (FailUnfinished) leaves it alone.
func TestCanceledOperationRoundTrip(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	op := api.Operation{ID: "op1", Kind: "vm.create", Target: "demo", State: api.OperationCanceled,
		Stages: []api.Stage{
			{Name: "allocate", StartedAt: t0, FinishedAt: t0.Add(time.Second), Duration: api.Duration(time.Second), Detail: "demo, 172.30.0.2"},
			{Name: "launch qemu", StartedAt: t0.Add(time.Second), FinishedAt: t0.Add(3 * time.Second), Duration: api.Duration(2 * time.Second), Detail: api.StageCanceled},
		},
		Error:     &api.Error{Code: api.CodeCanceled, Message: "vm create canceled by banger operation cancel (uid 1000) at stage launch qemu"},
		CreatedAt: t0, UpdatedAt: t0.Add(3 * time.Second), FinishedAt: t0.Add(3 * time.Second)}
	if err := s.SaveOperation(ctx, op); err != nil {
		t.Fatal(err)
	}
	ids, err := s.FailUnfinished(ctx, "interrupted by daemon restart", t0.Add(time.Hour))
	if err != nil || len(ids) != 0 {
		t.Fatalf("FailUnfinished = %v, %v; want nothing changed", ids, err)
	}
	got, err := s.GetOperation(ctx, "op1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(op, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// TestPruneOperations keeps the newest finished operations and every
// running one.
func TestPruneOperations(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		at := t0.Add(time.Duration(i) * time.Minute)
		op := api.Operation{ID: fmt.Sprintf("op%d", i), Kind: "vm.create", State: api.OperationSucceeded, Stages: []api.Stage{},
			CreatedAt: at, UpdatedAt: at, FinishedAt: at}
		if i == 1 { // an old one still running
			op.State, op.FinishedAt = api.OperationRunning, time.Time{}
		}
		if err := s.SaveOperation(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneOperations(ctx, 3)
	if err != nil || n != 6 {
		t.Fatalf("PruneOperations(3) = %d, %v; want 6 deleted", n, err)
	}
	ops, err := s.ListOperations(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, op := range ops {
		ids = append(ids, op.ID)
	}
	slices.Sort(ids)
	if want := []string{"op1", "op7", "op8", "op9"}; !slices.Equal(ids, want) {
		t.Errorf("kept %v, want %v (the newest three and the running one)", ids, want)
	}
}
