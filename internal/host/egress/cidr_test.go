package egress

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCIDRRanges(t *testing.T) {
	p := netip.MustParsePrefix
	all := []portRange{{0, 65535}}
	for _, tc := range []struct {
		name  string
		rules []string
		want  map[netip.Prefix][]portRange
	}{
		{"one range, every port", []string{"203.0.113.0/24"}, map[netip.Prefix][]portRange{p("203.0.113.0/24"): all}},
		{"an address, two ports", []string{"203.0.113.7:443", "203.0.113.7:80", "203.0.113.7:443"},
			map[netip.Prefix][]portRange{p("203.0.113.7/32"): {{80, 80}, {443, 443}}}},
		{"a port and every port of the same range merge", []string{"203.0.113.0/24:22", "203.0.113.0/24"},
			map[netip.Prefix][]portRange{p("203.0.113.0/24"): all}},
		{"a narrower rule under a broader one for every port vanishes", []string{"198.51.100.0/24", "198.51.100.9:443"},
			map[netip.Prefix][]portRange{p("198.51.100.0/24"): all}},
		{"a narrower rule for every port loses the broader rule's port", []string{"198.51.100.0/24:443", "198.51.100.9"},
			map[netip.Prefix][]portRange{p("198.51.100.0/24"): {{443, 443}}, p("198.51.100.9/32"): {{0, 442}, {444, 65535}}}},
		{"disjoint ranges stay apart", []string{"198.51.100.0/25", "198.51.100.128/25:53"},
			map[netip.Prefix][]portRange{p("198.51.100.0/25"): all, p("198.51.100.128/25"): {{53, 53}}}},
		{"domains are not ranges", []string{"example.com", "*.example.org:443"}, map[netip.Prefix][]portRange{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rules []Rule
			for _, s := range tc.rules {
				r, err := ParseRule(s)
				if err != nil {
					t.Fatal(err)
				}
				rules = append(rules, r)
			}
			got := cidrRanges(rules)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(portRange{}), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("cidrRanges(%q) (-want +got):\n%s", tc.rules, diff)
			}
		})
	}
}
