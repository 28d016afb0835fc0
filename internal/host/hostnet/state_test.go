package hostnet

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeNetlink serves fixed links, addresses and bridge port flags.
type fakeNetlink struct {
	links    []netlink.Link
	addrs    map[string][]netlink.Addr
	isolated map[string]bool
}

func (f *fakeNetlink) LinkList() ([]netlink.Link, error) { return f.links, nil }
func (f *fakeNetlink) AddrList(l netlink.Link, family int) ([]netlink.Addr, error) {
	return f.addrs[l.Attrs().Name], nil
}
func (f *fakeNetlink) LinkGetProtinfo(l netlink.Link) (netlink.Protinfo, error) {
	return netlink.Protinfo{Isolated: f.isolated[l.Attrs().Name]}, nil
}

// fakeNFT serves tables by family, or fails.
type fakeNFT struct {
	err    error
	tables []*nftables.Table
	chains []*nftables.Chain
	rules  map[string][]*nftables.Rule // by chain name
	sets   []*nftables.Set
	elems  map[string][]nftables.SetElement // by set name
}

func (f *fakeNFT) ListTablesOfFamily(fam nftables.TableFamily) ([]*nftables.Table, error) {
	var out []*nftables.Table
	for _, t := range f.tables {
		if t.Family == fam {
			out = append(out, t)
		}
	}
	return out, f.err
}
func (f *fakeNFT) ListChainsOfTableFamily(fam nftables.TableFamily) ([]*nftables.Chain, error) {
	var out []*nftables.Chain
	for _, c := range f.chains {
		if c.Table.Family == fam {
			out = append(out, c)
		}
	}
	return out, f.err
}
func (f *fakeNFT) GetRules(t *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error) {
	if t.Family != nftables.TableFamilyINet {
		return nil, f.err
	}
	return f.rules[c.Name], f.err
}
func (f *fakeNFT) GetSets(t *nftables.Table) ([]*nftables.Set, error) {
	var out []*nftables.Set
	for _, s := range f.sets {
		if s.Table.Name == t.Name && s.Table.Family == t.Family {
			out = append(out, s)
		}
	}
	return out, f.err
}
func (f *fakeNFT) GetSetElements(s *nftables.Set) ([]nftables.SetElement, error) {
	return f.elems[s.Name], f.err
}

func on() (bool, error) { return true, nil }

func TestObserve(t *testing.T) {
	cfg := planConfig()
	attrs := func(idx int, name string, master int, up, carrier bool) netlink.LinkAttrs {
		a := netlink.LinkAttrs{Index: idx, Name: name, MasterIndex: master}
		if up {
			a.Flags |= net.FlagUp
		}
		if carrier {
			a.RawFlags |= unix.IFF_LOWER_UP
		}
		return a
	}
	nl := &fakeNetlink{
		links: []netlink.Link{
			&netlink.Device{LinkAttrs: attrs(1, "lo", 0, true, true)},
			&netlink.Tuntap{LinkAttrs: attrs(5, "tap-pool-1", 2, true, true), Mode: netlink.TUNTAP_MODE_TAP, Owner: 4242, Group: 4343},
			&netlink.Bridge{LinkAttrs: attrs(2, "banger0", 0, true, false)},
			&netlink.Tuntap{LinkAttrs: attrs(4, "tap-pool-0", 0, false, false), Mode: netlink.TUNTAP_MODE_TAP},
			&netlink.Tuntap{LinkAttrs: attrs(6, "tap-pool-2", 0, false, false), Mode: netlink.TUNTAP_MODE_TUN},
			&netlink.Veth{LinkAttrs: attrs(7, "tap-pool-3", 0, false, false)},
			&netlink.Tuntap{LinkAttrs: attrs(8, "tap0", 2, true, false), Mode: netlink.TUNTAP_MODE_TAP},
		},
		addrs: map[string][]netlink.Addr{"banger0": {
			{IPNet: prefixToIPNet(netip.MustParsePrefix("172.30.0.1/24"))},
		}},
		isolated: map[string]bool{"tap-pool-1": true},
	}
	table := &nftables.Table{Name: "banger", Family: nftables.TableFamilyINet}
	prio := nftables.ChainPriority(0)
	policy := nftables.ChainPolicyAccept
	bridgeTable := &nftables.Table{Name: "banger", Family: nftables.TableFamilyBridge}
	key := Binding{TAP: "tap-pool-0", MAC: MAC(netip.MustParseAddr("172.30.0.2")), IP: netip.MustParseAddr("172.30.0.2")}.key()
	nft := &fakeNFT{
		tables: []*nftables.Table{{Name: "other", Family: nftables.TableFamilyINet}, table, bridgeTable},
		chains: []*nftables.Chain{
			{Name: "input", Table: table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: &prio, Policy: &policy},
			{Name: "input", Table: &nftables.Table{Name: "other", Family: nftables.TableFamilyINet}},
		},
		rules: map[string][]*nftables.Rule{"input": {{Handle: 3, Exprs: verdict(0)}}},
		sets:  []*nftables.Set{{Table: bridgeTable, Name: "guest-addrs", KeyType: nftables.SetDatatype{Bytes: 28}}},
		elems: map[string][]nftables.SetElement{"guest-addrs": {{Key: key}}},
	}
	got, err := Observe(cfg, nl, nft, on)
	if err != nil {
		t.Fatal(err)
	}
	want := State{
		Bridge: BridgeState{Exists: true, Kind: "bridge", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("172.30.0.1/24")}},
		TAPs: []TAPState{
			{Name: "tap-pool-0", N: 0, Kind: "tap"},
			{Name: "tap-pool-1", N: 1, Kind: "tap", Master: "banger0", Up: true, Isolated: true, InUse: true, Owner: Owner{4242, 4343}},
			{Name: "tap-pool-2", N: 2, Kind: "tun"},
			{Name: "tap-pool-3", N: 3, Kind: "veth"},
		},
		Forwarding: true,
		Table: &NFTable{
			Name:   "banger",
			Family: "inet",
			Chains: []NFTChain{{Name: "input", Type: "filter", Hook: "input", Policy: "accept"}},
			Rules:  []NFTRule{{Chain: "input", Handle: 3, Exprs: verdict(0)}},
		},
		AntiSpoof: &NFTable{
			Name:   "banger",
			Family: "bridge",
			Sets:   []NFTSet{{Name: "guest-addrs", KeyLen: 28, Elements: [][]byte{key}}},
		},
	}
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("Observe (-want +got):\n%s", diff)
	}
}

func TestObserveWithoutNFTablesPrivileges(t *testing.T) {
	got, err := Observe(planConfig(), &fakeNetlink{}, &fakeNFT{err: syscall.EPERM}, on)
	if err != nil {
		t.Fatal(err)
	}
	if !got.TableUnknown || got.Table != nil {
		t.Errorf("Observe = %+v, want the table unknown", got)
	}
	if _, err := Observe(planConfig(), &fakeNetlink{}, &fakeNFT{err: syscall.EPROTONOSUPPORT}, on); !errors.Is(err, syscall.EPROTONOSUPPORT) {
		t.Errorf("Observe with nftables missing = %v, want the error", err)
	}
}
