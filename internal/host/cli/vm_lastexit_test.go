package cli

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/poll"
)

// TestCommandsVMExited: vm show of a VM whose hypervisor was killed says
// why it stopped, when, and what its console said last (escaped).
func TestCommandsVMExited(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	v := h.d.CreateVM(t, api.CreateVMRequest{Name: "demo", Image: daemontest.FakeImage})
	var handle *hypervisor.Handle
	for _, r := range h.d.Fake.Running() {
		if r.PID == v.PID {
			handle = &r
		}
	}
	if handle == nil {
		t.Fatalf("the fake runs no VM with pid %d", v.PID)
	}
	f, err := os.OpenFile(handle.ConsoleLog, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("[    4.2] systemd[1]: Started banger-agent.service\n\x1b]0;pwned\x07[    5.0] out of memory?\n")
	f.Close()
	h.d.Fake.End(*handle, hypervisor.Exit{Code: -1, Signal: syscall.SIGKILL})

	// The daemon's watch notices within its interval.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = poll.Until(ctx, 100*time.Millisecond, func() (bool, error) {
		got, err := h.d.Client.VM(ctx, "demo")
		return err == nil && got.State == api.VMStopped, nil
	})
	if err != nil {
		t.Fatalf("the killed VM was not recorded stopped: %v", err)
	}
	h.runCases(t, []cmdCase{
		{golden: "vm-show-exited", args: []string{"vm", "show", "demo"}},
		{golden: "vm-show-exited-json", args: []string{"vm", "show", "demo", "--json"}},
	})
}
