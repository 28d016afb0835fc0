package hostnet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The sets of the inet table through which package egress restricts a
// guest (see the package documentation). Their elements are the
// Enforcer's, written with Executor.Egress and never planned: Plan
// compares only their declarations, so writing elements never makes the
// table differ from Ruleset.
const (
	// EgressGuestsSet holds the addresses of restricted guests
	// (ipv4_addr).
	EgressGuestsSet = "egress-guests"
	// EgressNamesSet holds (guest . address . port) the resolver answered
	// for a name allowed to one port, each with the record's TTL.
	EgressNamesSet = "egress-names"
	// EgressNamesAnySet holds (guest . address) the resolver answered for
	// a name allowed to every port, each with the record's TTL.
	EgressNamesAnySet = "egress-names-any"
	// EgressCIDRsSet holds (guest . address range . port range) for the
	// allowlist's addresses and CIDRs: an interval set, without timeouts.
	EgressCIDRsSet = "egress-cidrs"
	// EgressDropsSet counts what restricted guests sent that was dropped:
	// (guest . address . protocol . port), a packet counter per element,
	// each forgotten an hour after its last packet.
	EgressDropsSet = "egress-drops"
)

// EgressDropsTimeout is how long egress-drops keeps an element after its
// last packet; EgressDropsSize bounds its elements.
const (
	EgressDropsTimeout = time.Hour
	EgressDropsSize    = 4096
)

// DefaultResolverPort is the egress resolver's port on the gateway when
// Config.ResolverPort is 0.
const DefaultResolverPort = 53

// resolverPort returns the egress resolver's port, defaulted.
func (c Config) resolverPort() uint16 {
	if c.ResolverPort == 0 {
		return DefaultResolverPort
	}
	return c.ResolverPort
}

// Registers of the egress sets' concatenated keys (see regIfname): the
// first field starts at NFT_REG_1 (NFT_REG32_00), the next ones take the
// following 32-bit registers.
const (
	regEgress0 = 1  // NFT_REG32_00
	regEgress1 = 9  // NFT_REG32_01
	regEgress2 = 10 // NFT_REG32_02
	regEgress3 = 11 // NFT_REG32_03
)

// egressSets declares the egress sets.
func egressSets() []NFTSet {
	return []NFTSet{
		{Name: EgressCIDRsSet, Type: "ipv4_addr . ipv4_addr . inet_service", KeyLen: 12, Interval: true},
		{Name: EgressDropsSet, Type: "ipv4_addr . ipv4_addr . inet_proto . inet_service", KeyLen: 16,
			Timeout: true, Dynamic: true, DefaultTimeout: EgressDropsTimeout, Size: EgressDropsSize},
		{Name: EgressGuestsSet, Type: "ipv4_addr", KeyLen: 4},
		{Name: EgressNamesSet, Type: "ipv4_addr . ipv4_addr . inet_service", KeyLen: 12, Timeout: true},
		{Name: EgressNamesAnySet, Type: "ipv4_addr . ipv4_addr", KeyLen: 8, Timeout: true},
	}
}

// egressRules returns the rules that restrict the guests in egress-guests:
// their DNS, to any address, goes to the resolver on the gateway; what
// hostnet allows every guest is narrowed to what the sets allow; the rest
// is counted in egress-drops and dropped. Regular chains egress and
// egress-policy hold the per-guest part, reached from forward right after
// guest-to-guest, so isolation from other guests stays in front.
func egressRules(cfg Config, rule func(chain, name, text string, exprs ...[]expr.Any) NFTRule) (prerouting, forward, input, egress, policy []NFTRule) {
	br := cfg.Bridge
	q := fmt.Sprintf("%q", br)
	gw := Gateway(cfg.Subnet)
	port := cfg.resolverPort()
	fromGuests := matchIfname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br)
	restricted := append(matchIPv4(),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: EgressGuestsSet},
	)
	protos := []struct {
		name string
		num  byte
	}{{"udp", unix.IPPROTO_UDP}, {"tcp", unix.IPPROTO_TCP}}
	gwAddr := gw.As4()
	for _, p := range protos {
		prerouting = append(prerouting, rule("prerouting", "egress-dns",
			fmt.Sprintf("iifname %s ip saddr @%s %s dport 53 dnat ip to %v:%d", q, EgressGuestsSet, p.name, gw, port),
			fromGuests, restricted, matchDport(p.num, 53),
			[]expr.Any{
				&expr.Immediate{Register: 1, Data: gwAddr[:]},
				&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2, Specified: true},
			}))
		input = append(input, rule("input", "egress-resolver",
			fmt.Sprintf("iifname %s ip saddr @%s ip daddr %v %s dport %d accept", q, EgressGuestsSet, gw, p.name, port),
			fromGuests, restricted, matchDaddr(netip.PrefixFrom(gw, 32)), matchDport(p.num, port), verdict(expr.VerdictAccept)))
	}
	forward = []NFTRule{rule("forward", "egress-restricted",
		fmt.Sprintf("iifname %s ip saddr @%s jump egress", q, EgressGuestsSet),
		fromGuests, restricted, []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "egress"}})}

	// egress: network.allow_cidrs are subject to the policy; the rest of
	// hostnet's blocked ranges stay dropped; then the policy.
	for _, p := range cfg.AllowCIDRs {
		egress = append(egress, rule("egress", "egress-allowed-cidr",
			fmt.Sprintf("ip daddr %v goto egress-policy", p),
			matchDaddr(p), []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: "egress-policy"}}))
	}
	for _, p := range BlockedPrefixes {
		egress = append(egress, rule("egress", "egress-to-private",
			fmt.Sprintf("ip daddr %v drop", p), matchDaddr(p), verdict(expr.VerdictDrop)))
	}
	egress = append(egress, rule("egress", "egress-policy",
		"goto egress-policy", []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: "egress-policy"}}))

	saddr := &expr.Payload{DestRegister: regEgress0, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
	daddr := &expr.Payload{DestRegister: regEgress1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	l4 := func(num byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{num}},
		}
	}
	for _, p := range protos {
		dport := &expr.Payload{DestRegister: regEgress2, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
		policy = append(policy,
			rule("egress-policy", "egress-name",
				fmt.Sprintf("meta l4proto %s ip saddr . ip daddr . %s dport @%s accept", p.name, p.name, EgressNamesSet),
				matchIPv4(), l4(p.num), []expr.Any{saddr, daddr, dport, &expr.Lookup{SourceRegister: regEgress0, SetName: EgressNamesSet}}, verdict(expr.VerdictAccept)),
			rule("egress-policy", "egress-cidr",
				fmt.Sprintf("meta l4proto %s ip saddr . ip daddr . %s dport @%s accept", p.name, p.name, EgressCIDRsSet),
				matchIPv4(), l4(p.num), []expr.Any{saddr, daddr, dport, &expr.Lookup{SourceRegister: regEgress0, SetName: EgressCIDRsSet}}, verdict(expr.VerdictAccept)))
	}
	policy = append(policy, rule("egress-policy", "egress-name-any",
		fmt.Sprintf("ip saddr . ip daddr @%s accept", EgressNamesAnySet),
		matchIPv4(), []expr.Any{saddr, daddr, &expr.Lookup{SourceRegister: regEgress0, SetName: EgressNamesAnySet}}, verdict(expr.VerdictAccept)))
	count := func(port expr.Any) []expr.Any {
		return []expr.Any{
			saddr, daddr,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: regEgress2},
			port,
			&expr.Dynset{SrcRegKey: regEgress0, SetName: EgressDropsSet, Operation: uint32(unix.NFT_DYNSET_OP_UPDATE), Exprs: []expr.Any{&expr.Counter{}}},
		}
	}
	for _, p := range protos {
		policy = append(policy, rule("egress-policy", "egress-refused",
			fmt.Sprintf("meta l4proto %s update @%s { ip saddr . ip daddr . meta l4proto . %s dport counter } drop", p.name, EgressDropsSet, p.name),
			matchIPv4(), l4(p.num),
			count(&expr.Payload{DestRegister: regEgress3, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}),
			verdict(expr.VerdictDrop)))
	}
	policy = append(policy, rule("egress-policy", "egress-refused",
		fmt.Sprintf("update @%s { ip saddr . ip daddr . meta l4proto . 0 counter } drop", EgressDropsSet),
		matchIPv4(), count(&expr.Immediate{Register: regEgress3, Data: make([]byte, 4)}), verdict(expr.VerdictDrop)))
	// A full egress-drops makes update fail, and a failed update ends its
	// rule without its verdict: drop whatever gets here uncounted, so the
	// chain never returns to forward's accepts.
	policy = append(policy, rule("egress-policy", "egress-refused-uncounted", "drop", verdict(expr.VerdictDrop)))
	return prerouting, forward, input, egress, policy
}

// EgressElem is one element of an egress set, for Executor.Egress.
// Guest is always set; which other fields count depends on Set:
// EgressGuestsSet: none; EgressNamesSet: Addr, Port, Timeout;
// EgressNamesAnySet: Addr, Timeout; EgressCIDRsSet: Prefix, Ports;
// EgressDropsSet (to remove a gone VM's counts): Addr, Proto, Port.
type EgressElem struct {
	Set     string
	Guest   netip.Addr
	Addr    netip.Addr
	Proto   byte
	Port    uint16
	Prefix  netip.Prefix
	Ports   [2]uint16 // first and last port, inclusive
	Timeout time.Duration
}

func (el EgressElem) String() string {
	switch el.Set {
	case EgressGuestsSet:
		return fmt.Sprintf("%s %v", el.Set, el.Guest)
	case EgressNamesSet:
		return fmt.Sprintf("%s %v . %v . %d timeout %v", el.Set, el.Guest, el.Addr, el.Port, el.Timeout)
	case EgressNamesAnySet:
		return fmt.Sprintf("%s %v . %v timeout %v", el.Set, el.Guest, el.Addr, el.Timeout)
	case EgressDropsSet:
		return fmt.Sprintf("%s %v . %v . %d . %d", el.Set, el.Guest, el.Addr, el.Proto, el.Port)
	}
	return fmt.Sprintf("%s %v . %v . %d-%d", el.Set, el.Guest, el.Prefix, el.Ports[0], el.Ports[1])
}

// padded returns a port as a concatenation field: 2 bytes, padded to 4.
func padded(port uint16) []byte { return append(binaryutil.BigEndian.PutUint16(port), 0, 0) }

// element is el as a kernel set element.
func (el EgressElem) element() nftables.SetElement {
	g := el.Guest.As4()
	key := slices.Clone(g[:])
	switch el.Set {
	case EgressGuestsSet:
		return nftables.SetElement{Key: key}
	case EgressNamesSet:
		a := el.Addr.As4()
		return nftables.SetElement{Key: slices.Concat(key, a[:], padded(el.Port)), Timeout: el.Timeout}
	case EgressNamesAnySet:
		a := el.Addr.As4()
		return nftables.SetElement{Key: slices.Concat(key, a[:]), Timeout: el.Timeout}
	case EgressDropsSet:
		a := el.Addr.As4()
		return nftables.SetElement{Key: slices.Concat(key, a[:], []byte{el.Proto, 0, 0, 0}, padded(el.Port))}
	}
	p := el.Prefix.Masked()
	first := p.Addr().As4()
	last := addrFromUint32(addrToUint32(p.Addr()) | (1<<(32-p.Bits()) - 1)).As4()
	if p.Bits() == 0 {
		last = [4]byte{255, 255, 255, 255}
	}
	return nftables.SetElement{
		Key:    slices.Concat(key, first[:], padded(el.Ports[0])),
		KeyEnd: slices.Concat(key, last[:], padded(el.Ports[1])),
	}
}

// egressSet is the kernel's description of an egress set, enough to
// write elements to it.
func egressSet(table, name string) (*nftables.Set, error) {
	i := slices.IndexFunc(egressSets(), func(s NFTSet) bool { return s.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("%q is not an egress set", name)
	}
	decl := egressSets()[i]
	ks, err := setKeyType(decl)
	if err != nil {
		return nil, err
	}
	return &nftables.Set{Table: &nftables.Table{Name: table, Family: nftables.TableFamilyINet}, Name: name, KeyType: ks,
		Concatenation: len(nftables.ConcatSetTypeElements(ks)) > 1, Interval: decl.Interval, HasTimeout: decl.Timeout}, nil
}

// EgressChange adds and removes egress set elements in table (Config's
// table, defaulted) in one batch. Removing an element that is gone (a
// name's address whose timeout ran out) is not an error.
type EgressChange struct {
	Table       string
	Add, Remove []EgressElem
}

// Egress applies c. It is how package egress changes what a restricted
// guest may reach; unlike Apply it does not log, since the resolver
// calls it for answers.
func (e *Executor) Egress(c EgressChange) error {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	queue := func(elems []EgressElem, add bool) error {
		bySet := map[string][]nftables.SetElement{}
		var order []string
		for _, el := range elems {
			if _, ok := bySet[el.Set]; !ok {
				order = append(order, el.Set)
			}
			bySet[el.Set] = append(bySet[el.Set], el.element())
		}
		for _, name := range order {
			s, err := egressSet(c.Table, name)
			if err != nil {
				return err
			}
			for chunk := range slices.Chunk(bySet[name], setChunk) {
				if add {
					err = e.nft.SetAddElements(s, chunk)
				} else {
					err = e.nft.SetDeleteElements(s, chunk)
				}
				if err != nil {
					return fmt.Errorf("set %s: %w", name, err)
				}
			}
		}
		return nil
	}
	if err := queue(c.Remove, false); err != nil {
		return err
	}
	if err := queue(c.Add, true); err != nil {
		return err
	}
	err := e.nft.Flush()
	if err == nil || !errors.Is(err, unix.ENOENT) || len(c.Remove) == 0 {
		return wrapEgressErr(err)
	}
	// Some element to remove was gone: remove one at a time, skipping
	// those, then add.
	for _, el := range c.Remove {
		if err := queue([]EgressElem{el}, false); err != nil {
			return err
		}
		if err := e.nft.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return wrapEgressErr(err)
		}
	}
	if err := queue(c.Add, true); err != nil {
		return err
	}
	return wrapEgressErr(e.nft.Flush())
}

func wrapEgressErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("writing egress set elements: %w: enforcing an egress policy needs CAP_NET_ADMIN, which a rootless bangerd lacks: run bangerd as root, or keep --egress nat", err)
	}
	return fmt.Errorf("writing egress set elements: %w: is table inet banger current? run `sudo banger host setup`", err)
}

// EgressEntry is an element of an egress set read back by EgressList.
type EgressEntry struct {
	Guest, Addr netip.Addr
	Proto       byte   // EgressDropsSet only: IPPROTO_TCP, IPPROTO_UDP, ...
	Port        uint16 // EgressNamesSet and EgressDropsSet
	// Expires is the time left of an element with a timeout; Packets
	// the counter of an EgressDropsSet element.
	Expires time.Duration
	Timeout time.Duration
	Packets uint64
	// Prefix and Ports: EgressCIDRsSet only (the range as written).
	End      netip.Addr
	LastPort uint16
}

// EgressList reads the elements of egress set name.
func (e *Executor) EgressList(table, name string) ([]EgressEntry, error) {
	if table == "" {
		table = DefaultTable
	}
	s, err := egressSet(table, name)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	elems, err := e.nft.GetSetElements(s)
	if err != nil {
		return nil, fmt.Errorf("listing egress set %s: %w", name, err)
	}
	var out []EgressEntry
	for _, el := range elems {
		if el.IntervalEnd || len(el.Key) < 4 {
			continue
		}
		k := el.Key
		en := EgressEntry{Guest: netip.AddrFrom4([4]byte(k[:4])), Expires: el.Expires, Timeout: el.Timeout}
		if len(k) >= 8 {
			en.Addr = netip.AddrFrom4([4]byte(k[4:8]))
		}
		switch name {
		case EgressNamesSet:
			en.Port = binaryutil.BigEndian.Uint16(k[8:10])
		case EgressCIDRsSet:
			en.Port = binaryutil.BigEndian.Uint16(k[8:10])
			if len(el.KeyEnd) == 12 {
				en.End = netip.AddrFrom4([4]byte(el.KeyEnd[4:8]))
				en.LastPort = binaryutil.BigEndian.Uint16(el.KeyEnd[8:10])
			}
		case EgressDropsSet:
			en.Proto = k[8]
			en.Port = binaryutil.BigEndian.Uint16(k[12:14])
			if el.Counter != nil {
				en.Packets = el.Counter.Packets
			}
		}
		out = append(out, en)
	}
	return out, nil
}
