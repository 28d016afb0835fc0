package doctor

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/hostnet"
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
		return bad(name, api.CheckFail, what+" is missing and bangerd is not root", "run `sudo banger host setup` once")
	}
	var checks []api.Check
	gw := netip.PrefixFrom(hostnet.Gateway(cfg.Subnet), cfg.Subnet.Bits())
	switch {
	case !st.Bridge.Exists:
		checks = append(checks, notYet(CheckBridge, "bridge "+cfg.Bridge))
	case !st.Bridge.Up || !hasAddr(st.Bridge.Addrs, gw):
		checks = append(checks, bad(CheckBridge, api.CheckFail, fmt.Sprintf("bridge %s is down or lacks %s", cfg.Bridge, gw),
			"restart bangerd as root, or run `sudo banger host setup`"))
	default:
		checks = append(checks, ok(CheckBridge, fmt.Sprintf("%s up with %s", cfg.Bridge, gw)))
	}
	switch {
	case st.TableUnknown:
		checks = append(checks, bad(CheckNAT, api.CheckSkip, "an unprivileged process cannot read nftables", "run `sudo banger doctor` to check the NAT table"))
	case st.Table == nil:
		checks = append(checks, notYet(CheckNAT, "nftables table inet "+cfg.Table))
	default:
		checks = append(checks, ok(CheckNAT, fmt.Sprintf("table inet %s: %d chains, %d rules", st.Table.Name, len(st.Table.Chains), len(st.Table.Rules))))
	}
	idle := hostnet.IdleTAPs(cfg, st, in.Leased)
	switch {
	case len(st.TAPs) == 0 && !st.Bridge.Exists:
		checks = append(checks, notYet(CheckTAPPool, "the TAP pool"))
	case len(idle) < cfg.PoolSize && !in.DaemonRoot:
		checks = append(checks, bad(CheckTAPPool, api.CheckWarn, fmt.Sprintf("%d idle of %d wanted, %d leased", len(idle), cfg.PoolSize, len(in.Leased)),
			fmt.Sprintf("run `sudo banger host setup --taps %d` for more capacity", cfg.PoolSize)))
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

func hasAddr(addrs []netip.Prefix, want netip.Prefix) bool {
	for _, a := range addrs {
		if a == want {
			return true
		}
	}
	return false
}
