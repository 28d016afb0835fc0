package tui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

func TestOperationsListFollowsEvents(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "alpha"})
	h := newHarness(t, fakeOptions(d))
	h.waitText("1 VMs")
	h.key("3")
	h.waitText("vm.create", "alpha")
	h.settle()
	viewGolden(h, "operations-list")

	// An operation begun elsewhere reaches the list by the event feed.
	d.CreateVM(t, api.CreateVMRequest{Name: "bravo"})
	h.waitText("bravo")
	h.settle()
	viewGolden(h, "operations-list-event")

	h.key("enter")
	h.waitText("Operation vm.create bravo", "succeeded")
	h.settle()
	viewGolden(h, "operation-watch")
	h.key("esc")
	h.waitText("alpha", "bravo")
}

// TestOperationWatchCancelsARunningCreate: a create whose guest never
// answers health stays running; the list and the watch show its current
// stage live, ctrl+x cancels it, and the feed brings it canceled by the
// TUI at that stage.
func TestOperationWatchCancelsARunningCreate(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.Fake.HealthErr = errors.New("still booting (test)")
	h := newHarness(t, fakeOptions(d))
	h.waitText("1 VMs")
	h.key("3")
	h.waitText("No operations yet")
	if _, err := d.Client.BeginCreateVM(context.Background(), api.CreateVMRequest{Name: "stuck"}); err != nil {
		t.Fatal(err)
	}
	h.waitText("stuck", "running", "agent health")
	h.settle()
	viewGolden(h, "operations-running")

	h.key("enter")
	h.waitText("Operation vm.create stuck", "… agent health")
	h.settle()
	viewGolden(h, "operation-watch-running")
	h.key("ctrl+x")
	h.waitText("Operation vm.create stuck · canceled")
	h.settle()
	viewGolden(h, "operation-watch-cancelled", fmt.Sprintf("(uid %d)", os.Getuid()), "(uid U)")
	op, ok := h.app.Store().LastOperation("stuck", "vm.create")
	want := fmt.Sprintf("vm create canceled by banger tui (uid %d) at stage agent health", os.Getuid())
	if !ok || op.State != api.OperationCanceled || op.Error == nil || op.Error.Message != want {
		t.Fatalf("after ctrl+x the store has %+v, want the create canceled: %q", op, want)
	}
}
