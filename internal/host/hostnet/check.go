package hostnet

import (
	"errors"
	"net/netip"
	"strings"
)

// CheckBridge reports why name cannot be banger's bridge: it must be a
// name the kernel takes for an interface (dev_valid_name: 1 to 15 bytes,
// not "." or "..", no '/', ':', space or control character), and must not
// start with the TAP pool's prefix, whose names the pool owns.
// Config.Validate holds Bridge to it, and so does the config file's
// network.bridge.
func CheckBridge(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return errors.New("is not a Linux interface name (1 to 15 bytes)")
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; b == '/' || b == ':' || b <= ' ' || b == 0x7f {
			return errors.New(`is not a Linux interface name (no "/", ":", spaces or control characters)`)
		}
	}
	if strings.HasPrefix(name, tapPrefix) {
		return errors.New(`starts with "` + tapPrefix + `" and so collides with the TAP pool's names`)
	}
	return nil
}

// CheckSubnet reports why p cannot be the guests' subnet: it must be an
// IPv4 prefix of 29 bits or fewer, room for the network and broadcast
// addresses, the gateway and guests. Config.Validate holds Subnet to it,
// and so does the config file's network.subnet (which adds its own
// policy: a masked, private range of /16 or smaller).
func CheckSubnet(p netip.Prefix) error {
	switch {
	case !p.IsValid() || !p.Addr().Is4():
		return errors.New("is not an IPv4 prefix")
	case p.Bits() > 29:
		return errors.New("is too small for a gateway and guests")
	}
	return nil
}

// CheckAllowCIDR reports why p cannot be an allowed destination: it must
// be an IPv4 prefix (guests get no IPv6) with its host bits zero, as the
// nftables interval set holds it. Config.Validate holds AllowCIDRs to it,
// and so does the config file's network.allow_cidrs.
func CheckAllowCIDR(p netip.Prefix) error {
	switch {
	case !p.IsValid() || !p.Addr().Is4():
		return errors.New("is not an IPv4 prefix")
	case p != p.Masked():
		return errors.New("has host bits set")
	}
	return nil
}
