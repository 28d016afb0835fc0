package hostnet

import (
	"fmt"
	"slices"
)

// Leak is a host resource banger made, or squats on banger's names, that
// nothing accounts for. Pool capacity is not a leak: up to PoolSize idle
// TAPs attached to the bridge are the pool.
type Leak struct {
	Kind   string // "tap", "nft-chain", "nft-rule", "nft-set" or "nft-binding"
	Name   string // the link, chain or rule
	Reason string
	Fix    string
}

func (l Leak) String() string {
	return fmt.Sprintf("%s %s: %s: %s", l.Kind, l.Name, l.Reason, l.Fix)
}

// Leaks lists what `banger verify` reports about host networking: links
// named tap-pool-* that are not TAPs, pool TAPs not attached to the bridge,
// idle TAPs beyond the pool size, and chains or rules in banger's nftables
// table that Plan would not create. leased names the TAPs VMs hold.
func Leaks(cfg Config, st State, leased []string) []Leak {
	var leaks []Leak
	setupFix := "run `sudo banger host setup` (or restart a root bangerd) to repair it, or delete it (ip link del %s)"
	attached := make([]TAPState, 0, len(st.TAPs))
	for _, t := range st.TAPs {
		switch {
		case !t.isPoolTAP():
			leaks = append(leaks, Leak{Kind: "tap", Name: t.Name,
				Reason: fmt.Sprintf("has a pool name but is a %s, not a TAP", t.Kind),
				Fix:    fmt.Sprintf("delete it (ip link del %s)", t.Name)})
		case t.Master != cfg.Bridge:
			where := "no bridge"
			if t.Master != "" {
				where = t.Master
			}
			leaks = append(leaks, Leak{Kind: "tap", Name: t.Name,
				Reason: fmt.Sprintf("attached to %s instead of %s", where, cfg.Bridge),
				Fix:    fmt.Sprintf(setupFix, t.Name)})
		default:
			attached = append(attached, t)
		}
	}
	idle := idleTAPs(cfg, State{TAPs: attached}, leased)
	if len(idle) > cfg.PoolSize {
		for _, t := range idle[cfg.PoolSize:] {
			leaks = append(leaks, Leak{Kind: "tap", Name: t.Name,
				Reason: fmt.Sprintf("idle beyond the pool size (%d) and not leased by any VM", cfg.PoolSize),
				Fix:    fmt.Sprintf("bangerd trims the pool when it starts; or delete it (ip link del %s)", t.Name)})
		}
	}
	leaks = append(leaks, tableLeaks(Ruleset(cfg), st.Table)...)
	leaks = append(leaks, tableLeaks(AntiSpoof(cfg), st.AntiSpoof)...)
	// A binding for a TAP that does not exist, or that is not the
	// binding of its name (an earlier subnet).
	links := make([]string, 0, len(st.TAPs))
	for _, t := range st.TAPs {
		links = append(links, t.Name)
	}
	for _, s := range bindingSteps(cfg, st, links, false) {
		if u, ok := s.(Unbind); ok {
			for _, b := range u.Bindings {
				leaks = append(leaks, Leak{Kind: "nft-binding", Name: fmt.Sprintf("bridge %s %s", cfg.table(), b),
					Reason: "binds a TAP that does not exist, or binds it to an address that is not its own (an earlier network.subnet?)",
					Fix:    "run `sudo banger host setup` (or restart a root bangerd) to rewrite the bindings"})
			}
		}
	}
	return leaks
}

// TablesCurrent reports whether the host holds banger's two nftables
// tables exactly as Plan would write them for cfg now: isolation (table
// inet: NAT, guests kept from each other, the host, private and metadata
// addresses, and other users kept from guests) and antiSpoof (table
// bridge, with every pool TAP bound to its address and MAC and nothing
// else bound). Both are false when st could not read nftables
// (TableUnknown).
func TablesCurrent(cfg Config, st State) (isolation, antiSpoof bool) {
	links := make([]string, 0, len(st.TAPs))
	for _, t := range st.TAPs {
		links = append(links, t.Name)
	}
	antiSpoof = tableMatches(AntiSpoof(cfg), st.AntiSpoof) && len(bindingSteps(cfg, st, links, false)) == 0
	return tableMatches(Ruleset(cfg), st.Table), antiSpoof
}

// tableLeaks lists the chains, rules and sets of got that want lacks.
func tableLeaks(want NFTable, got *NFTable) []Leak {
	if got == nil {
		return nil
	}
	var leaks []Leak
	where := want.familyName() + " " + got.Name
	tableFix := fmt.Sprintf("run `sudo banger host setup` to rewrite table %s", where)
	for _, c := range got.Chains {
		if !slices.Contains(want.Chains, c) {
			leaks = append(leaks, Leak{Kind: "nft-chain", Name: fmt.Sprintf("%s %s", where, c.Name),
				Reason: "not a chain banger creates", Fix: tableFix})
		}
	}
	for _, r := range got.Rules {
		if slices.ContainsFunc(want.Rules, r.same) {
			continue
		}
		reason := "not a rule banger creates"
		if isBangerRule(r) {
			reason = "carries banger's comment but is not what banger creates now (an older config?)"
		}
		leaks = append(leaks, Leak{Kind: "nft-rule", Name: where + " " + r.String(), Reason: reason, Fix: tableFix})
	}
	for _, s := range got.Sets {
		if !slices.ContainsFunc(want.Sets, s.sameDecl) {
			leaks = append(leaks, Leak{Kind: "nft-set", Name: fmt.Sprintf("%s %s", where, s.Name),
				Reason: "not a set banger creates", Fix: tableFix})
		}
	}
	return leaks
}
