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

// fakeNFT serves one table, or fails.
type fakeNFT struct {
	err    error
	tables []*nftables.Table
	chains []*nftables.Chain
	rules  map[string][]*nftables.Rule
}

func (f *fakeNFT) ListTablesOfFamily(nftables.TableFamily) ([]*nftables.Table, error) {
	return f.tables, f.err
}
func (f *fakeNFT) ListChainsOfTableFamily(nftables.TableFamily) ([]*nftables.Chain, error) {
	return f.chains, f.err
}
func (f *fakeNFT) GetRules(t *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error) {
	return f.rules[c.Name], f.err
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
	nft := &fakeNFT{
		tables: []*nftables.Table{{Name: "other", Family: nftables.TableFamilyINet}, table},
		chains: []*nftables.Chain{
			{Name: "input", Table: table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: &prio, Policy: &policy},
			{Name: "input", Table: &nftables.Table{Name: "other"}},
		},
		rules: map[string][]*nftables.Rule{"input": {{Handle: 3, Exprs: verdict(0)}}},
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
			Chains: []NFTChain{{Name: "input", Type: "filter", Hook: "input", Policy: "accept"}},
			Rules:  []NFTRule{{Chain: "input", Handle: 3, Exprs: verdict(0)}},
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
