package egress

import (
	"net/netip"
	"slices"
)

// portRange is an inclusive range of ports.
type portRange struct{ first, last uint16 }

// cidrRanges turns the policy's address rules into (prefix, port range)
// pairs that do not overlap, as the kernel's interval set for
// concatenations requires: rules for the same prefix are merged, and a
// prefix keeps only the ports that no broader rule already allows (none
// when one allows every port).
func cidrRanges(rules []Rule) map[netip.Prefix][]portRange {
	type ports struct {
		all bool
		one []uint16
	}
	byPrefix := map[netip.Prefix]*ports{}
	for _, r := range rules {
		if r.Domain != "" || !r.Prefix.IsValid() {
			continue
		}
		p := byPrefix[r.Prefix]
		if p == nil {
			p = &ports{}
			byPrefix[r.Prefix] = p
		}
		if r.Port == 0 {
			p.all = true
		} else {
			p.one = append(p.one, r.Port)
		}
	}
	out := map[netip.Prefix][]portRange{}
	for pfx, p := range byPrefix {
		coveredAll := false
		var covered []uint16 // ports broader prefixes allow
		for q, qp := range byPrefix {
			if q.Bits() >= pfx.Bits() || !q.Contains(pfx.Addr()) {
				continue
			}
			if qp.all {
				coveredAll = true
			}
			covered = append(covered, qp.one...)
		}
		if coveredAll {
			continue
		}
		slices.Sort(covered)
		covered = slices.Compact(covered)
		var ranges []portRange
		if p.all {
			next := 0
			for _, c := range covered {
				if int(c) > next {
					ranges = append(ranges, portRange{uint16(next), c - 1})
				}
				next = int(c) + 1
			}
			if next <= 65535 {
				ranges = append(ranges, portRange{uint16(next), 65535})
			}
		} else {
			one := slices.Clone(p.one)
			slices.Sort(one)
			for _, port := range slices.Compact(one) {
				if _, found := slices.BinarySearch(covered, port); !found {
					ranges = append(ranges, portRange{port, port})
				}
			}
		}
		if len(ranges) > 0 {
			out[pfx] = ranges
		}
	}
	return out
}
