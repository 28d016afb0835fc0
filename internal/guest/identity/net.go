package identity

import (
	"bytes"
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/guest/guestnet"
)

// moveNet moves eth0 (the link net-up configured at boot) to the new MAC
// and address: it removes the old global addresses, sets the MAC with
// the link down (not every NIC changes it live), then configures the
// link, the default route and resolv.conf as net-up does
// (guestnet.Apply).
func moveNet(ctx context.Context, sys System, n netTarget) error {
	if sys.NoLink {
		sys.log().Info("no link to move in this agent; writing resolv.conf only", "address", n.address, "mac", n.mac)
		return guestnet.Apply(ctx, guestnet.Config{DNS: n.dns}, guestnet.System{EtcDir: sys.etc(), Log: sys.log()})
	}
	h := sys.Netlink
	link, err := guestnet.FindLink(ctx, h, nil, sys.LinkWait)
	if err != nil {
		return err
	}
	name := link.Attrs().Name
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("listing the addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		if a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue // link-local: the kernel derives a new one from the new MAC
		}
		if err := h.AddrDel(link, &a); err != nil {
			return fmt.Errorf("removing the old address %s from %s: %w", a.IPNet, name, err)
		}
	}
	if !bytes.Equal(link.Attrs().HardwareAddr, n.mac) {
		if err := h.LinkSetDown(link); err != nil {
			return fmt.Errorf("taking %s down to change its MAC: %w", name, err)
		}
		if err := h.LinkSetHardwareAddr(link, n.mac); err != nil {
			return fmt.Errorf("setting the MAC of %s to %s: %w", name, n.mac, err)
		}
	}
	sys.log().Info("link moved", "link", name, "mac", n.mac)
	return guestnet.Apply(ctx, guestnet.Config{Address: n.address, Gateway: n.gateway, DNS: n.dns, MAC: n.mac}, guestnet.System{
		Netlink: h,
		EtcDir:  sys.etc(),
		Log:     sys.log(),
	})
}
