package vmstats

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
)

// A veth pair between two throwaway namespaces stands in for a TAP and its
// guest: the host end "tap0" in one, the guest end in the other. Bytes the
// host sends are what the guest received (NetRxBytes), and the reverse.
func TestTAPCounters(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	host, guest := hvtest.NewNetns(t), hvtest.NewNetns(t)
	hvtest.IP(t, "-n", host, "link", "add", "tap0", "type", "veth", "peer", "name", "eth0", "netns", guest)
	hvtest.IP(t, "-n", host, "addr", "add", "10.231.0.1/24", "dev", "tap0")
	hvtest.IP(t, "-n", guest, "addr", "add", "10.231.0.2/24", "dev", "eth0")
	hvtest.IP(t, "-n", host, "link", "set", "tap0", "up")
	hvtest.IP(t, "-n", guest, "link", "set", "eth0", "up")

	// The guest listens; the host sends 40 datagrams of 1000 bytes.
	const n, size = 40, 1000
	var (
		ln   *net.UDPConn
		conn *net.UDPConn
		err  error
	)
	hvtest.InNetns(t, guest, func() { ln, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 231, 0, 2), Port: 9999}) })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hvtest.InNetns(t, host, func() { conn, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 231, 0, 2), Port: 9999}) })
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := make([]byte, size)
	buf := make([]byte, 2*size)
	for i := 0; i < n; i++ {
		if _, err := conn.Write(payload); err != nil {
			t.Fatal(err)
		}
		// Each datagram is read before the next is sent, so none is
		// dropped and all were counted.
		ln.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := ln.ReadFromUDP(buf); err != nil {
			t.Fatalf("datagram %d did not arrive: %v", i, err)
		}
	}

	var st struct{ rx, tx int64 }
	hvtest.InNetns(t, host, func() {
		s := new(Sampler).Sample(context.Background(), Target{Name: "vm", TAP: "tap0"})
		st.rx, st.tx = s.NetRxBytes, s.NetTxBytes
	})
	t.Logf("guest received %d bytes, sent %d", st.rx, st.tx)
	// Each datagram is 1000 bytes of payload behind UDP, IPv4 and
	// Ethernet headers (8 + 20 + 14).
	if min := int64(n * (size + 42)); st.rx < min {
		t.Errorf("guest received %d bytes, want at least the %d sent to it", st.rx, min)
	}
	// The guest sent only what neighbour discovery needs: far less.
	if st.tx >= st.rx/4 {
		t.Errorf("guest sent %d bytes and received %d: the directions are swapped?", st.tx, st.rx)
	}
	if _, _, err := (Netlink{}).Counters("banger-no-such-dev"); err == nil {
		t.Error("counters of a missing device: no error")
	}
}
