package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// DefaultTable is the nftables table banger owns when Config.Table is empty.
const DefaultTable = "banger"

// tapPrefix starts the name of every pool TAP: tap-pool-0, tap-pool-1, ...
const tapPrefix = "tap-pool-"

// Config is the host network banger wants.
type Config struct {
	// Bridge is the bridge every VM's TAP is attached to ("banger0").
	Bridge string
	// Subnet is the guests' IPv4 subnet; the bridge holds its first host
	// address as the guests' gateway.
	Subnet netip.Prefix
	// PoolSize is how many idle TAPs the pool keeps ready.
	PoolSize int
	// Table is the nftables table (family inet) banger owns; "" means
	// DefaultTable.
	Table string
	// TAPOwner owns the pool TAPs so that an unprivileged hypervisor can
	// open them; nil means the user this process runs as.
	TAPOwner *Owner
	// OwnerUID is the daemon's owner: besides root, the only user whose
	// sockets may open connections to guests. nil means TAPOwner's user
	// (`banger host setup --user U` sets up for U's rootless bangerd), or
	// this process's user when TAPOwner is nil too.
	OwnerUID *uint32
	// AllowCIDRs are IPv4 destinations in otherwise blocked ranges
	// (private, link-local, CGNAT, ...) that guests may reach anyway,
	// e.g. the user's LAN (network.allow_cidrs).
	AllowCIDRs []netip.Prefix
	// DNS are the resolvers guests are told to use (the host's
	// non-loopback nameservers, see Resolvers): guests may send DNS
	// (udp and tcp port 53) to exactly these addresses even where they
	// are private or the host's own.
	DNS []netip.Addr
	// ResolverPort is the port on the gateway address where package
	// egress's resolver listens and where restricted guests' DNS is
	// redirected; 0 means DefaultResolverPort (53).
	ResolverPort uint16
}

// BlockedPrefixes are the IPv4 destinations guests may not reach unless
// Config.AllowCIDRs names them: "this network", private (RFC 1918),
// CGNAT (RFC 6598), loopback, link-local (with the cloud metadata address
// 169.254.169.254), multicast, and reserved plus broadcast. Guests get no
// IPv6: the anti-spoofing table drops every frame from a guest that is
// neither IPv4 nor ARP, so no IPv6 range needs listing.
var BlockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// Owner is the user and group a TAP belongs to (TUNSETOWNER, TUNSETGROUP).
type Owner struct {
	UID, GID uint32
}

func (o Owner) String() string { return fmt.Sprintf("%d:%d", o.UID, o.GID) }

// table returns the nftables table name, defaulted.
func (c Config) table() string {
	if c.Table == "" {
		return DefaultTable
	}
	return c.Table
}

// owner returns who pool TAPs belong to, defaulted to this process's user.
func (c Config) owner() Owner {
	if c.TAPOwner != nil {
		return *c.TAPOwner
	}
	return Owner{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
}

// ownerUID returns the user, besides root, who may connect to guests.
func (c Config) ownerUID() uint32 {
	if c.OwnerUID != nil {
		return *c.OwnerUID
	}
	return c.owner().UID
}

// Validate reports the first thing wrong with c, naming the config key to
// fix.
func (c Config) Validate() error {
	if err := CheckBridge(c.Bridge); err != nil {
		return fmt.Errorf("bridge name %q %v: set network.bridge in config to another name, e.g. \"banger0\"", c.Bridge, err)
	}
	if err := CheckSubnet(c.Subnet); err != nil {
		return fmt.Errorf("subnet %v %v: set network.subnet in config to an IPv4 prefix of a /29 or bigger, e.g. \"172.30.0.0/24\"", c.Subnet, err)
	}
	if c.PoolSize < 0 {
		return fmt.Errorf("TAP pool size %d is negative: set network.tap_pool_size in config to 0 or more", c.PoolSize)
	}
	for _, p := range c.AllowCIDRs {
		if err := CheckAllowCIDR(p); err != nil {
			return fmt.Errorf("allowed destination %v %v: fix network.allow_cidrs in config, e.g. [\"192.168.1.0/24\"]", p, err)
		}
	}
	for _, a := range c.DNS {
		if !a.Is4() {
			return fmt.Errorf("resolver %v is not an IPv4 address: guests only get IPv4", a)
		}
	}
	return nil
}

// ResolvConf is where the host's resolvers are configured.
const ResolvConf = "/etc/resolv.conf"

// Resolvers returns the IPv4 nameservers of a resolv.conf (normally
// /etc/resolv.conf) that guests can use: loopback ones (a local stub such
// as systemd-resolved's 127.0.0.53) mean nothing inside a guest. A missing
// or unreadable file has none.
func Resolvers(resolvConf string) []netip.Addr {
	b, err := os.ReadFile(resolvConf)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil && a.Is4() && !a.IsLoopback() && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// Gateway returns the subnet's first host address (.1 of a /24), which the
// bridge holds and guests route through. It returns the zero Addr for an
// invalid or non-IPv4 subnet.
func Gateway(subnet netip.Prefix) netip.Addr {
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return netip.Addr{}
	}
	return subnet.Masked().Addr().Next()
}

// GuestAddrs returns the first and last address a guest may lease: every
// host address of the subnet after the gateway (.2 to .254 of a /24). Both
// are the zero Addr when the subnet has no room for guests.
func GuestAddrs(subnet netip.Prefix) (first, last netip.Addr) {
	if !subnet.IsValid() || !subnet.Addr().Is4() || subnet.Bits() > 30 {
		return netip.Addr{}, netip.Addr{}
	}
	network := subnet.Masked().Addr().As4()
	n := uint32(network[0])<<24 | uint32(network[1])<<16 | uint32(network[2])<<8 | uint32(network[3])
	broadcast := n | (1<<(32-subnet.Bits()) - 1)
	first = Gateway(subnet).Next()
	last = addrFromUint32(broadcast - 1)
	if last.Less(first) {
		return netip.Addr{}, netip.Addr{}
	}
	return first, last
}

func addrFromUint32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ErrSubnetExhausted is returned (wrapped) by NextFree when every guest
// address of the subnet is leased.
var ErrSubnetExhausted = errors.New("subnet exhausted")

// NextFree returns the lowest guest address of subnet that is not in used.
// Addresses in used outside the subnet are ignored.
func NextFree(subnet netip.Prefix, used []netip.Addr) (netip.Addr, error) {
	first, last := GuestAddrs(subnet)
	if !first.IsValid() {
		return netip.Addr{}, fmt.Errorf("subnet %v has no room for guests: set network.subnet in config to an IPv4 /29 or bigger, e.g. \"172.30.0.0/24\"", subnet)
	}
	taken := make(map[netip.Addr]bool, len(used))
	for _, a := range used {
		taken[a.Unmap()] = true
	}
	for a := first; a.IsValid() && !last.Less(a); a = a.Next() {
		if !taken[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: all guest addresses of %v (%v to %v) are leased: delete a VM, or set a bigger network.subnet in config (e.g. a /%d)",
		ErrSubnetExhausted, subnet, first, last, max(subnet.Bits()-1, 16))
}

// MAC returns the guest MAC address for a leased IPv4 address: locally
// administered, unicast, 02:b4 followed by the address's four bytes
// (172.30.0.5 -> 02:b4:ac:1e:00:05). It returns nil for a non-IPv4 address.
// The bridge uses MAC(Gateway(subnet)), so the gateway's MAC never changes
// as TAPs come and go.
func MAC(ip netip.Addr) net.HardwareAddr {
	ip = ip.Unmap()
	if !ip.Is4() {
		return nil
	}
	b := ip.As4()
	return net.HardwareAddr{0x02, 0xb4, b[0], b[1], b[2], b[3]}
}

// TAPFor returns the pool TAP that carries guest address ip: the n-th
// guest address of subnet (counting from 0 at the first, see GuestAddrs)
// goes through tap-pool-<n>, and the anti-spoofing table lets tap-pool-<n>
// send only from that address and its MAC. ok is false for an address
// that is not a guest address of subnet.
func TAPFor(subnet netip.Prefix, ip netip.Addr) (name string, ok bool) {
	first, last := GuestAddrs(subnet)
	ip = ip.Unmap()
	if !first.IsValid() || !ip.Is4() || ip.Less(first) || last.Less(ip) {
		return "", false
	}
	return TAPName(int(addrToUint32(ip) - addrToUint32(first))), true
}

func addrToUint32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// TAPName returns the name of pool TAP n: "tap-pool-<n>".
func TAPName(n int) string { return tapPrefix + strconv.Itoa(n) }

// parseTAPName returns n for "tap-pool-<n>"; ok is false for any other name
// (including "tap-pool-01", which TAPName never makes).
func parseTAPName(name string) (n int, ok bool) {
	rest, found := strings.CutPrefix(name, tapPrefix)
	if !found || rest == "" || len(rest) > 6 || (len(rest) > 1 && rest[0] == '0') ||
		strings.Trim(rest, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
