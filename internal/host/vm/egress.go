package vm

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/egress"
)

// Egress applies VMs' egress policies on the host (*egress.Enforcer is
// one): Set before a VM's guest can send a packet, Remove once its TAP is
// returned.
type Egress interface {
	Set(ip netip.Addr, p egress.Policy) error
	Remove(ip netip.Addr) error
	// Drops are the address's recent refusals, newest first.
	Drops(ip netip.Addr) []api.EgressDrop
}

// AllowedEgress is what an egress policy accepts (api.Error.Allowed).
const AllowedEgress = egress.AllowedSyntax

// checkEgress parses a requested policy with the configured presets and
// refuses one this daemon cannot enforce. It returns the policy to
// record: nil for NAT, the default.
func (m *Manager) checkEgress(p *api.EgressPolicy) (*api.EgressPolicy, egress.Policy, error) {
	if p == nil {
		return nil, egress.Policy{Mode: api.EgressNAT}, nil
	}
	parsed, err := egress.Parse(*p, m.Cfg.Egress.Presets)
	if err != nil {
		return nil, parsed, api.FieldErrorf("egress", AllowedEgress, "%v", err)
	}
	if parsed.Mode == api.EgressNAT {
		return nil, parsed, nil
	}
	if m.Egress == nil {
		return nil, parsed, api.Errorf(api.CodeFailedPrecondition, "egress %q needs a daemon that manages the host's network (a root bangerd): run `sudo banger daemon restart`, or leave egress at %q", parsed.String(), api.EgressNAT)
	}
	out := api.EgressPolicy{Mode: parsed.Mode, Allow: p.Allow}
	return &out, parsed, nil
}

// applyEgress puts v's recorded policy in force for its address.
func (m *Manager) applyEgress(v *VM) error {
	ip, err := netip.ParseAddr(v.Lease.IP)
	if err != nil {
		return fmt.Errorf("vm %s has no valid address lease (%q)", v.Name, v.Lease.IP)
	}
	_, parsed, err := m.checkEgress(v.Spec.Egress)
	if err != nil {
		return fmt.Errorf("the egress policy of vm %s: %w", v.Name, err)
	}
	if m.Egress == nil {
		return nil // NAT: nothing to enforce
	}
	if err := m.Egress.Set(ip, parsed); err != nil {
		return fmt.Errorf("applying the egress policy of vm %s: %w", v.Name, err)
	}
	return nil
}

// dropEgress lifts whatever policy v's address had.
func (m *Manager) dropEgress(v *VM) {
	if m.Egress == nil {
		return
	}
	ip, err := netip.ParseAddr(v.Lease.IP)
	if err != nil {
		return
	}
	if err := m.Egress.Remove(ip); err != nil {
		m.Log.Warn("lifting a VM's egress policy", "vm", v.Name, "error", err)
	}
}

// SetEgress records a new egress policy for the VM named name and, when
// it runs, puts it in force at once.
func (m *Manager) SetEgress(ctx context.Context, name string, p api.EgressPolicy) (VM, error) {
	v, unlock, err := m.getLocked(ctx, name)
	defer unlock()
	if err != nil {
		return v, err
	}
	rec, _, err := m.checkEgress(&p)
	if err != nil {
		return v, err
	}
	v.Spec.Egress = rec
	if v.State == api.VMRunning || v.State == api.VMCreating {
		if err := m.applyEgress(&v); err != nil {
			return v, err
		}
	}
	return v, m.save(ctx, &v)
}

// EgressPolicy is v's policy as the API shows it (NAT when none is
// recorded).
func (v VM) EgressPolicy() api.EgressPolicy {
	if v.Spec.Egress == nil {
		return api.EgressPolicy{Mode: api.EgressNAT}
	}
	return *v.Spec.Egress
}

// EgressStatus is the VM's policy and, with log, its recent refusals.
func (m *Manager) EgressStatus(ctx context.Context, name string, log bool) (api.EgressStatus, error) {
	v, err := m.Get(ctx, name)
	if err != nil {
		return api.EgressStatus{}, err
	}
	st := api.EgressStatus{Policy: v.EgressPolicy()}
	if !log || m.Egress == nil {
		return st, nil
	}
	if ip, err := netip.ParseAddr(v.Lease.IP); err == nil {
		st.Drops = m.Egress.Drops(ip)
	}
	return st, nil
}
