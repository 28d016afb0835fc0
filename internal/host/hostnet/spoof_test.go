package hostnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestAntiSpoofing has a guest try to take over another guest's address
// with forged frames, all inside namespaces the test creates:
//
//	attacker (172.30.0.2) ─veth tap-pool-0─┐
//	                                       banger0 (172.30.0.1) ─ up0 (10.99.0.1) ─ uplink (203.0.113.10)
//	victim   (172.30.0.3) ─veth tap-pool-1─┘
//
// The attacker also puts the victim's address on its own interface and
// serves on it, so whichever guest the host's traffic reaches answers
// with its name. The host's ARP lock time is 0, so it believes any ARP it
// is handed at once: the attack has every chance.
func TestAntiSpoofing(t *testing.T) {
	e, hostNS, _ := newTestExecutor(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.PoolSize = 0
	if err := Setup(ctx, cfg, e); err != nil {
		t.Fatal(err)
	}
	h := handleAt(t, hostNS)
	br, err := h.LinkByName(cfg.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	attacker, _ := newNamespace(t, "-attacker")
	victim, _ := newNamespace(t, "-victim")
	uplink, _ := newNamespace(t, "-up")
	attackerPort := plugGuest(t, h, br, attacker, "tap-pool-0", "172.30.0.2")
	plugGuest(t, h, br, victim, "tap-pool-1", "172.30.0.3")
	plug(t, h, "up0", "10.99.0.1/24", uplink, "10.99.0.2/24", "")
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP("10.99.0.2")}); err != nil {
		t.Fatal(err)
	}
	if err := Setup(ctx, cfg, e); err != nil { // binds the two guests' ports
		t.Fatal(err)
	}
	hu := handleAt(t, uplink)
	upEth, err := hu.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := hu.AddrAdd(upEth, &netlink.Addr{IPNet: prefixToIPNet(netip.MustParsePrefix("203.0.113.10/32"))}); err != nil {
		t.Fatal(err)
	}
	if err := inNamespace(t, hostNS, func() error {
		return os.WriteFile(filepath.Join("/proc/sys/net/ipv4/neigh", cfg.Bridge, "locktime"), []byte("0\n"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}

	victimIP, attackerIP, gw := mustAddr("172.30.0.3"), mustAddr("172.30.0.2"), Gateway(cfg.Subnet)
	victimMAC, attackerMAC, gwMAC := MAC(victimIP), MAC(attackerIP), MAC(gw)
	broadcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	serveText(t, victim, "172.30.0.3:22", "victim")
	ha := handleAt(t, attacker)
	eth, err := ha.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ha.AddrAdd(eth, &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(victimIP, 32))}); err != nil {
		t.Fatal(err)
	}
	serveText(t, attacker, "172.30.0.3:22", "attacker")
	sink := listenUDP(t, uplink, "203.0.113.10:9999")

	const wait = 1500 * time.Millisecond
	if got, err := dial(t, hostNS, "172.30.0.3:22", wait); err != nil || got != "victim" {
		t.Fatalf("before the attack the host reached %q, %v; want the victim", got, err)
	}

	attack := []struct {
		name  string
		frame []byte
	}{
		{"ARP reply with an Ethernet source that is not its sender",
			etherFrame(gwMAC, attackerMAC, unix.ETH_P_ARP, arpPacket(2, victimMAC, victimIP, gwMAC, gw))},
		{"frame from the victim's MAC (so the bridge learns it on the attacker's port)",
			etherFrame(gwMAC, victimMAC, unix.ETH_P_IP, udpPacket(victimIP, mustAddr("203.0.113.10"), 9999, []byte("forged mac")))},
		{"IPv4 from the victim's address",
			etherFrame(gwMAC, attackerMAC, unix.ETH_P_IP, udpPacket(victimIP, mustAddr("203.0.113.10"), 9999, []byte("forged ip")))},
		// Last, so that nothing after them sets the record straight.
		{"ARP reply: the victim's address is at the attacker's MAC",
			etherFrame(gwMAC, attackerMAC, unix.ETH_P_ARP, arpPacket(2, attackerMAC, victimIP, gwMAC, gw))},
		{"gratuitous ARP for the victim's address",
			etherFrame(broadcast, attackerMAC, unix.ETH_P_ARP, arpPacket(1, attackerMAC, victimIP, make(net.HardwareAddr, 6), victimIP))},
	}
	runAttack := func(attack []struct {
		name  string
		frame []byte
	}) {
		for range 5 {
			for _, a := range attack {
				if err := sendFrame(t, attacker, "eth0", a.frame); err != nil {
					t.Fatalf("sending %s: %v", a.name, err)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	runAttack(attack)

	t.Run("the host's neighbour entry still names the victim", func(t *testing.T) {
		if got := neighbourMAC(t, h, br, victimIP); got != victimMAC.String() {
			t.Errorf("host resolves %v to %s, want the victim's %s", victimIP, got, victimMAC)
		}
	})
	t.Run("the bridge did not learn the victim's MAC on the attacker's port", func(t *testing.T) {
		fdb, err := h.NeighList(attackerPort.Attrs().Index, unix.AF_BRIDGE)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range fdb {
			if n.LinkIndex == attackerPort.Attrs().Index && n.HardwareAddr.String() == victimMAC.String() {
				t.Errorf("the bridge forwards %s to the attacker's port", victimMAC)
			}
		}
	})
	t.Run("the host's connection reaches the victim", func(t *testing.T) {
		if got, err := dial(t, hostNS, "172.30.0.3:22", wait); err != nil || got != "victim" {
			t.Errorf("host to 172.30.0.3:22 reached %q, %v; want the victim", got, err)
		}
	})
	t.Run("no forged packet left the host", func(t *testing.T) {
		if got := sink.received(); len(got) != 0 {
			t.Errorf("the uplink received %q from the attacker's forged frames", got)
		}
		// Control: the same datagram from the attacker's own address
		// goes out.
		if err := sendFrame(t, attacker, "eth0", etherFrame(gwMAC, attackerMAC, unix.ETH_P_IP,
			udpPacket(attackerIP, mustAddr("203.0.113.10"), 9999, []byte("honest")))); err != nil {
			t.Fatal(err)
		}
		if got := sink.wait(wait); got != "honest" {
			t.Errorf("control: the uplink received %q from the attacker's own address, want \"honest\"", got)
		}
	})
	t.Run("a port without a binding sends nothing", func(t *testing.T) {
		stray, _ := newNamespace(t, "-stray")
		plugGuest(t, h, br, stray, "tap-pool-999", "172.30.0.50")
		if err := ping(t, stray, "172.30.0.1", wait); err == nil {
			t.Error("a guest on a TAP with no binding pinged the gateway")
		}
	})
	// Control: without the anti-spoofing table the same attack takes the
	// victim's address, so the checks above can fail.
	t.Run("control: the attack works without the table", func(t *testing.T) {
		if err := e.Apply(ctx, []Step{DeleteNFTable{Name: cfg.table(), Family: "bridge"}}); err != nil {
			t.Fatal(err)
		}
		runAttack(attack[3:]) // the ARP lies that name the attacker's MAC
		if got := neighbourMAC(t, h, br, victimIP); got != attackerMAC.String() {
			t.Errorf("without anti-spoofing the host resolves %v to %q; want the attacker's %s (is the test's attack real?)", victimIP, got, attackerMAC)
		}
		if got, err := dial(t, hostNS, "172.30.0.3:22", wait); got != "attacker" {
			t.Errorf("without anti-spoofing the host reached %q, %v; want the attacker (is the test's attack real?)", got, err)
		}
	})
}

// neighbourMAC is the MAC the host's neighbour table holds for ip on link
// l; "" when it has none.
func neighbourMAC(t *testing.T, h *netlink.Handle, l netlink.Link, ip netip.Addr) string {
	t.Helper()
	neighs, err := h.NeighList(l.Attrs().Index, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && n.HardwareAddr != nil {
			return n.HardwareAddr.String()
		}
	}
	return ""
}

// serveText answers every TCP connection to addr, inside ns, with text.
func serveText(t *testing.T, ns netns.NsHandle, addr, text string) {
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
			fmt.Fprint(c, text)
			c.Close()
		}
	}()
}

// udpSink collects the datagrams sent to one address.
type udpSink struct{ got chan string }

func listenUDP(t *testing.T, ns netns.NsHandle, addr string) *udpSink {
	t.Helper()
	var pc net.PacketConn
	if err := inNamespace(t, ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on udp %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &udpSink{got: make(chan string, 64)}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.got <- string(buf[:n])
		}
	}()
	return s
}

// received returns what arrived so far.
func (s *udpSink) received() []string {
	var out []string
	for {
		select {
		case m := <-s.got:
			out = append(out, m)
		default:
			return out
		}
	}
}

// wait returns the next datagram, or "" after timeout.
func (s *udpSink) wait(timeout time.Duration) string {
	select {
	case m := <-s.got:
		return m
	case <-time.After(timeout):
		return ""
	}
}

// sendFrame sends a raw Ethernet frame out of link ifname inside ns.
func sendFrame(t *testing.T, ns netns.NsHandle, ifname string, frame []byte) error {
	t.Helper()
	return inNamespace(t, ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6})
	})
}

func etherFrame(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	f := make([]byte, 0, 14+len(payload))
	f = append(f, dst...)
	f = append(f, src...)
	f = binary.BigEndian.AppendUint16(f, etherType)
	return append(f, payload...)
}

// arpPacket is an Ethernet/IPv4 ARP packet: op 1 request, 2 reply.
func arpPacket(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	p := []byte{0, 1, 0x08, 0x00, 6, 4}
	p = binary.BigEndian.AppendUint16(p, op)
	p = append(p, sha...)
	p = append(p, spa.AsSlice()...)
	p = append(p, tha...)
	return append(p, tpa.AsSlice()...)
}

// udpPacket is an IPv4 UDP datagram (UDP checksum 0: none, allowed over
// IPv4).
func udpPacket(src, dst netip.Addr, port uint16, payload []byte) []byte {
	udp := binary.BigEndian.AppendUint16(nil, 40000)
	udp = binary.BigEndian.AppendUint16(udp, port)
	udp = binary.BigEndian.AppendUint16(udp, uint16(8+len(payload)))
	udp = append(udp, 0, 0)
	udp = append(udp, payload...)
	ip := []byte{0x45, 0}
	ip = binary.BigEndian.AppendUint16(ip, uint16(20+len(udp)))
	ip = append(ip, 0, 1, 0x40, 0, 64, unix.IPPROTO_UDP, 0, 0)
	ip = append(ip, src.AsSlice()...)
	ip = append(ip, dst.AsSlice()...)
	binary.BigEndian.PutUint16(ip[10:], icmpChecksum(ip))
	return append(ip, udp...)
}
