package tui

import (
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

func TestVMListAfterCreates(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		d.CreateVM(t, api.CreateVMRequest{Name: name})
	}
	h := newHarness(t, fakeOptions(d))
	h.waitText("alpha", "bravo", "charlie")
	h.settle()
	h.golden("vms-list")
}

func TestVMFilter(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	for _, name := range []string{"web-1", "web-2", "db-1"} {
		d.CreateVM(t, api.CreateVMRequest{Name: name})
	}
	h := newHarness(t, fakeOptions(d))
	h.waitText("web-1", "web-2", "db-1")
	h.key("/")
	h.typeText("web")
	h.settle()
	h.golden("vms-filter-typing")
	h.key("enter")
	h.key("down")
	h.settle()
	h.golden("vms-filter-kept")
	h.key("/")
	h.key("esc")
	h.waitText("db-1")
}

func TestCreateFormFieldError(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	h := newHarness(t, fakeOptions(d))
	h.waitText("No VMs yet")
	h.key("c")
	h.waitText("Create a VM")
	h.settle()
	h.golden("create-form")
	h.key("down")
	h.key("down")
	h.typeText("99")
	h.key("enter")
	h.waitText("✗")
	h.settle()
	h.golden("create-field-error")
}
