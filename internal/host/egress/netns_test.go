package egress

import (
	"net"
	"net/netip"
	"testing"

	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/bangerdev/banger/internal/shared/netnstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Tests that change networking do it only inside network namespaces they
// create (banger-test-<random>) and delete; they never touch the
// machine's own namespace, and send traffic only between namespaces they
// made.

// newNamespace creates a namespace of the test's own (netnstest.New).
func newNamespace(t *testing.T, suffix string) netns.NsHandle {
	t.Helper()
	ns, _ := netnstest.New(t, suffix, "the egress enforcement test creates network namespaces, a bridge and nftables tables, which")
	return ns
}

// inNamespace runs fn on a thread inside ns (netnstest.Run).
func inNamespace(ns netns.NsHandle, fn func() error) error { return netnstest.Run(ns, fn) }

// handleAt returns a netlink handle bound to ns, closed with the test.
func handleAt(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func ipNet(p string) *net.IPNet {
	pfx := netip.MustParsePrefix(p)
	return &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), 32)}
}

// plug makes veth pair hostEnd (in h's namespace, with hostAddr unless
// empty) and eth0 in other (with otherAddr, the MAC hostnet gives it, and
// unless empty a default route via gw), all up.
func plug(t *testing.T, h *netlink.Handle, hostEnd, hostAddr string, other netns.NsHandle, otherAddr, gw string) netlink.Link {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostEnd}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(other))}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("creating veth %s: %v", hostEnd, err)
	}
	l, err := h.LinkByName(hostEnd)
	if err != nil {
		t.Fatal(err)
	}
	if hostAddr != "" {
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(hostAddr)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	ho := handleAt(t, other)
	for _, name := range []string{"lo", "eth0"} {
		ol, err := ho.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "eth0" {
			a := netip.MustParsePrefix(otherAddr)
			if err := ho.LinkSetHardwareAddr(ol, hostnet.MAC(a.Addr())); err != nil {
				t.Fatal(err)
			}
			if err := ho.AddrAdd(ol, &netlink.Addr{IPNet: ipNet(otherAddr)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := ho.LinkSetUp(ol); err != nil {
			t.Fatal(err)
		}
	}
	if gw != "" {
		if err := ho.RouteAdd(&netlink.Route{Gw: net.ParseIP(gw)}); err != nil {
			t.Fatalf("default route via %s: %v", gw, err)
		}
	}
	return l
}

// plugGuest attaches guest to bridge br by a veth named like the pool TAP
// of its address (a TAP needs a hypervisor on its other end), isolated as
// a pool TAP is.
func plugGuest(t *testing.T, h *netlink.Handle, br netlink.Link, guest netns.NsHandle, hostEnd, ip string) {
	t.Helper()
	l := plug(t, h, hostEnd, "", guest, ip+"/24", "172.30.0.1")
	if err := h.LinkSetMaster(l, br); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetIsolated(l, true); err != nil {
		t.Fatal(err)
	}
}
