package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// State is what the host has, as Observe read it.
type State struct {
	Bridge BridgeState
	// TAPs are the links named tap-pool-<n>, ordered by n.
	TAPs []TAPState
	// Forwarding is net.ipv4.ip_forward in the namespace.
	Forwarding bool
	// Table is banger's nftables table of family inet; nil when it does
	// not exist.
	Table *NFTable
	// AntiSpoof is banger's nftables table of family bridge; nil when it
	// does not exist.
	AntiSpoof *NFTable
	// TableUnknown: this process may not read nftables (reading needs
	// CAP_NET_ADMIN too), so Table and AntiSpoof say nothing. Plan then leaves the
	// table alone: an unprivileged bangerd could not change it anyway.
	TableUnknown bool
}

// BridgeState is the link named Config.Bridge.
type BridgeState struct {
	Exists bool
	Kind   string // netlink kind: "bridge", or what squats on the name
	Up     bool
	MAC    net.HardwareAddr
	Addrs  []netip.Prefix // IPv4 addresses
}

// TAPState is one link named tap-pool-<n>.
type TAPState struct {
	Name string
	N    int
	// Kind is "tap" for a TAP device, "tun" for a TUN device, or the
	// netlink kind of whatever else has the name.
	Kind     string
	Master   string // the bridge it is attached to; "" when none
	Up       bool
	Isolated bool // IFLA_BRPORT_ISOLATED, meaningful only with a Master
	// InUse: a process (the hypervisor) has the TAP open, so its carrier
	// is on. Plan never deletes or recreates a TAP in use.
	InUse bool
	Owner Owner
}

// isPoolTAP reports whether t is a TAP device the pool can use.
func (t TAPState) isPoolTAP() bool { return t.Kind == "tap" }

// Netlinker is the slice of netlink Observe reads through; *netlink.Handle
// bound to the namespace satisfies it.
type Netlinker interface {
	LinkList() ([]netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	LinkGetProtinfo(link netlink.Link) (netlink.Protinfo, error)
}

// NFTReader is the slice of nftables Observe reads through; *nftables.Conn
// satisfies it.
type NFTReader interface {
	ListTablesOfFamily(family nftables.TableFamily) ([]*nftables.Table, error)
	ListChainsOfTableFamily(family nftables.TableFamily) ([]*nftables.Chain, error)
	GetRules(t *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error)
	GetSets(t *nftables.Table) ([]*nftables.Set, error)
	GetSetElements(s *nftables.Set) ([]nftables.SetElement, error)
}

var (
	_ Netlinker = (*netlink.Handle)(nil)
	_ NFTReader = (*nftables.Conn)(nil)
)

// Observe reads the host state Plan needs for cfg: the bridge, the pool
// TAPs, whether IPv4 forwarding is on (forwarding reads
// /proc/sys/net/ipv4/ip_forward in the right namespace), and banger's
// nftables table. It changes nothing.
func Observe(cfg Config, nl Netlinker, nft NFTReader, forwarding func() (bool, error)) (State, error) {
	var st State
	links, err := nl.LinkList()
	if err != nil {
		return State{}, fmt.Errorf("listing links: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Name == cfg.Bridge {
			st.Bridge = BridgeState{Exists: true, Kind: l.Type(), Up: a.Flags&net.FlagUp != 0, MAC: a.HardwareAddr}
			addrs, err := nl.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return State{}, fmt.Errorf("listing addresses of %s: %w", a.Name, err)
			}
			for _, ad := range addrs {
				if p, ok := prefixOf(ad.IPNet); ok {
					st.Bridge.Addrs = append(st.Bridge.Addrs, p)
				}
			}
			continue
		}
		n, ok := parseTAPName(a.Name)
		if !ok {
			continue
		}
		t := TAPState{
			Name:   a.Name,
			N:      n,
			Kind:   l.Type(),
			Master: names[a.MasterIndex],
			Up:     a.Flags&net.FlagUp != 0,
			InUse:  a.RawFlags&unix.IFF_LOWER_UP != 0,
		}
		if tt, ok := l.(*netlink.Tuntap); ok {
			t.Kind = "tun"
			if tt.Mode == netlink.TUNTAP_MODE_TAP {
				t.Kind = "tap"
			}
			t.Owner = Owner{UID: tt.Owner, GID: tt.Group}
		}
		if a.MasterIndex != 0 {
			pi, err := nl.LinkGetProtinfo(l)
			if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
				return State{}, fmt.Errorf("reading bridge port flags of %s: %w", a.Name, err)
			}
			t.Isolated = pi.Isolated
		}
		st.TAPs = append(st.TAPs, t)
	}
	slices.SortFunc(st.TAPs, func(a, b TAPState) int { return a.N - b.N })

	if st.Forwarding, err = forwarding(); err != nil {
		return State{}, fmt.Errorf("reading net.ipv4.ip_forward: %w", err)
	}
	st.Table, err = observeTable(nft, cfg.table(), "inet")
	if err == nil {
		st.AntiSpoof, err = observeTable(nft, cfg.table(), "bridge")
	}
	switch {
	case errors.Is(err, os.ErrPermission):
		st.Table, st.AntiSpoof, st.TableUnknown = nil, nil, true
	case err != nil:
		return State{}, fmt.Errorf("reading nftables table %s: %w", cfg.table(), err)
	}
	return st, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	a = a.Unmap()
	if !a.Is4() || bits == 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

func observeTable(nft NFTReader, name, family string) (*NFTable, error) {
	out := &NFTable{Name: name, Family: family}
	fam := out.family()
	tables, err := nft.ListTablesOfFamily(fam)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(tables, func(t *nftables.Table) bool { return t.Name == name })
	if i < 0 {
		return nil, nil
	}
	table := tables[i]
	chains, err := nft.ListChainsOfTableFamily(fam)
	if err != nil {
		return nil, err
	}
	for _, c := range chains {
		if c.Table == nil || c.Table.Name != name {
			continue
		}
		out.Chains = append(out.Chains, chainFromKernel(c))
	}
	slices.SortFunc(out.Chains, func(a, b NFTChain) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range out.Chains {
		rules, err := nft.GetRules(table, &nftables.Chain{Name: c.Name, Table: table})
		if err != nil {
			return nil, fmt.Errorf("listing rules of chain %s: %w", c.Name, err)
		}
		for _, r := range rules {
			out.Rules = append(out.Rules, ruleFromKernel(c.Name, r))
		}
	}
	sets, err := nft.GetSets(table)
	if err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	for _, s := range sets {
		elems, err := nft.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("listing elements of set %s: %w", s.Name, err)
		}
		set := NFTSet{Name: s.Name, KeyLen: s.KeyType.Bytes}
		for _, e := range elems {
			set.Elements = append(set.Elements, e.Key)
		}
		out.Sets = append(out.Sets, set)
	}
	slices.SortFunc(out.Sets, func(a, b NFTSet) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
