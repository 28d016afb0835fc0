package identity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"

	"github.com/bangerdev/banger/internal/guest/guestnet"
	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
)

// maxDNS bounds the name servers of a call (resolv.conf uses three).
const maxDNS = 8

// netTarget is an IdentityNet parsed.
type netTarget struct {
	address netip.Prefix
	gateway netip.Addr // invalid: no default route
	mac     net.HardwareAddr
	dns     []netip.Addr
}

// checked is what Validate learnt from an Identity.
type checked struct {
	net *netTarget
}

// Decode reads an identity call's params and validates them, so nothing
// applies a call the agent would refuse halfway: a bad field is an
// *InvalidError naming it.
func Decode(params []byte) (agentproto.Identity, error) {
	var id agentproto.Identity
	d := json.NewDecoder(bytes.NewReader(params))
	if err := d.Decode(&id); err != nil {
		return agentproto.Identity{}, &InvalidError{Field: "params", Reason: fmt.Sprintf("not an identity call: %v", err)}
	}
	if d.More() {
		return agentproto.Identity{}, &InvalidError{Field: "params", Reason: "trailing data after the identity call"}
	}
	return id, Validate(id)
}

// Validate checks every field of id before anything is applied; the
// first bad one is an *InvalidError naming it.
func Validate(id agentproto.Identity) error {
	_, err := check(id)
	return err
}

func check(id agentproto.Identity) (checked, error) {
	var c checked
	bad := func(field, format string, args ...any) (checked, error) {
		return checked{}, &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if id.TimeUnixNano <= 0 {
		return bad("time_unix_nano", "the host's clock in nanoseconds since 1970 is required")
	}
	if id.Seed != nil && (len(id.Seed) < agentproto.IdentitySeedMin || len(id.Seed) > agentproto.IdentitySeedMax) {
		return bad("seed", "%d bytes; want %d to %d", len(id.Seed), agentproto.IdentitySeedMin, agentproto.IdentitySeedMax)
	}
	if id.MachineID != "" && !isMachineID(id.MachineID) {
		return bad("machine_id", "%q is not 32 lowercase hex digits (not all zero)", id.MachineID)
	}
	if id.BootID != "" && !isUUID(id.BootID) {
		return bad("boot_id", "%q is not a lowercase UUID (8-4-4-4-12 hex digits)", id.BootID)
	}
	if id.Hostname != "" {
		if err := guestnet.CheckHostname(id.Hostname); err != nil {
			return bad("hostname", "%q: %v", id.Hostname, err)
		}
	}
	if id.Net != nil {
		n, err := checkNet(*id.Net)
		if err != nil {
			return checked{}, err
		}
		c.net = &n
	}
	if id.Payload != nil {
		// Validate wants the payload's key, which the call sends apart.
		p := *id.Payload
		p.Key = make([]byte, bootpayload.KeySize)
		if err := p.Validate(); err != nil {
			return bad("payload", "%v", err)
		}
	}
	if id.Key != nil && len(id.Key) != bootpayload.KeySize {
		return bad("key", "%d bytes; want %d", len(id.Key), bootpayload.KeySize)
	}
	return c, nil
}

func checkNet(n agentproto.IdentityNet) (netTarget, error) {
	var t netTarget
	bad := func(field, format string, args ...any) (netTarget, error) {
		return netTarget{}, &InvalidError{Field: "net." + field, Reason: fmt.Sprintf(format, args...)}
	}
	p, err := netip.ParsePrefix(n.Address)
	if err != nil || p.Addr().Zone() != "" {
		return bad("address", "%q is not an address with its prefix length, e.g. 10.200.0.5/24", n.Address)
	}
	a := p.Addr()
	if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() || (a.Is4() && p.Bits() <= 30 && a == p.Masked().Addr()) {
		return bad("address", "%s is not a host address for eth0", n.Address)
	}
	t.address = p
	if n.Gateway != "" {
		g, err := netip.ParseAddr(n.Gateway)
		if err != nil || g.Zone() != "" {
			return bad("gateway", "%q is not an IP address", n.Gateway)
		}
		if g.Is4() != a.Is4() {
			return bad("gateway", "%s and the address %s are of different IP families", g, p)
		}
		if g.IsUnspecified() || g.IsMulticast() || g == a {
			return bad("gateway", "%s cannot be the default gateway", g)
		}
		t.gateway = g
	}
	mac, err := net.ParseMAC(n.MAC)
	if err != nil || len(mac) != 6 {
		return bad("mac", "%q is not an Ethernet address, e.g. 02:00:0a:c8:00:05", n.MAC)
	}
	if mac[0]&1 != 0 || bytes.Equal(mac, make(net.HardwareAddr, 6)) {
		return bad("mac", "%s is not a unicast address", mac)
	}
	t.mac = mac
	if len(n.DNS) > maxDNS {
		return bad("dns", "%d name servers; at most %d", len(n.DNS), maxDNS)
	}
	for _, s := range n.DNS {
		d, err := netip.ParseAddr(s)
		if err != nil || d.Zone() != "" || d.IsUnspecified() || d.IsMulticast() {
			return bad("dns", "%q is not a name server's IP address", s)
		}
		t.dns = append(t.dns, d)
	}
	return t, nil
}

// isMachineID: 32 lowercase hex digits, not all zero (systemd refuses an
// all-zero machine-id).
func isMachineID(s string) bool {
	return len(s) == 32 && isLowerHex(s) && s != "00000000000000000000000000000000"
}

// isUUID: 8-4-4-4-12 lowercase hex digits, as the kernel's boot_id.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !isLowerHex(string(r)) {
				return false
			}
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return s != ""
}
