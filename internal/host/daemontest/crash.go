package daemontest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/poll"
)

// EndVM ends a running fake VM as exit says (a crash, a kill, a power
// off) after its console printed console, and waits until the daemon
// has recorded it stopped with its last exit (its watch notices within
// its interval). It returns the VM as the daemon then shows it.
func (d *Daemon) EndVM(tb testing.TB, name, console string, exit hypervisor.Exit) api.VM {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := d.Client.VM(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	var handle *hypervisor.Handle
	for _, r := range d.Fake.Running() {
		if r.PID == v.PID {
			handle = &r
		}
	}
	if handle == nil {
		tb.Fatalf("the fake runs no VM with pid %d (%s)", v.PID, name)
	}
	f, err := os.OpenFile(handle.ConsoleLog, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	f.WriteString(console)
	f.Close()
	d.Fake.End(*handle, exit)
	if err := poll.Until(ctx, 100*time.Millisecond, func() (bool, error) {
		v, err = d.Client.VM(ctx, name)
		return err == nil && v.State == api.VMStopped && v.LastExit != nil, nil
	}); err != nil {
		tb.Fatalf("vm %s was not recorded stopped with its last exit: %v", name, err)
	}
	return v
}
