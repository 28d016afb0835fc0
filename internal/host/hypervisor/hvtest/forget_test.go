package hvtest

import (
	"context"
	"testing"
)

// ForgetStopped drops the stopped VMs and the call log, and keeps the
// running VMs, which still answer as before.
func TestFakeForgetStopped(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	g := FakeGuest(t)
	stopped, err := f.Launch(ctx, fakeSpec(t, g))
	if err != nil {
		t.Fatal(err)
	}
	spec := fakeSpec(t, g)
	spec.ID, spec.Name = "vm2", "two"
	running, err := f.Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Kill(stopped); err != nil {
		t.Fatal(err)
	}
	if n := f.ForgetStopped(); n != 1 {
		t.Errorf("ForgetStopped = %d, want 1", n)
	}
	if l := f.Launched(); len(l) != 1 || l[0].ID != "vm2" {
		t.Errorf("Launched after ForgetStopped = %+v, want only vm2", l)
	}
	if len(f.Calls()) != 0 {
		t.Errorf("Calls after ForgetStopped = %+v, want none", f.Calls())
	}
	if r := f.Running(); len(r) != 1 || r[0] != running {
		t.Errorf("Running = %+v, want %+v", r, running)
	}
	if err := f.Adopt(ctx, running); err != nil {
		t.Errorf("adopting the running VM after ForgetStopped: %v", err)
	}
	if err := f.Adopt(ctx, stopped); err == nil {
		t.Error("adopting a forgotten VM succeeded")
	}
	if n := f.ForgetStopped(); n != 0 {
		t.Errorf("a second ForgetStopped = %d, want 0", n)
	}
}
