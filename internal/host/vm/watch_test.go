package vm

import (
	"context"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/google/go-cmp/cmp"
)

// A hypervisor that dies while the daemon runs is noticed: the VM is
// recorded stopped, its TAP goes back, and the change is announced. A
// live VM and one whose lock is held are left alone.
func TestCheckRunningRecordsDeadVMs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var log changeLog
	f.m.OnChange = log.add
	dead, err := f.m.Create(ctx, req("dead"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Create(ctx, req("alive"), &progress{}); err != nil {
		t.Fatal(err)
	}
	busy, err := f.m.Create(ctx, req("busy"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.m.CheckRunning(ctx); len(got) != 0 {
		t.Fatalf("nothing died yet, CheckRunning found %v", got)
	}
	log.take()

	f.hv.Crash(*dead.Runtime.Handle)
	f.hv.Crash(*busy.Runtime.Handle)
	unlock := f.m.lock(busy.ID) // a stop or delete at work on it
	got := f.m.CheckRunning(ctx)
	if diff := cmp.Diff([]string{"dead"}, got); diff != "" {
		t.Fatalf("found dead (-want +got):\n%s", diff)
	}
	v, err := f.m.Get(ctx, "dead")
	if err != nil {
		t.Fatal(err)
	}
	if v.State != api.VMStopped || v.Runtime.Handle != nil || v.Runtime.TAP != "" {
		t.Errorf("dead VM recorded as %s handle=%v tap=%q", v.State, v.Runtime.Handle, v.Runtime.TAP)
	}
	if diff := cmp.Diff([]string{"dead stopped"}, states(t, log.take())); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if b, _ := f.m.Get(ctx, "busy"); b.State != api.VMRunning {
		t.Errorf("a VM whose lock is held was touched: %s", b.State)
	}
	unlock()
	if got := f.m.CheckRunning(ctx); !cmp.Equal(got, []string{"busy"}) {
		t.Errorf("after its lock was released: %v, want [busy]", got)
	}
	if a, _ := f.m.Get(ctx, "alive"); a.State != api.VMRunning {
		t.Errorf("a live VM was marked %s", a.State)
	}
	if n := f.net.holding(); n != 1 {
		t.Errorf("%d TAPs held, want 1 (alive's)", n)
	}
}
