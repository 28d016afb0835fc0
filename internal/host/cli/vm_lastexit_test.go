package cli

import (
	"syscall"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// TestCommandsVMExited: vm show of a VM whose hypervisor was killed says
// why it stopped, when, and what its console said last (escaped).
func TestCommandsVMExited(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	h.d.CreateVM(t, api.CreateVMRequest{Name: "demo", Image: daemontest.FakeImage})
	h.d.EndVM(t, "demo", "[    4.2] systemd[1]: Started banger-agent.service\n\x1b]0;pwned\x07[    5.0] out of memory?\n",
		hypervisor.Exit{Code: -1, Signal: syscall.SIGKILL})
	h.runCases(t, []cmdCase{
		{golden: "vm-show-exited", args: []string{"vm", "show", "demo"}},
		{golden: "vm-show-exited-json", args: []string{"vm", "show", "demo", "--json"}},
	})
}
