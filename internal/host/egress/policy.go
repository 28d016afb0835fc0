package egress

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/bangerdev/banger/api"
)

// Policy is a parsed, validated egress policy.
type Policy struct {
	Mode  string // api.EgressNAT, api.EgressNone or api.EgressAllow
	Rules []Rule // EgressAllow only; presets expanded
}

// Rule is one allowlist entry: a domain (Domain, Wildcard for "*.") or
// an address range (Prefix), to Port (every port when 0).
type Rule struct {
	Domain   string       // lower case, no trailing dot; "" for a Prefix rule
	Wildcard bool         // Domain's subdomains, not Domain itself
	Prefix   netip.Prefix // IPv4; invalid for a Domain rule
	Port     uint16       // 0: every port
}

// AllowedSyntax names what an allowlist entry may be (api.Error.Allowed).
const AllowedSyntax = `"nat", "none", or a comma-separated allowlist of domains (github.com), wildcards (*.npmjs.org), IPv4 addresses or CIDRs (203.0.113.0/24) and presets (@agents), each optionally with one :PORT (repeat an entry for more ports)`

// MaxRules bounds an allowlist after presets are expanded.
const MaxRules = 256

// Parse checks p and expands its presets (the config's egress.presets:
// name -> entries, which may not name presets themselves). The zero
// policy is NAT.
func Parse(p api.EgressPolicy, presets map[string][]string) (Policy, error) {
	switch p.Mode {
	case "", api.EgressNAT:
		if len(p.Allow) > 0 {
			return Policy{}, fmt.Errorf("egress mode %q takes no allowlist: use mode %q with it", api.EgressNAT, api.EgressAllow)
		}
		return Policy{Mode: api.EgressNAT}, nil
	case api.EgressNone:
		if len(p.Allow) > 0 {
			return Policy{}, fmt.Errorf("egress mode %q takes no allowlist: use mode %q with it", api.EgressNone, api.EgressAllow)
		}
		return Policy{Mode: api.EgressNone}, nil
	case api.EgressAllow:
	default:
		return Policy{}, fmt.Errorf("egress mode %q is not one of %q, %q or %q", p.Mode, api.EgressNAT, api.EgressNone, api.EgressAllow)
	}
	if len(p.Allow) == 0 {
		return Policy{}, fmt.Errorf("egress mode %q needs an allowlist: give entries such as github.com, *.npmjs.org:443 or @agents, or use mode %q", api.EgressAllow, api.EgressNone)
	}
	out := Policy{Mode: api.EgressAllow}
	for _, e := range p.Allow {
		entries := []string{e}
		if name, ok := strings.CutPrefix(strings.TrimSpace(e), "@"); ok {
			preset, found := presets[name]
			if !found {
				return Policy{}, fmt.Errorf("egress preset %q is not defined: name one of %s, or define it under [egress.presets] in the config", "@"+name, presetNames(presets))
			}
			entries = preset
		}
		for _, entry := range entries {
			if strings.HasPrefix(strings.TrimSpace(entry), "@") {
				return Policy{}, fmt.Errorf("egress preset %q names preset %q: presets hold entries, not other presets", e, entry)
			}
			r, err := ParseRule(entry)
			if err != nil {
				return Policy{}, err
			}
			out.Rules = append(out.Rules, r)
		}
	}
	if len(out.Rules) > MaxRules {
		return Policy{}, fmt.Errorf("the egress allowlist has %d entries with its presets expanded, more than %d: use CIDRs or wildcards", len(out.Rules), MaxRules)
	}
	return out, nil
}

func presetNames(presets map[string][]string) string {
	if len(presets) == 0 {
		return "none (the config defines no presets)"
	}
	var names []string
	for n := range presets {
		names = append(names, "@"+n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// ParseRule parses one allowlist entry (no preset).
func ParseRule(entry string) (Rule, error) {
	entry = strings.TrimSpace(entry)
	host, port, hasPort := strings.Cut(entry, ":")
	var r Rule
	if hasPort {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return Rule{}, fmt.Errorf("egress entry %q: port %q is not a number from 1 to 65535 (one port per entry: repeat the entry for another)", entry, port)
		}
		r.Port = uint16(n)
	}
	if host == "" {
		return Rule{}, fmt.Errorf("egress entry %q names no domain or address: write e.g. github.com:443 or 203.0.113.0/24", entry)
	}
	if p, err := netip.ParsePrefix(host); err == nil {
		if !p.Addr().Is4() {
			return Rule{}, fmt.Errorf("egress entry %q: only IPv4 ranges are allowed (guests have no IPv6 egress)", entry)
		}
		r.Prefix = p.Masked()
		return r, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Is4() {
			return Rule{}, fmt.Errorf("egress entry %q: only IPv4 addresses are allowed (guests have no IPv6 egress)", entry)
		}
		r.Prefix = netip.PrefixFrom(a, 32)
		return r, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		r.Wildcard, name = true, rest
	}
	if err := checkDomain(name); err != nil {
		return Rule{}, fmt.Errorf("egress entry %q: %v", entry, err)
	}
	r.Domain = name
	return r, nil
}

// checkDomain accepts a DNS name of at least two labels, each 1-63 of
// letters, digits, '-' and '_' (not at a label's ends for '-'), 253 in
// all.
func checkDomain(name string) error {
	if len(name) == 0 || len(name) > 253 {
		return fmt.Errorf("%q is not a domain name (1 to 253 characters)", name)
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return fmt.Errorf("%q is a single label: name a domain such as example.com (a wildcard covers only subdomains: *.example.com)", name)
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q has an empty, overlong or hyphen-edged label %q", name, l)
		}
		for _, c := range l {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return fmt.Errorf("%q holds %q: domain names are letters, digits, '-' and '_'", name, c)
			}
		}
	}
	return nil
}

// AllowsName reports whether the policy lets the guest resolve name
// (lower case, no trailing dot), and to which ports: nil when every port
// (a matching rule names none).
func (p Policy) AllowsName(name string) (ok bool, ports []uint16) {
	if p.Mode == api.EgressNAT {
		return true, nil
	}
	all := false
	for _, r := range p.Rules {
		if r.Domain == "" {
			continue
		}
		match := name == r.Domain
		if r.Wildcard {
			match = strings.HasSuffix(name, "."+r.Domain)
		}
		if !match {
			continue
		}
		ok = true
		if r.Port == 0 {
			all = true
		}
		ports = append(ports, r.Port)
	}
	if all || !ok {
		return ok, nil
	}
	slices.Sort(ports)
	return true, slices.Compact(ports)
}

// String renders the policy as the CLI's --egress takes it.
func (p Policy) String() string {
	if p.Mode != api.EgressAllow {
		return p.Mode
	}
	parts := make([]string, len(p.Rules))
	for i, r := range p.Rules {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// String renders a rule as an allowlist entry.
func (r Rule) String() string {
	s := r.Domain
	switch {
	case r.Domain == "":
		s = r.Prefix.String()
		if r.Prefix.Bits() == 32 {
			s = r.Prefix.Addr().String()
		}
	case r.Wildcard:
		s = "*." + r.Domain
	}
	if r.Port != 0 {
		s += ":" + strconv.Itoa(int(r.Port))
	}
	return s
}
