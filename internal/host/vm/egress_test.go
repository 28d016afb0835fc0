package vm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/egress"
)

// fakeEgress records what the manager put in force, and whether a TAP was
// held when it did.
type fakeEgress struct {
	mu      sync.Mutex
	net     *fakeNet
	calls   []string
	current map[netip.Addr]string
	fail    error
}

func (e *fakeEgress) Set(ip netip.Addr, p egress.Policy) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	e.net.mu.Lock()
	held := len(e.net.held)
	e.net.mu.Unlock()
	e.calls = append(e.calls, fmt.Sprintf("set %s %s (taps held %d)", ip, p, held))
	e.current[ip] = p.String()
	return nil
}

func (e *fakeEgress) Remove(ip netip.Addr) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, "remove "+ip.String())
	delete(e.current, ip)
	return nil
}

func (e *fakeEgress) Drops(ip netip.Addr) []api.EgressDrop {
	return []api.EgressDrop{{Address: "198.51.100.20", Port: 443, Proto: "tcp", Count: 2}}
}

// An egress policy is checked at create, in force before the VM's TAP is
// taken, changed at once on a running VM, lifted when it stops, and put
// back when the daemon adopts the VM again; a daemon without enforcement
// refuses every policy but NAT.
func TestEgressPolicyLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	eg := &fakeEgress{net: f.net, current: map[netip.Addr]string{}}

	allow := &api.EgressPolicy{Mode: api.EgressAllow, Allow: []string{"github.com:443", "@agents"}}
	r := req("a")
	r.Egress = allow
	if _, err := f.m.Create(ctx, r, &progress{}); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "root bangerd") {
		t.Fatalf("create with a policy and no enforcement: %v", err)
	}
	f.m.Egress = eg
	r.Egress = &api.EgressPolicy{Mode: api.EgressAllow, Allow: []string{"@nope"}}
	var ae *api.Error
	if _, err := f.m.Create(ctx, r, &progress{}); !errors.As(err, &ae) || ae.Field != "egress" || !strings.Contains(err.Error(), `"@nope" is not defined`) {
		t.Fatalf("create with an unknown preset: %v", err)
	}
	r.Egress = allow
	v, err := f.m.Create(ctx, r, &progress{})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr(v.Lease.IP)
	if len(eg.calls) != 1 || !strings.HasPrefix(eg.calls[0], "set "+v.Lease.IP+" github.com:443,api.anthropic.com:443") || !strings.HasSuffix(eg.calls[0], "(taps held 0)") {
		t.Fatalf("calls at create: %q", eg.calls)
	}
	if got := f.m.API(ctx, v).Egress; got == nil || got.Mode != api.EgressAllow || len(got.Allow) != 2 {
		t.Errorf("API egress: %+v", got)
	}

	if _, err := f.m.SetEgress(ctx, "a", api.EgressPolicy{Mode: api.EgressNone}); err != nil {
		t.Fatal(err)
	}
	if eg.current[ip] != "none" {
		t.Errorf("after vm egress none: %q", eg.current[ip])
	}
	if _, err := f.m.SetEgress(ctx, "a", api.EgressPolicy{Mode: "open"}); !errors.As(err, &ae) || ae.Field != "egress" {
		t.Errorf("a bad policy on a running VM: %v", err)
	}
	if eg.current[ip] != "none" {
		t.Errorf("a refused change changed the policy in force: %q", eg.current[ip])
	}

	// A daemon restart re-applies the recorded policy to an adopted VM.
	delete(eg.current, ip)
	if _, err := f.m.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if eg.current[ip] != "none" {
		t.Errorf("after reconcile: %q", eg.current[ip])
	}
	// One that cannot be put back in force is stopped, not left on NAT.
	eg.fail = errors.New("nftables refused")
	if _, err := f.m.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.m.Get(ctx, "a"); got.State != api.VMStopped || got.Runtime.LastExit == nil || !strings.Contains(got.Runtime.LastExit.Reason, "egress policy") {
		t.Errorf("after a failed re-apply: %s %+v", got.State, got.Runtime.LastExit)
	}
	eg.fail = nil
	if _, ok := eg.current[ip]; ok {
		t.Errorf("a stopped VM's policy is still in force: %q", eg.calls)
	}
	// NAT is recorded as no policy.
	if got, _ := f.m.SetEgress(ctx, "a", api.EgressPolicy{Mode: api.EgressNAT}); got.Spec.Egress != nil {
		t.Errorf("nat recorded as %+v", got.Spec.Egress)
	}
}
