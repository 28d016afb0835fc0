package hostnet

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// idleNames lists the idle TAPs the fake holds, given the leases.
func idleNames(h *fakeHost, leased ...string) []string {
	return IdleTAPs(planConfig(), h.st, leased)
}

func TestPoolAcquireTakesTheTAPOfTheGuestAddress(t *testing.T) {
	ctx := context.Background()
	h := &fakeHost{st: converged()}
	p := NewPool(planConfig(), h, nil)

	a, err := p.Acquire(ctx, nil, mustAddr("172.30.0.2"))
	if err != nil || a != "tap-pool-0" {
		t.Fatalf("Acquire(172.30.0.2) = %q, %v; want tap-pool-0", a, err)
	}
	b, err := p.Acquire(ctx, nil, mustAddr("172.30.0.3"))
	if err != nil || b != "tap-pool-1" {
		t.Fatalf("Acquire(172.30.0.3) = %q, %v; want tap-pool-1", b, err)
	}
	if len(h.applied) != 0 {
		t.Errorf("Acquire of healthy idle TAPs applied %v, want nothing", h.applied)
	}
	// The pool remembers what it handed out even if the caller has not
	// recorded the lease yet, and never hands one TAP to two VMs.
	if got, err := p.Acquire(ctx, nil, mustAddr("172.30.0.3")); err == nil || !strings.Contains(err.Error(), "another VM holds it") {
		t.Errorf("Acquire(172.30.0.3) again = %q, %v; want a refusal", got, err)
	}
	// The TAP of a higher address does not exist yet: Acquire creates it
	// (root bangerd).
	c, err := p.Acquire(ctx, []string{a, b}, mustAddr("172.30.0.9"))
	if err != nil || c != "tap-pool-7" {
		t.Fatalf("Acquire(172.30.0.9) = %q, %v; want a new tap-pool-7", c, err)
	}
	if diff := cmp.Diff(cat([]Step{bind("tap-pool-7")}, newTAP(7)), h.applied, cmpOpts...); diff != "" {
		t.Errorf("steps of the third Acquire (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"172.30.0.1", "172.30.0.255", "10.0.0.2"} {
		if got, err := p.Acquire(ctx, nil, mustAddr(bad)); err == nil {
			t.Errorf("Acquire(%s) = %q, want an error: not a guest address", bad, got)
		}
	}
	// Ensure refills to PoolSize idle TAPs.
	if err := p.Ensure(ctx, []string{a, b, c}); err != nil {
		t.Fatal(err)
	}
	if got := idleNames(h, a, b, c); len(got) != 2 {
		t.Errorf("idle after Ensure = %v, want 2", got)
	}
}

func TestPoolAcquireRepairsTheTAPItHandsOut(t *testing.T) {
	h := &fakeHost{st: with(converged(), func(s *State) { s.TAPs[0].Up, s.TAPs[0].Isolated = false, false })}
	p := NewPool(planConfig(), h, nil)
	if _, err := p.Acquire(context.Background(), nil, mustAddr("172.30.0.2")); err != nil {
		t.Fatal(err)
	}
	want := []Step{SetIsolated{Name: "tap-pool-0"}, SetLinkUp{Name: "tap-pool-0"}}
	if diff := cmp.Diff(want, h.applied, cmpOpts...); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
}

func TestPoolExhaustedWithoutPrivileges(t *testing.T) {
	ctx := context.Background()
	h := &fakeHost{
		st: converged(),
		fail: func(s Step) error {
			if _, ok := s.(CreateTAP); ok {
				return syscall.EPERM
			}
			return nil
		},
	}
	p := NewPool(planConfig(), h, nil)
	_, err := p.Acquire(ctx, []string{"tap-pool-0", "tap-pool-1"}, mustAddr("172.30.0.4"))
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("Acquire = %v, want ErrPoolExhausted", err)
	}
	if !errors.Is(err, syscall.EPERM) {
		t.Errorf("Acquire error %v does not carry EPERM", err)
	}
	for _, want := range []string{"sudo banger host setup --taps 3", "tap-pool-2", "172.30.0.4", "operation not permitted"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Acquire error %q does not mention %q", err, want)
		}
	}
	t.Logf("error: %v", err)

	// Other failures are not reported as exhaustion.
	h.fail = func(s Step) error {
		if _, ok := s.(AttachToBridge); ok {
			return syscall.ENODEV
		}
		return nil
	}
	if _, err := p.Acquire(ctx, []string{"tap-pool-0", "tap-pool-1"}, mustAddr("172.30.0.4")); err == nil || errors.Is(err, ErrPoolExhausted) {
		t.Errorf("Acquire with a broken bridge = %v, want a plain error", err)
	}
}

func TestPoolRelease(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		st     State
		tap    string
		fail   func(Step) error
		steps  []Step
		errHas string
	}{
		{
			name:  "kept as capacity when the pool is short",
			st:    with(converged(), func(s *State) { s.TAPs[0].Master = "" }),
			tap:   "tap-pool-1",
			steps: []Step{FlushPort{Name: "tap-pool-1"}},
		},
		{
			name: "repaired when kept",
			st: with(converged(), func(s *State) {
				s.TAPs[0].Master = ""
				s.TAPs[1].Up = false
			}),
			tap:   "tap-pool-1",
			steps: []Step{FlushPort{Name: "tap-pool-1"}, SetLinkUp{Name: "tap-pool-1"}},
		},
		{
			name:  "deleted when the pool is full",
			st:    with(converged(), func(s *State) { s.TAPs = append(s.TAPs, healthyTAP(2)) }),
			tap:   "tap-pool-2",
			steps: []Step{DeleteLink{Name: "tap-pool-2"}},
		},
		{
			name:  "deleted and unbound",
			st:    with(converged(), func(s *State) { addTAPs(s, 2) }),
			tap:   "tap-pool-2",
			steps: []Step{DeleteLink{Name: "tap-pool-2"}, Unbind{Table: "banger", Bindings: []Binding{binding("tap-pool-2")}}},
		},
		{name: "already gone", st: converged(), tap: "tap-pool-7"},
		{name: "no TAP at all", st: converged(), tap: ""},
		{
			name: "kept as it is without privileges",
			st:   with(converged(), func(s *State) { s.TAPs = append(s.TAPs, healthyTAP(2)) }),
			tap:  "tap-pool-2",
			fail: func(Step) error { return os.ErrPermission },
		},
		{
			name:   "still open",
			st:     with(converged(), func(s *State) { s.TAPs[0].InUse = true }),
			tap:    "tap-pool-0",
			errHas: "stop the VM's hypervisor first",
		},
		{name: "not a pool name", st: converged(), tap: "eth0", errHas: "not a pool TAP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &fakeHost{st: tc.st, fail: tc.fail}
			err := NewPool(planConfig(), h, nil).Release(ctx, tc.tap)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Release = %v, want an error containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.steps, h.applied, cmpOpts...); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetupWithFake(t *testing.T) {
	ctx := context.Background()
	h := &fakeHost{}
	if err := Setup(ctx, planConfig(), h); err != nil {
		t.Fatal(err)
	}
	if got := idleNames(h); len(got) != 2 {
		t.Errorf("idle TAPs after Setup = %v, want 2", got)
	}
	n := len(h.applied)
	if err := Setup(ctx, planConfig(), h); err != nil {
		t.Fatal(err)
	}
	if len(h.applied) != n {
		t.Errorf("second Setup applied %v, want nothing", h.applied[n:])
	}
	if err := Teardown(ctx, planConfig(), h); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(State{Forwarding: true}, h.st, append(cmpOpts, cmpopts.EquateEmpty())...); diff != "" {
		t.Errorf("state after Teardown (-want +got):\n%s", diff)
	}
}

func TestSetupNamesTheFailedStepAndTheFix(t *testing.T) {
	h := &fakeHost{fail: func(s Step) error {
		if c, ok := s.(CreateTAP); ok && c.Name == "tap-pool-1" {
			return syscall.EPERM
		}
		return nil
	}}
	err := Setup(context.Background(), planConfig(), h)
	want := "setting up host networking: creating tap-pool-1: operation not permitted: run `sudo banger host setup` once so an unprivileged bangerd gets a TAP pool of its own"
	if err == nil || err.Error() != want {
		t.Fatalf("Setup = %v\nwant %s", err, want)
	}
	if se, ok := errors.AsType[*StepError](err); !ok || se.Step != (CreateTAP{Name: "tap-pool-1", Owner: Owner{4242, 4343}}) {
		t.Errorf("Setup error %#v does not carry the failed step", err)
	}
	// It stopped at the failure.
	if last := h.applied[len(h.applied)-1]; last != (SetLinkUp{Name: "tap-pool-0"}) {
		t.Errorf("last applied step = %v, want the one before the failure", last)
	}
}

func TestFixFor(t *testing.T) {
	for _, tc := range []struct {
		step Step
		err  error
		want string
	}{
		{CreateTAP{Name: "tap-pool-0"}, syscall.EPERM, "run `sudo banger host setup` once so an unprivileged bangerd gets a TAP pool of its own"},
		{CreateTAP{Name: "tap-pool-0"}, syscall.ENOENT, "load the TUN/TAP driver"},
		{EnableForwarding{}, &os.PathError{Op: "open", Err: syscall.EACCES}, "sudo sysctl -w net.ipv4.ip_forward=1"},
		{EnableForwarding{}, syscall.EROFS, "/proc/sys is read-only"},
		{EnsureNFTable{}, syscall.EPERM, "bangerd needs CAP_NET_ADMIN"},
		{EnsureNFTable{}, syscall.EOPNOTSUPP, "modprobe nf_tables"},
		{SetLinkUp{Name: "banger0"}, syscall.EINVAL, ""},
		{EnsureBridge{Name: "banger0"}, fixedErr(errors.New("x"), "set another network.bridge"), "set another network.bridge"},
	} {
		got := fixFor(tc.step, tc.err)
		if (tc.want == "" && got != "") || !strings.Contains(got, tc.want) {
			t.Errorf("fixFor(%v, %v) = %q, want %q", tc.step, tc.err, got, tc.want)
		}
	}
}
