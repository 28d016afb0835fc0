package identity

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/netnstest"
)

// newNamespace returns a netlink handle bound to a fresh network
// namespace, destroyed when the test ends; the test never configures
// the namespace it runs in.
func newNamespace(t *testing.T) *netlink.Handle {
	t.Helper()
	ns, _ := netnstest.New(t, "", "creating a network namespace")
	return netnstest.Handle(t, ns)
}

// TestMoveNetInNamespace gives a template's eth0 (a veth with the old
// MAC, address and default route) a clone's identity over real netlink,
// twice, and checks the link, its addresses and the default route.
func TestMoveNetInNamespace(t *testing.T) {
	h := newNamespace(t)
	a := netlink.NewLinkAttrs()
	a.Name = "eth0"
	a.HardwareAddr, _ = net.ParseMAC("02:00:0a:c8:00:02")
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: a, PeerName: "peer0"}); err != nil {
		t.Fatalf("creating veth eth0: %v", err)
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	old, _ := netlink.ParseAddr("10.200.0.2/24")
	if err := h.AddrAdd(eth0, old); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(eth0); err != nil {
		t.Fatal(err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("10.200.0.1")}); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	sys := System{Root: root, Netlink: h, SetClock: (&recorder{}).setClock}
	id := agentproto.Identity{TimeUnixNano: 1, Net: &agentproto.IdentityNet{Address: "10.201.0.7/16", Gateway: "10.201.0.1", MAC: "02:00:0a:c9:00:07", DNS: []string{"10.201.0.1"}}}
	for run := range 2 {
		if _, err := Apply(context.Background(), id, sys); err != nil {
			t.Fatalf("Apply (run %d): %v", run+1, err)
		}
	}

	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if got := link.Attrs().HardwareAddr.String(); got != "02:00:0a:c9:00:07" {
		t.Errorf("eth0 MAC %s, want 02:00:0a:c9:00:07", got)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("eth0 is down")
	}
	addrs, err := h.AddrList(link, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
	}
	if diff := cmp.Diff([]string{"10.201.0.7/16"}, got); diff != "" {
		t.Errorf("eth0 addresses (-want +got):\n%s", diff)
	}
	routes, err := h.RouteList(nil, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	var gws []string
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			gws = append(gws, r.Gw.String())
		}
	}
	if !slices.Equal(gws, []string{"10.201.0.1"}) {
		t.Errorf("default routes via %v, want only 10.201.0.1", gws)
	}
	b, err := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
	if err != nil || !slices.Contains(splitLines(string(b)), "nameserver 10.201.0.1") {
		t.Errorf("resolv.conf: %q (%v), want nameserver 10.201.0.1", b, err)
	}
}

func splitLines(s string) []string { return strings.Split(s, "\n") }
