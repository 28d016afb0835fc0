package hostnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestTraffic proves the table and the port isolation with real packets,
// all inside namespaces the test creates:
//
//	guest g1 (172.30.0.2) ─veth─┐
//	                            banger0 (172.30.0.1) [the "host" namespace: Setup ran here]
//	guest g2 (172.30.0.3) ─veth─┘        └─ up0 (10.99.0.1) ─veth─ uplink (10.99.0.2)
//
// The guests hang off the bridge by veth pairs instead of TAPs (a TAP
// needs a hypervisor on its other end), set up as Plan sets up pool TAPs:
// attached, isolated, up. The uplink has no route back to the guests, so
// only masquerade lets them reach it.
func TestTraffic(t *testing.T) {
	e, hostNS, _ := newTestExecutor(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.PoolSize = 1
	if err := Setup(ctx, cfg, e); err != nil {
		t.Fatal(err)
	}
	h := handleAt(t, hostNS)
	br, err := h.LinkByName(cfg.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := h.LinkByName("lo") // a fresh namespace starts with lo down
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}

	g1, _ := newNamespace(t, "-g1")
	g2, _ := newNamespace(t, "-g2")
	uplink, _ := newNamespace(t, "-up")
	vg1 := plugGuest(t, h, br, g1, "vg1", "172.30.0.2")
	vg2 := plugGuest(t, h, br, g2, "vg2", "172.30.0.3")
	plug(t, h, "up0", "10.99.0.1/24", uplink, "10.99.0.2/24", "")

	const wait = 1500 * time.Millisecond
	serveRemoteAddr(t, uplink, "10.99.0.2:7000")
	serveRemoteAddr(t, g1, "172.30.0.2:22")
	serveRemoteAddr(t, g2, "172.30.0.3:22")
	serveRemoteAddr(t, hostNS, "0.0.0.0:8080") // a host service on every host address

	t.Run("guest pings the gateway", func(t *testing.T) {
		if err := ping(t, g1, "172.30.0.1", wait); err != nil {
			t.Error(err)
		}
	})
	t.Run("guest egress is masqueraded", func(t *testing.T) {
		got, err := dial(t, g1, "10.99.0.2:7000", wait)
		if err != nil {
			t.Fatalf("guest to uplink: %v", err)
		}
		if got != "10.99.0.1" {
			t.Errorf("the uplink saw the guest as %s, want the host's uplink address 10.99.0.1", got)
		}
	})
	t.Run("host reaches guests", func(t *testing.T) {
		for _, addr := range []string{"172.30.0.2:22", "172.30.0.3:22"} {
			if got, err := dial(t, hostNS, addr, wait); err != nil || got != "172.30.0.1" {
				t.Errorf("host to %s: saw %q, %v; want a connection from 172.30.0.1", addr, got, err)
			}
		}
	})
	t.Run("guests cannot reach host services", func(t *testing.T) {
		if _, err := dial(t, hostNS, "10.99.0.1:8080", wait); err != nil {
			t.Fatalf("control: the host service does not answer the host itself: %v", err)
		}
		for _, addr := range []string{"172.30.0.1:8080", "10.99.0.1:8080"} {
			if got, err := dial(t, g1, addr, wait); !isTimeout(err) {
				t.Errorf("guest to host service %s: %q, %v; want it dropped (a timeout)", addr, got, err)
			}
		}
	})
	t.Run("outside cannot reach guests", func(t *testing.T) {
		// Give the uplink a route to the guests: forwarding would let it in.
		hu := handleAt(t, uplink)
		if err := hu.RouteAdd(&netlink.Route{Dst: prefixToIPNet(cfg.Subnet), Gw: net.ParseIP("10.99.0.1")}); err != nil {
			t.Fatal(err)
		}
		if got, err := dial(t, uplink, "172.30.0.2:22", wait); !isTimeout(err) {
			t.Errorf("uplink to guest: %q, %v; want it dropped (a timeout)", got, err)
		}
	})
	t.Run("guests cannot reach each other on the bridge", func(t *testing.T) {
		if got, err := dial(t, g1, "172.30.0.3:22", wait); err == nil {
			t.Errorf("g1 reached g2 directly (%q)", got)
		}
		if resolved(t, g1, "172.30.0.3") {
			t.Error("g1 resolved g2's MAC address: the bridge ports are not isolated")
		}
		// Control: without port isolation the same ARP request is answered.
		setIsolated(t, h, false, vg1, vg2)
		ping(t, g1, "172.30.0.3", wait) // only for the ARP it triggers
		if !resolved(t, g1, "172.30.0.3") {
			t.Error("control: g1 cannot resolve g2 even without port isolation")
		}
		setIsolated(t, h, true, vg1, vg2)
		flushNeighbours(t, g1)
	})
	t.Run("guests cannot reach each other through the host", func(t *testing.T) {
		hg1 := handleAt(t, g1)
		if err := hg1.RouteAdd(&netlink.Route{Dst: prefixToIPNet(netip.MustParsePrefix("172.30.0.3/32")), Gw: net.ParseIP("172.30.0.1")}); err != nil {
			t.Fatal(err)
		}
		if got, err := dial(t, g1, "172.30.0.3:22", wait); !isTimeout(err) {
			t.Errorf("g1 to g2 routed through the host: %q, %v; want it dropped (a timeout)", got, err)
		}
		if got, err := dial(t, g2, "10.99.0.2:7000", wait); err != nil || got != "10.99.0.1" {
			t.Errorf("control: g2 to the uplink: %q, %v", got, err)
		}
	})
}

// plugGuest connects namespace guest to the bridge through a veth pair
// (hostEnd on the bridge, isolated; eth0 in the guest with ip/24 and the
// gateway as default route) and returns the bridge end.
func plugGuest(t *testing.T, h *netlink.Handle, br netlink.Link, guest netns.NsHandle, hostEnd, ip string) netlink.Link {
	t.Helper()
	l := plug(t, h, hostEnd, "", guest, ip+"/24", "172.30.0.1")
	if err := h.LinkSetMaster(l, br); err != nil {
		t.Fatal(err)
	}
	setIsolated(t, h, true, l)
	return l
}

// plug makes veth pair hostEnd (in h's namespace, with hostAddr unless
// empty) and eth0 in other (with otherAddr and, unless empty, a default
// route via gw), all up.
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
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: prefixToIPNet(netip.MustParsePrefix(hostAddr))}); err != nil {
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
			if err := ho.LinkSetHardwareAddr(ol, MAC(a.Addr())); err != nil {
				t.Fatal(err)
			}
			if err := ho.AddrAdd(ol, &netlink.Addr{IPNet: prefixToIPNet(a)}); err != nil {
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

func setIsolated(t *testing.T, h *netlink.Handle, on bool, links ...netlink.Link) {
	t.Helper()
	for _, l := range links {
		if err := h.LinkSetIsolated(l, on); err != nil {
			t.Fatal(err)
		}
	}
}

// serveRemoteAddr answers every TCP connection to addr, inside ns, with the
// address the connection came from.
func serveRemoteAddr(t *testing.T, ns netns.NsHandle, addr string) {
	t.Helper()
	var ln net.Listener
	if err := inNamespace(t, ns, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			fmt.Fprint(c, ap.Addr())
			c.Close()
		}
	}()
}

// dial connects from inside ns to addr and returns what the other end says.
func dial(t *testing.T, ns netns.NsHandle, addr string, timeout time.Duration) (string, error) {
	t.Helper()
	var got []byte
	err := inNamespace(t, ns, func() error {
		c, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		got, err = io.ReadAll(c)
		return err
	})
	return string(got), err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// ping sends one ICMP echo request from inside ns and waits for the reply.
func ping(t *testing.T, ns netns.NsHandle, dst string, timeout time.Duration) error {
	t.Helper()
	return inNamespace(t, ns, func() error {
		c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		defer c.Close()
		const id, seq = 0xb4, 1
		msg := []byte{8, 0, 0, 0, 0, id, 0, seq, 'b', 'a', 'n', 'g', 'e', 'r'}
		binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
		c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.WriteTo(msg, &net.IPAddr{IP: net.ParseIP(dst)}); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return fmt.Errorf("ping %s: %w", dst, err)
			}
			if n >= 8 && buf[0] == 0 && buf[5] == id && from.String() == dst {
				return nil
			}
		}
	})
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// resolved reports whether ns knows ip's MAC address.
func resolved(t *testing.T, ns netns.NsHandle, ip string) bool {
	t.Helper()
	neighs, err := handleAt(t, ns).NeighList(0, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.String() == ip && n.HardwareAddr != nil && n.State&(unix.NUD_REACHABLE|unix.NUD_STALE|unix.NUD_DELAY|unix.NUD_PROBE|unix.NUD_PERMANENT) != 0 {
			return true
		}
	}
	return false
}

func flushNeighbours(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	h := handleAt(t, ns)
	neighs, err := h.NeighList(0, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		h.NeighDel(&n)
	}
}
