package hostnet

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

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

// Bindings returns the binding of every pool TAP that can carry a guest
// of subnet: tap-pool-<n> carries the n-th guest address (TAPFor) and its
// MAC (MAC). The bindings follow from the names alone, so they are written
// once with the table: acquiring or releasing a TAP, a rootless bangerd
// (which may not write nftables) and a daemon restart change nothing here.
func Bindings(subnet netip.Prefix) []Binding {
	first, last := GuestAddrs(subnet)
	if !first.IsValid() {
		return nil
	}
	var out []Binding
	for a, n := first, 0; a.IsValid() && !last.Less(a); a, n = a.Next(), n+1 {
		out = append(out, Binding{TAP: TAPName(n), MAC: MAC(a), IP: a})
	}
	return out
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

// AntiSpoof returns banger's table of family bridge for cfg: it sees every
// frame a guest sends into the bridge before the bridge learns its source
// MAC or the host reads it, and lets through only what a guest's binding
// allows. The package documentation shows it in nft syntax.
func AntiSpoof(cfg Config) NFTable {
	rule := func(name, text string, exprs ...[]expr.Any) NFTRule {
		return NFTRule{Chain: "prerouting", Comment: commentPrefix + name, Text: text, Exprs: slices.Concat(exprs...)}
	}
	bindings := Bindings(cfg.Subnet)
	set := NFTSet{Name: guestAddrsSet, Type: "ifname . ether_addr . ipv4_addr", KeyLen: unix.IFNAMSIZ + 8 + 4}
	for _, b := range bindings {
		set.Elements = append(set.Elements, b.key())
	}
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
