package tui

import (
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
