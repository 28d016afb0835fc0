package store

import (
	"context"
	"errors"
	"testing"
)

// A VM's workspace record is written only by SetWorkspace: an UpdateVM
// from a copy read before the prepare leaves it, a new VM starts with the
// record it is given (a fork copies its source's), and an unknown VM is
// ErrNotFound.
func TestWorkspaceRecord(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.CreateImage(ctx, Image{ID: "img1", Name: "base", State: "ready"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateVM(ctx, VM{ID: "vm1", Name: "a", ImageID: "img1", State: "running"}); err != nil {
		t.Fatal(err)
	}
	stale, err := s.GetVM(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if stale.Workspace != "" {
		t.Fatalf("new VM's workspace = %q, want none", stale.Workspace)
	}
	const ws = `{"dir":"/root/repo","mode":"git"}`
	if err := s.SetWorkspace(ctx, "vm1", ws); err != nil {
		t.Fatal(err)
	}
	stale.State = "stopped"
	if err := s.UpdateVM(ctx, stale); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetVM(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Workspace != ws || got.State != "stopped" {
		t.Fatalf("after UpdateVM: workspace %q state %q, want %q stopped", got.Workspace, got.State, ws)
	}
	if err := s.CreateVMWithLease(ctx, &VM{ID: "vm2", Name: "b", ImageID: "img1", State: "creating", Workspace: ws},
		Lease{IP: "172.30.0.9", VMID: "vm2", MAC: "02:00:00:00:00:09"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[1].Workspace != ws {
		t.Fatalf("listed %+v, want b with the record it was created with", list)
	}
	if err := s.SetWorkspace(ctx, "nope", ws); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetWorkspace of an unknown VM: %v, want ErrNotFound", err)
	}
}
