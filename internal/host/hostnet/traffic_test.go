package hostnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestTraffic proves the table and the port isolation with real packets,
// all inside namespaces the test creates:
//
//	guest g1 (172.30.0.2) ─veth tap-pool-0─┐
//	                                       banger0 (172.30.0.1) [the "host" namespace: Setup ran here]
//	guest g2 (172.30.0.3) ─veth tap-pool-1─┘        └─ up0 (10.99.0.1) ─veth─ uplink
//
// The uplink stands in for everything past the host: a LAN host
// (10.99.0.2), the LAN's resolver (10.99.0.53), the cloud metadata
// service (169.254.169.254) and the internet (203.0.113.10); the host's
// default route points at it. The guests hang off the bridge by veth pairs
// instead of TAPs (a TAP needs a hypervisor on its other end), named and
// set up as the pool TAPs of their addresses: attached, isolated, up. The
// uplink has no route back to the guests, so only masquerade lets them
// reach it.
func TestTraffic(t *testing.T) {
	e, hostNS, hostName := newTestExecutor(t)
	ctx := context.Background()
	cfg := testConfig() // owner 4242
	cfg.PoolSize = 0    // the veths below stand in for pool TAPs
	cfg.DNS = []netip.Addr{netip.MustParseAddr("10.99.0.53")}
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
	vg1 := plugGuest(t, h, br, g1, "tap-pool-0", "172.30.0.2")
	vg2 := plugGuest(t, h, br, g2, "tap-pool-1", "172.30.0.3")
	plug(t, h, "up0", "10.99.0.1/24", uplink, "10.99.0.2/24", "")
	hu := handleAt(t, uplink)
	upEth, err := hu.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.99.0.53/32", "169.254.169.254/32", "203.0.113.10/32"} {
		if err := hu.AddrAdd(upEth, &netlink.Addr{IPNet: prefixToIPNet(netip.MustParsePrefix(a))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP("10.99.0.2")}); err != nil {
		t.Fatal(err)
	}
	// Setup binds every link with a pool name to its address, as it does
	// the TAPs it makes.
	if err := Setup(ctx, cfg, e); err != nil {
		t.Fatal(err)
	}

	const wait = 1500 * time.Millisecond
	for _, addr := range []string{"10.99.0.2:7000", "10.99.0.53:53", "10.99.0.53:7000", "169.254.169.254:80", "203.0.113.10:7000"} {
		serveRemoteAddr(t, uplink, addr)
	}
	serveUDPEcho(t, uplink, "10.99.0.53:53")
	serveRemoteAddr(t, g1, "172.30.0.2:22")
	serveRemoteAddr(t, g2, "172.30.0.3:22")
	serveRemoteAddr(t, hostNS, "0.0.0.0:8080") // a host service on every host address

	t.Run("guest pings the gateway", func(t *testing.T) {
		if err := ping(t, g1, "172.30.0.1", wait); err != nil {
			t.Error(err)
		}
	})
	t.Run("guest egress is masqueraded", func(t *testing.T) {
		got, err := dial(t, g1, "203.0.113.10:7000", wait)
		if err != nil {
			t.Fatalf("guest to the internet: %v", err)
		}
		if got != "10.99.0.1" {
			t.Errorf("the internet saw the guest as %s, want the host's uplink address 10.99.0.1", got)
		}
	})
	t.Run("guests cannot reach the LAN or the metadata service", func(t *testing.T) {
		for _, addr := range []string{"10.99.0.2:7000", "169.254.169.254:80", "10.99.0.53:7000"} {
			if got, err := dial(t, hostNS, addr, wait); err != nil {
				t.Fatalf("control: the host itself cannot reach %s: %q, %v", addr, got, err)
			}
			if got, err := dial(t, g1, addr, wait); !isTimeout(err) {
				t.Errorf("guest to %s: %q, %v; want it dropped (a timeout)", addr, got, err)
			}
		}
	})
	t.Run("guests reach their resolver on port 53 only", func(t *testing.T) {
		if got, err := dial(t, g1, "10.99.0.53:53", wait); err != nil || got != "10.99.0.1" {
			t.Errorf("guest to its resolver over tcp: %q, %v", got, err)
		}
		if err := udpEcho(t, g1, "10.99.0.53:53", wait); err != nil {
			t.Errorf("guest to its resolver over udp: %v", err)
		}
		if err := udpEcho(t, g1, "10.99.0.2:53", wait); err == nil {
			t.Error("guest reached udp port 53 of a LAN host that is not its resolver")
		}
	})
	t.Run("an allowed CIDR is reachable", func(t *testing.T) {
		allow := cfg
		allow.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}
		if err := Setup(ctx, allow, e); err != nil {
			t.Fatal(err)
		}
		if got, err := dial(t, g1, "10.99.0.2:7000", wait); err != nil || got != "10.99.0.1" {
			t.Errorf("guest to an allowed LAN host: %q, %v", got, err)
		}
		if got, err := dial(t, g1, "169.254.169.254:80", wait); !isTimeout(err) {
			t.Errorf("guest to the metadata service with the LAN allowed: %q, %v; want it dropped", got, err)
		}
		if err := Setup(ctx, cfg, e); err != nil {
			t.Fatal(err)
		}
		if got, err := dial(t, g1, "10.99.0.2:7000", wait); !isTimeout(err) {
			t.Errorf("guest to the LAN after the allowlist was emptied: %q, %v; want it dropped", got, err)
		}
	})
	t.Run("host reaches guests", func(t *testing.T) {
		for _, addr := range []string{"172.30.0.2:22", "172.30.0.3:22"} {
			if got, err := dial(t, hostNS, addr, wait); err != nil || got != "172.30.0.1" {
				t.Errorf("host to %s: saw %q, %v; want a connection from 172.30.0.1", addr, got, err)
			}
		}
	})
	t.Run("only the owner and root connect to guests", func(t *testing.T) {
		for _, tc := range []struct {
			uid  int
			want bool
		}{{4242, true}, {0, true}, {65534, false}, {4243, false}} {
			got, err := dialAs(t, hostName, tc.uid, "172.30.0.2", 22)
			if tc.want && (err != nil || got != "172.30.0.1") {
				t.Errorf("uid %d to a guest: %q, %v; want a connection (the daemon's owner, or root)", tc.uid, got, err)
			}
			if !tc.want && err == nil {
				t.Errorf("uid %d to a guest: connected (%q); want it refused", tc.uid, got)
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
		if got, err := dial(t, g2, "203.0.113.10:7000", wait); err != nil || got != "10.99.0.1" {
			t.Errorf("control: g2 to the internet: %q, %v", got, err)
		}
	})
}

// dialAs connects to ip:port from namespace nsName as uid (group uid,
// no supplementary groups) in a process of its own, the way another
// local user would, and returns what the other end says. bash's /dev/tcp
// does the connecting; setpriv (util-linux) drops to uid.
func dialAs(t *testing.T, nsName string, uid int, ip string, port int) (string, error) {
	t.Helper()
	for _, tool := range []string{"ip", "setpriv", "bash", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("connecting as another user needs %s: %v", tool, err)
		}
	}
	script := fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && cat <&3", ip, port)
	cmd := exec.Command("ip", "netns", "exec", nsName, "timeout", "3",
		"setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups", "bash", "-c", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// serveUDPEcho answers every UDP datagram to addr, inside ns, with itself.
func serveUDPEcho(t *testing.T, ns netns.NsHandle, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := inNamespace(t, ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on udp %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// udpEcho sends a datagram from inside ns to addr and waits for the echo.
func udpEcho(t *testing.T, ns netns.NsHandle, addr string, timeout time.Duration) error {
	t.Helper()
	return inNamespace(t, ns, func() error {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("banger")); err != nil {
			return err
		}
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "banger" {
			return fmt.Errorf("echo from %s = %q", addr, buf[:n])
		}
		return nil
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
