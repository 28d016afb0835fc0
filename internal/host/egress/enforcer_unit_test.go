package egress

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netns"
	"golang.org/x/net/dns/dnsmessage"
)

func mustPolicy(t *testing.T, mode string, allow ...string) Policy {
	t.Helper()
	p, err := Parse(api.EgressPolicy{Mode: mode, Allow: allow}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newFakeEnforcer returns an Enforcer on a fakeTable whose upstream is a
// fake DNS server on loopback, and a clock the test moves.
func newFakeEnforcer(t *testing.T, zone map[string][]dnsmessage.Resource) (*Enforcer, *fakeTable, *time.Time) {
	t.Helper()
	f := newFakeTable()
	up := serveDNS(t, netns.None(), "127.0.0.1:0", zone)
	e, err := New(Config{Table: f, Gateway: netip.MustParseAddr("172.30.0.1"), Upstream: []netip.AddrPort{up.addr}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)
	e.now = func() time.Time { return now }
	return e, f, &now
}

func TestSetWritesTheGuestsElements(t *testing.T) {
	guest := netip.MustParseAddr("172.30.0.2")
	other := netip.MustParseAddr("172.30.0.3")
	elem := func(set string, pfx string, first, last uint16) hostnet.EgressElem {
		return hostnet.EgressElem{Set: set, Guest: guest, Prefix: netip.MustParsePrefix(pfx), Ports: [2]uint16{first, last}}
	}
	for _, tc := range []struct {
		name      string
		policies  []Policy
		guests    []netip.Addr
		cidrs     []hostnet.EgressElem
		restricts bool
	}{
		{"nat restricts nothing", []Policy{mustPolicy(t, api.EgressNAT)}, nil, nil, false},
		{"none restricts with no element", []Policy{mustPolicy(t, api.EgressNone)}, []netip.Addr{guest}, nil, true},
		{"allow writes its ranges", []Policy{mustPolicy(t, api.EgressAllow, "203.0.113.0/28", "198.51.100.7:443", "example.com")},
			[]netip.Addr{guest},
			[]hostnet.EgressElem{elem(hostnet.EgressCIDRsSet, "198.51.100.7/32", 443, 443), elem(hostnet.EgressCIDRsSet, "203.0.113.0/28", 0, 65535)}, true},
		{"a new policy replaces the ranges", []Policy{mustPolicy(t, api.EgressAllow, "203.0.113.0/28"), mustPolicy(t, api.EgressAllow, "192.0.2.0/24:22")},
			[]netip.Addr{guest}, []hostnet.EgressElem{elem(hostnet.EgressCIDRsSet, "192.0.2.0/24", 22, 22)}, true},
		{"nat after allow lifts everything", []Policy{mustPolicy(t, api.EgressAllow, "203.0.113.0/28"), mustPolicy(t, api.EgressNAT)}, nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, f, _ := newFakeEnforcer(t, nil)
			// Another guest's elements are never touched.
			if err := e.Set(other, mustPolicy(t, api.EgressAllow, "192.0.2.1")); err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.policies {
				if err := e.Set(guest, p); err != nil {
					t.Fatal(err)
				}
			}
			var guests []netip.Addr
			for _, el := range f.elements(hostnet.EgressGuestsSet) {
				if el.Guest == guest {
					guests = append(guests, el.Guest)
				}
			}
			cidrs := slices.DeleteFunc(f.elements(hostnet.EgressCIDRsSet), func(el hostnet.EgressElem) bool { return el.Guest == other })
			sortElems := cmpopts.SortSlices(func(a, b hostnet.EgressElem) bool { return a.String() < b.String() })
			if diff := cmp.Diff(tc.guests, guests, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("egress-guests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.cidrs, cidrs, sortElems, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
				t.Errorf("egress-cidrs (-want +got):\n%s", diff)
			}
			if _, ok := e.policy(guest); ok != tc.restricts {
				t.Errorf("restricted = %v, want %v", ok, tc.restricts)
			}
			if n := len(slices.DeleteFunc(f.elements(hostnet.EgressCIDRsSet), func(el hostnet.EgressElem) bool { return el.Guest != other })); n != 1 {
				t.Errorf("the other guest has %d ranges, want its 1", n)
			}
		})
	}
}

func TestResolverAnswers(t *testing.T) {
	guest := netip.MustParseAddr("172.30.0.2")
	zone := map[string][]dnsmessage.Resource{
		"api.example.com.":   {cname("api.example.com.", "edge.cdn.test.", 60), a("edge.cdn.test.", "198.51.100.1", 86400), a("elsewhere.test.", "198.51.100.99", 60)},
		"short.example.com.": {a("short.example.com.", "198.51.100.2", 5)},
		"deny.test.":         {a("deny.test.", "198.51.100.3", 60)},
	}
	e, f, now := newFakeEnforcer(t, zone)
	r := &resolver{e: e}
	if err := e.Set(guest, mustPolicy(t, api.EgressAllow, "api.example.com:443", "*.example.com:443", "short.example.com")); err != nil {
		t.Fatal(err)
	}
	ask := func(src netip.Addr, name string, qtype dnsmessage.Type) (dnsmessage.Message, bool) {
		q := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true},
			Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: qtype, Class: dnsmessage.ClassINET}}}
		b, _ := q.Pack()
		resp := r.answer(src, b, "udp")
		var m dnsmessage.Message
		if resp == nil || m.Unpack(resp) != nil {
			return m, false
		}
		return m, true
	}

	t.Run("an unknown source is refused and not recorded", func(t *testing.T) {
		m, ok := ask(netip.MustParseAddr("172.30.0.9"), "api.example.com.", dnsmessage.TypeA)
		if !ok || m.Header.RCode != dnsmessage.RCodeRefused {
			t.Errorf("got %v %v, want REFUSED", ok, m.Header.RCode)
		}
	})
	t.Run("a refused name is recorded", func(t *testing.T) {
		for range 2 {
			if m, ok := ask(guest, "deny.test.", dnsmessage.TypeA); !ok || m.Header.RCode != dnsmessage.RCodeRefused {
				t.Errorf("got %v %v, want REFUSED", ok, m.Header.RCode)
			}
		}
		drops, err := e.Drops(guest)
		if err != nil {
			t.Fatal(err)
		}
		want := []api.EgressDrop{{Name: "deny.test", Proto: "dns", Count: 2, Last: *now}}
		if diff := cmp.Diff(want, drops); diff != "" {
			t.Errorf("Drops (-want +got):\n%s", diff)
		}
	})
	t.Run("an allowed name's chain is let through to its ports with a clamped TTL", func(t *testing.T) {
		m, ok := ask(guest, "API.example.com.", dnsmessage.TypeA)
		if !ok || m.Header.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 3 {
			t.Fatalf("got %v %+v", ok, m)
		}
		for _, rr := range m.Answers {
			if rr.Header.TTL > uint32(MaxTTL/time.Second) {
				t.Errorf("relayed %s with TTL %d, more than MaxTTL", rr.Header.Name, rr.Header.TTL)
			}
		}
		want := []hostnet.EgressElem{{Set: hostnet.EgressNamesSet, Guest: guest, Addr: netip.MustParseAddr("198.51.100.1"), Port: 443, Timeout: MaxTTL}}
		if diff := cmp.Diff(want, f.elems[hostnet.EgressNamesSet], cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
			t.Errorf("egress-names (-want +got; elsewhere.test is not in the chain):\n%s", diff)
		}
	})
	t.Run("a name allowed to every port goes to egress-names-any", func(t *testing.T) {
		if m, ok := ask(guest, "short.example.com.", dnsmessage.TypeA); !ok || m.Header.RCode != dnsmessage.RCodeSuccess {
			t.Fatalf("got %v %v", ok, m.Header.RCode)
		}
		want := []hostnet.EgressElem{{Set: hostnet.EgressNamesAnySet, Guest: guest, Addr: netip.MustParseAddr("198.51.100.2"), Timeout: MinTTL}}
		if diff := cmp.Diff(want, f.elems[hostnet.EgressNamesAnySet], cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
			t.Errorf("egress-names-any (-want +got):\n%s", diff)
		}
	})
	t.Run("AAAA is answered empty without asking upstream", func(t *testing.T) {
		m, ok := ask(guest, "api.example.com.", dnsmessage.TypeAAAA)
		if !ok || m.Header.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 0 {
			t.Errorf("got %v %+v", ok, m)
		}
	})
	t.Run("removing a name from the policy removes its addresses", func(t *testing.T) {
		if err := e.Set(guest, mustPolicy(t, api.EgressAllow, "short.example.com")); err != nil {
			t.Fatal(err)
		}
		if got := f.elements(hostnet.EgressNamesSet); len(got) != 0 {
			t.Errorf("egress-names still holds %v", got)
		}
		if got := f.elements(hostnet.EgressNamesAnySet); len(got) != 1 {
			t.Errorf("egress-names-any = %v, want short.example.com's address kept", got)
		}
	})
	t.Run("a guest over its rate gets no answer", func(t *testing.T) {
		answered := 0
		for range queryBurst + 10 {
			if _, ok := ask(guest, "deny.test.", dnsmessage.TypeA); ok {
				answered++
			}
		}
		if answered > queryBurst {
			t.Errorf("%d queries answered in an instant, more than the burst of %d", answered, queryBurst)
		}
	})
}
