package hostnet

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// guestAddrsSet names the set of (TAP, MAC, IPv4) tuples guests may send
// from.
const guestAddrsSet = "guest-addrs"

// Registers of a concatenated key: each field takes consecutive 32-bit
// registers (NFT_REG32_00 is 8), padded to 4 bytes, so an ifname takes
// four. The kernel names a 32-bit register that starts a 128-bit one by
// the 128-bit number (NFT_REG32_04 is NFT_REG_2), so these use that
// number, as the kernel reports it back.
const (
	regIfname = 1  // NFT_REG_1 = NFT_REG32_00..03 (16 bytes)
	regMAC    = 2  // NFT_REG_2 = NFT_REG32_04..05 (6 bytes + 2 padding)
	regIP     = 14 // NFT_REG32_06
)

// Binding is what one pool TAP may send: frames from MAC only, and IPv4
// packets and ARP only from IP.
type Binding struct {
	TAP string
	MAC net.HardwareAddr
	IP  netip.Addr
}

func (b Binding) String() string { return fmt.Sprintf("%s . %s . %s", b.TAP, b.MAC, b.IP) }

// BindingFor returns the binding of pool TAP name: tap-pool-<n> carries
// the n-th guest address of subnet (see TAPFor) and its MAC (see MAC). ok
// is false for a name that is not a pool name or whose n is beyond the
// subnet's guest addresses: such a TAP has no binding and sends nothing.
//
// A binding follows from the TAP's name alone, so it never changes while
// the TAP exists: the set holds one element per pool TAP that exists,
// added when the TAP is made and removed when it is deleted, both of
// which only a privileged process (a root bangerd, `banger host setup`)
// can do. Handing TAPs to VMs, releasing them, a rootless bangerd (which
// may not write nftables) and a daemon restart change nothing in it.
func BindingFor(subnet netip.Prefix, name string) (Binding, bool) {
	n, ok := parseTAPName(name)
	first, last := GuestAddrs(subnet)
	if !ok || !first.IsValid() || uint64(n) > uint64(addrToUint32(last)-addrToUint32(first)) {
		return Binding{}, false
	}
	ip := addrFromUint32(addrToUint32(first) + uint32(n))
	return Binding{TAP: name, MAC: MAC(ip), IP: ip}, true
}

// key is b as an element of the guest-addrs set.
func (b Binding) key() []byte {
	k := make([]byte, 0, unix.IFNAMSIZ+8+4)
	k = append(k, ifname(b.TAP)...)
	k = append(k, b.MAC...)
	k = append(k, 0, 0) // ether_addr padded to 8
	ip := b.IP.As4()
	return append(k, ip[:]...)
}

// bindingFromKey reads an element of the guest-addrs set back.
func bindingFromKey(k []byte) (Binding, bool) {
	if len(k) != unix.IFNAMSIZ+8+4 {
		return Binding{}, false
	}
	name, _, _ := strings.Cut(string(k[:unix.IFNAMSIZ]), "\x00")
	return Binding{TAP: name, MAC: net.HardwareAddr(slices.Clone(k[unix.IFNAMSIZ : unix.IFNAMSIZ+6])),
		IP: netip.AddrFrom4([4]byte(k[unix.IFNAMSIZ+8:]))}, true
}

// Bindings returns the bindings the anti-spoofing table of st holds.
func (st State) Bindings() []Binding {
	if st.AntiSpoof == nil {
		return nil
	}
	var out []Binding
	for _, s := range st.AntiSpoof.Sets {
		if s.Name != guestAddrsSet {
			continue
		}
		for _, k := range s.Elements {
			if b, ok := bindingFromKey(k); ok {
				out = append(out, b)
			}
		}
	}
	return out
}

// bindingSteps plans the guest-addrs set: a binding for every link in
// links (the pool names that exist once the rest of the plan ran) that
// has one, and nothing else. rewritten: the table is being written anew,
// empty.
func bindingSteps(cfg Config, st State, links []string, rewritten bool) []Step {
	var have []Binding
	if !rewritten {
		have = st.Bindings()
	}
	var want []Binding
	for _, name := range links {
		if b, ok := BindingFor(cfg.Subnet, name); ok {
			want = append(want, b)
		}
	}
	same := func(a Binding) func(Binding) bool {
		return func(b Binding) bool { return slices.Equal(a.key(), b.key()) }
	}
	var add, del []Binding
	for _, b := range have {
		if !slices.ContainsFunc(want, same(b)) {
			del = append(del, b)
		}
	}
	for _, b := range want {
		if !slices.ContainsFunc(have, same(b)) {
			add = append(add, b)
		}
	}
	var steps []Step
	if len(del) > 0 {
		steps = append(steps, Unbind{Table: cfg.table(), Bindings: del})
	}
	if len(add) > 0 {
		steps = append(steps, Bind{Table: cfg.table(), Bindings: add})
	}
	return steps
}

// AntiSpoofBound is AntiSpoof(cfg) with the bindings of the pool TAPs
// taps in its set: what the host holds once Plan made those TAPs.
func AntiSpoofBound(cfg Config, taps ...string) NFTable {
	t := AntiSpoof(cfg)
	for _, name := range taps {
		if b, ok := BindingFor(cfg.Subnet, name); ok {
			t.Sets[0].Elements = append(t.Sets[0].Elements, b.key())
		}
	}
	return t
}

// isBound reports whether st's anti-spoofing table binds name.
func isBound(cfg Config, st State, name string) bool {
	b, ok := BindingFor(cfg.Subnet, name)
	return ok && slices.ContainsFunc(st.Bindings(), func(o Binding) bool { return slices.Equal(o.key(), b.key()) })
}

// AntiSpoof returns banger's table of family bridge for cfg: it sees every
// frame a guest sends into the bridge before the bridge learns its source
// MAC or the host reads it, and lets through only what a guest's binding
// allows. Its set guest-addrs is empty here: the bindings of the TAPs
// that exist are its elements, planned by Plan (see BindingFor). The
// package documentation shows it in nft syntax.
func AntiSpoof(cfg Config) NFTable {
	rule := func(name, text string, exprs ...[]expr.Any) NFTRule {
		return NFTRule{Chain: "prerouting", Comment: commentPrefix + name, Text: text, Exprs: slices.Concat(exprs...)}
	}
	set := NFTSet{Name: guestAddrsSet, Type: "ifname . ether_addr . ipv4_addr", KeyLen: unix.IFNAMSIZ + 8 + 4}
	fromPool := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(tapPrefix)}, // a prefix: "tap-pool-*"
	}
	etherType := func(t uint16) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(t)},
		}
	}
	// lookup: iifname . <mac at macBase+macOff> . <ipv4 at network header+ipOff> @guest-addrs
	lookup := func(macBase expr.PayloadBase, macOff, ipOff uint32) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: regIfname},
			&expr.Payload{DestRegister: regMAC, Base: macBase, Offset: macOff, Len: 6},
			&expr.Payload{DestRegister: regIP, Base: expr.PayloadBaseNetworkHeader, Offset: ipOff, Len: 4},
			&expr.Lookup{SourceRegister: regIfname, SetName: guestAddrsSet},
		}
	}
	field := func(off, n uint32, want ...byte) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: want},
		}
	}
	pool := fmt.Sprintf("%q", tapPrefix+"*")
	return NFTable{
		Name:   cfg.table(),
		Family: "bridge",
		Chains: []NFTChain{
			{Name: "prerouting", Type: "filter", Hook: "prerouting", Priority: -200, Policy: "accept"}, // bridge priority filter
		},
		Sets: []NFTSet{set},
		Rules: []NFTRule{
			rule("guest-ipv4",
				fmt.Sprintf("iifname %s ether type ip iifname . ether saddr . ip saddr @%s accept", pool, guestAddrsSet),
				fromPool, etherType(unix.ETH_P_IP), lookup(expr.PayloadBaseLLHeader, 6, 12), verdict(expr.VerdictAccept)),
			rule("guest-arp",
				fmt.Sprintf("iifname %s ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . ether saddr . arp saddr ip @%s iifname . arp saddr ether . arp saddr ip @%s accept", pool, guestAddrsSet, guestAddrsSet),
				fromPool, etherType(unix.ETH_P_ARP),
				field(0, 2, 0, 1), field(2, 2, 0x08, 0x00), field(4, 1, 6), field(5, 1, 4),
				lookup(expr.PayloadBaseLLHeader, 6, 14), lookup(expr.PayloadBaseNetworkHeader, 8, 14),
				verdict(expr.VerdictAccept)),
			rule("guest-spoof",
				fmt.Sprintf("iifname %s drop", pool),
				fromPool, verdict(expr.VerdictDrop)),
		},
	}
}
