package doctor

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hostnet"
)

// Network check names.
const (
	CheckBridge  = "bridge"
	CheckNAT     = "nat"
	CheckTAPPool = "tap-pool"
	CheckLeaks   = "leftovers"
)

// NetworkInputs is what the network checks read: the observed host
// network, the TAPs VMs hold, and whether the daemon sets the network up
// itself (root) or relies on `banger host setup`.
type NetworkInputs struct {
	Config     hostnet.Config
	State      hostnet.State
	Leased     []string
	DaemonRoot bool
	// OtherLeaks are non-network leaks (processes, sockets, disks).
	OtherLeaks []api.Leak
}

// NetworkChecks reports the bridge, the NAT table, the TAP pool and
// leftover resources.
func NetworkChecks(in NetworkInputs) []api.Check {
	cfg, st := in.Config, in.State
	notYet := func(name, what string) api.Check {
		if in.DaemonRoot {
			return bad(name, api.CheckWarn, what+" is not set up yet", "nothing to do: bangerd runs as root and sets it up for the first VM")
		}
		return withAutoFix(bad(name, api.CheckFail, what+" is missing and bangerd is not root", "run `sudo banger host setup` once"), FixHostSetup)
	}
	var checks []api.Check
	gw := netip.PrefixFrom(hostnet.Gateway(cfg.Subnet), cfg.Subnet.Bits())
	switch {
	case !st.Bridge.Exists:
		checks = append(checks, notYet(CheckBridge, "bridge "+cfg.Bridge))
	case !st.Bridge.Up || !hasAddr(st.Bridge.Addrs, gw):
		c := bad(CheckBridge, api.CheckFail, fmt.Sprintf("bridge %s is down or lacks %s", cfg.Bridge, gw),
			"restart bangerd as root, or run `sudo banger host setup`")
		if !in.DaemonRoot {
			c.AutoFix = FixHostSetup
		}
		checks = append(checks, c)
	default:
		checks = append(checks, ok(CheckBridge, fmt.Sprintf("%s up with %s", cfg.Bridge, gw)))
	}
	checks = append(checks, natCheck(in, notYet))
	idle := hostnet.IdleTAPs(cfg, st, in.Leased)
	switch {
	case len(st.TAPs) == 0 && !st.Bridge.Exists:
		checks = append(checks, notYet(CheckTAPPool, "the TAP pool"))
	case len(idle) < cfg.PoolSize && !in.DaemonRoot:
		checks = append(checks, withAutoFix(bad(CheckTAPPool, api.CheckWarn, fmt.Sprintf("%d idle of %d wanted, %d leased", len(idle), cfg.PoolSize, len(in.Leased)),
			fmt.Sprintf("run `sudo banger host setup --taps %d` for more capacity", cfg.PoolSize)), FixHostSetup))
	default:
		checks = append(checks, ok(CheckTAPPool, fmt.Sprintf("%d idle, %d leased (pool size %d)", len(idle), len(in.Leased), cfg.PoolSize)))
	}
	var leaks []string
	for _, l := range hostnet.Leaks(cfg, st, in.Leased) {
		leaks = append(leaks, l.Kind+" "+l.Name)
	}
	for _, l := range in.OtherLeaks {
		leaks = append(leaks, l.Kind+" "+l.What)
	}
	if len(leaks) > 0 {
		checks = append(checks, bad(CheckLeaks, api.CheckWarn, strings.Join(leaks, ", "), "see `banger verify` for details and fixes"))
	} else {
		checks = append(checks, ok(CheckLeaks, "no leaked TAPs, rules, processes, sockets or disks"))
	}
	return checks
}

// natCheck reports banger's nftables tables: NAT and isolation (inet) and
// anti-spoofing (bridge), and whether they are what this banger writes.
func natCheck(in NetworkInputs, notYet func(name, what string) api.Check) api.Check {
	cfg, st := in.Config, in.State
	rewrite := "run `sudo banger host setup` to rewrite them (a root bangerd rewrites them when it next starts)"
	isolation, antiSpoof := hostnet.TablesCurrent(cfg, st)
	// The tables a rootless bangerd cannot write, `host setup` rewrites.
	fixable := func(c api.Check) api.Check {
		if !in.DaemonRoot {
			c.AutoFix = FixHostSetup
		}
		return c
	}
	switch {
	case st.TableUnknown:
		return bad(CheckNAT, api.CheckSkip, "an unprivileged process cannot read nftables", "run `sudo banger doctor` to check the NAT, isolation and anti-spoofing tables")
	case st.Table == nil && st.AntiSpoof == nil:
		return notYet(CheckNAT, "nftables tables inet and bridge "+cfg.Table)
	case st.AntiSpoof == nil:
		return fixable(bad(CheckNAT, api.CheckFail, fmt.Sprintf("table inet %s is there but the anti-spoofing table bridge %s is missing: a guest can take over another VM's address", cfg.Table, cfg.Table), rewrite))
	case st.Table == nil:
		return fixable(bad(CheckNAT, api.CheckFail, fmt.Sprintf("the NAT and isolation table inet %s is missing: guests have no egress", cfg.Table), rewrite))
	case !isolation || !antiSpoof:
		return fixable(bad(CheckNAT, api.CheckWarn, "banger's nftables tables or TAP bindings differ from what this banger and its config write (an older banger, a changed network.allow_cidrs or resolver, or an edit by hand): guests may reach private or metadata addresses, other users may reach guests, or a VM may have no network", rewrite))
	}
	allowed := "none"
	if len(cfg.AllowCIDRs) > 0 {
		allowed = joinStrings(cfg.AllowCIDRs)
	}
	dns := "none"
	if len(cfg.DNS) > 0 {
		dns = joinStrings(cfg.DNS)
	}
	bindings := 0
	for _, s := range st.AntiSpoof.Sets {
		bindings += len(s.Elements)
	}
	return ok(CheckNAT, fmt.Sprintf("egress NAT; guests kept from private, link-local and metadata addresses (allowed: %s; DNS to %s); only the owner and root connect to guests; anti-spoofing binds %d TAPs to their addresses",
		allowed, dns, bindings))
}

func joinStrings[T fmt.Stringer](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, ", ")
}

func hasAddr(addrs []netip.Prefix, want netip.Prefix) bool {
	for _, a := range addrs {
		if a == want {
			return true
		}
	}
	return false
}
