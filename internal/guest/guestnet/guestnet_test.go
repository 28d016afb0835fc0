package guestnet

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/netnstest"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestParseCmdline(t *testing.T) {
	netipEqual := cmp.Options{
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	}
	tests := []struct {
		name    string
		cmdline string
		want    Config
		wantErr string
	}{
		{name: "nothing", cmdline: "console=ttyS0 root=/dev/vda ip=dhcp", want: Config{}},
		{
			name:    "everything",
			cmdline: "console=ttyS0 banger.ip=172.30.0.5/24 banger.gw=172.30.0.1 banger.dns=1.1.1.1,9.9.9.9 banger.hostname=quiet-otter banger.mac=02:00:AC:1E:00:05 quiet",
			want: Config{
				Address:  netip.MustParsePrefix("172.30.0.5/24"),
				Gateway:  netip.MustParseAddr("172.30.0.1"),
				DNS:      []netip.Addr{netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("9.9.9.9")},
				Hostname: "quiet-otter",
				MAC:      mustMAC("02:00:ac:1e:00:05"),
			},
		},
		{
			name:    "later parameters win; quotes dropped; words after -- are init's",
			cmdline: `banger.ip=10.0.0.2/8 "banger.ip=10.0.0.3/30" -- banger.hostname=nope`,
			want:    Config{Address: netip.MustParsePrefix("10.0.0.3/30")},
		},
		{name: "hostname alone", cmdline: "banger.hostname=box.example", want: Config{Hostname: "box.example"}},
		{
			name:    "IPv6",
			cmdline: "banger.ip=fd00::5/64 banger.gw=fd00::1",
			want:    Config{Address: netip.MustParsePrefix("fd00::5/64"), Gateway: netip.MustParseAddr("fd00::1")},
		},
		{name: "address without prefix", cmdline: "banger.ip=172.30.0.5", wantErr: "banger.ip=172.30.0.5: want an address with its prefix length, e.g. banger.ip=172.30.0.5/24"},
		{name: "bad gateway", cmdline: "banger.ip=172.30.0.5/24 banger.gw=gateway", wantErr: "banger.gw=gateway: want an IP address"},
		{name: "gateway without address", cmdline: "banger.gw=172.30.0.1", wantErr: "banger.gw=172.30.0.1 needs banger.ip=<addr>/<prefix> too"},
		{name: "mixed families", cmdline: "banger.ip=172.30.0.5/24 banger.gw=fd00::1", wantErr: "are of different IP families"},
		{name: "bad dns", cmdline: "banger.dns=1.1.1.1,one", wantErr: `banger.dns=1.1.1.1,one: "one" is not an IP address`},
		{name: "bad hostname", cmdline: "banger.hostname=-x", wantErr: "banger.hostname=-x: label \"-x\""},
		{name: "hostname with underscore", cmdline: "banger.hostname=a_b", wantErr: "'_' is not allowed"},
		{name: "long hostname", cmdline: "banger.hostname=" + strings.Repeat("a", 65), wantErr: "1 to 64 characters"},
		{name: "bad mac", cmdline: "banger.mac=02:00", wantErr: "banger.mac=02:00: want an Ethernet address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCmdline(tt.cmdline)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, netipEqual); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if got.IsZero() != (tt.name == "nothing") {
				t.Errorf("IsZero = %v", got.IsZero())
			}
		})
	}
}

func TestHostsWith(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no file", "", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tbox\n"},
		{"appended", "127.0.0.1 localhost\n", "127.0.0.1 localhost\n127.0.1.1\tbox\n"},
		{"replaces the old name", "127.0.0.1 localhost\n127.0.1.1 old\n::1 x\n", "127.0.0.1 localhost\n127.0.1.1\tbox\n::1 x\n"},
		{"already there", "127.0.1.1 box\n", "127.0.1.1 box\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, hostsWith(tt.in, "box")); diff != "" {
				t.Errorf("hosts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPickLink(t *testing.T) {
	link := func(index int, name, encap, mac string, flags net.Flags) netlink.Link {
		a := netlink.NewLinkAttrs()
		a.Index, a.Name, a.EncapType, a.Flags = index, name, encap, flags
		if mac != "" {
			a.HardwareAddr = mustMAC(mac)
		}
		return &netlink.Device{LinkAttrs: a}
	}
	lo := link(1, "lo", "loopback", "00:00:00:00:00:00", net.FlagLoopback)
	ens4 := link(4, "ens4", "ether", "02:00:00:00:00:04", 0)
	ens3 := link(3, "ens3", "ether", "02:00:00:00:00:03", 0)
	eth0 := link(7, "eth0", "ether", "02:00:00:00:00:07", 0)
	sit := link(2, "sit0", "sit", "", 0)
	tests := []struct {
		name  string
		links []netlink.Link
		mac   string
		want  string // "" = none
	}{
		{"eth0 first", []netlink.Link{lo, ens3, eth0}, "", "eth0"},
		{"else the first Ethernet link by index", []netlink.Link{lo, sit, ens4, ens3}, "", "ens3"},
		{"by MAC", []netlink.Link{lo, ens3, eth0, ens4}, "02:00:00:00:00:04", "ens4"},
		{"MAC not there", []netlink.Link{lo, eth0}, "02:00:00:00:00:99", ""},
		{"only loopback", []netlink.Link{lo, sit}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mac net.HardwareAddr
			if tt.mac != "" {
				mac = mustMAC(tt.mac)
			}
			got := ""
			if l := pickLink(tt.links, mac); l != nil {
				got = l.Attrs().Name
			}
			if got != tt.want {
				t.Errorf("pickLink = %q, want %q", got, tt.want)
			}
		})
	}
}

// newNamespace creates a fresh, anonymous network namespace and returns a
// netlink handle bound to it. The test's own namespace is never changed:
// the thread that creates the namespace switches back before it is
// released. Both are closed when the test ends, which destroys the
// namespace and everything in it.
func newNamespace(t *testing.T) *netlink.Handle {
	t.Helper()
	ns, _ := netnstest.New(t, "", "creating a network namespace")
	return netnstest.Handle(t, ns)
}

// addVeth creates a veth pair (this kernel may lack the dummy driver) in
// the namespace of h.
func addVeth(t *testing.T, h *netlink.Handle, name, peer, mac string) {
	t.Helper()
	a := netlink.NewLinkAttrs()
	a.Name = name
	a.HardwareAddr = mustMAC(mac)
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: a, PeerName: peer}); err != nil {
		t.Fatalf("creating veth %s: %v", name, err)
	}
}

// TestApplyInNamespace runs the real netlink configuration against veth
// links in a namespace made for each case, and checks address, link state
// and route; it runs Apply twice to prove re-running is harmless.
func TestApplyInNamespace(t *testing.T) {
	tests := []struct {
		name      string
		cmdline   string
		wantLink  string
		wantAddr  string
		wantGW    string
		wantFlags int
	}{
		{
			name:     "eth0 by default",
			cmdline:  "banger.ip=172.30.0.5/24 banger.gw=172.30.0.1",
			wantLink: "eth0", wantAddr: "172.30.0.5/24", wantGW: "172.30.0.1",
		},
		{
			name:     "by MAC",
			cmdline:  "banger.ip=10.9.0.2/16 banger.gw=10.9.0.1 banger.mac=02:00:0a:09:00:02",
			wantLink: "guest1", wantAddr: "10.9.0.2/16", wantGW: "10.9.0.1",
		},
		{
			name:     "gateway outside the subnet is on-link",
			cmdline:  "banger.ip=10.9.0.2/32 banger.gw=10.9.0.1",
			wantLink: "eth0", wantAddr: "10.9.0.2/32", wantGW: "10.9.0.1", wantFlags: int(netlink.FLAG_ONLINK),
		},
		{
			name:     "address without gateway",
			cmdline:  "banger.ip=192.168.77.9/24",
			wantLink: "eth0", wantAddr: "192.168.77.9/24",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newNamespace(t)
			addVeth(t, h, "eth0", "peer0", "02:00:0a:09:00:01")
			addVeth(t, h, "guest1", "peer1", "02:00:0a:09:00:02")
			cfg, err := ParseCmdline(tt.cmdline)
			if err != nil {
				t.Fatal(err)
			}
			etc := t.TempDir()
			sys := System{Netlink: h, EtcDir: etc}
			for run := range 2 {
				if err := Apply(context.Background(), cfg, sys); err != nil {
					t.Fatalf("Apply (run %d): %v", run+1, err)
				}
			}

			link, err := h.LinkByName(tt.wantLink)
			if err != nil {
				t.Fatal(err)
			}
			if link.Attrs().Flags&net.FlagUp == 0 {
				t.Errorf("%s is not up", tt.wantLink)
			}
			addrs, err := h.AddrList(link, unix.AF_INET)
			if err != nil {
				t.Fatal(err)
			}
			var gotAddrs []string
			for _, a := range addrs {
				gotAddrs = append(gotAddrs, a.IPNet.String())
			}
			if diff := cmp.Diff([]string{tt.wantAddr}, gotAddrs); diff != "" {
				t.Errorf("addresses on %s (-want +got):\n%s", tt.wantLink, diff)
			}
			routes, err := h.RouteList(nil, unix.AF_INET)
			if err != nil {
				t.Fatal(err)
			}
			type route struct {
				Link  string
				GW    string
				Flags int
			}
			var defaults []route
			for _, r := range routes {
				if r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask) {
					l, _ := h.LinkByIndex(r.LinkIndex)
					defaults = append(defaults, route{l.Attrs().Name, r.Gw.String(), r.Flags & int(netlink.FLAG_ONLINK)})
				}
			}
			var want []route
			if tt.wantGW != "" {
				want = []route{{tt.wantLink, tt.wantGW, tt.wantFlags}}
			}
			if diff := cmp.Diff(want, defaults); diff != "" {
				t.Errorf("default routes (-want +got):\n%s", diff)
			}
		})
	}
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// TestApplyFiles checks resolv.conf, hostname and hosts (no namespace
// needed: no address is asked for).
func TestApplyFiles(t *testing.T) {
	etc := t.TempDir()
	// A resolv.conf that points into /run, as with systemd-resolved.
	if err := os.Symlink("/run/systemd/resolve/stub-resolv.conf", filepath.Join(etc, "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	var hostnames []string
	sys := System{EtcDir: etc, SetHostname: func(n string) error { hostnames = append(hostnames, n); return nil }}
	cfg, err := ParseCmdline("banger.dns=1.1.1.1,fd00::53 banger.hostname=quiet-otter")
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(context.Background(), cfg, sys); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(etc, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want := map[string]string{
		"resolv.conf": "# Written by banger-agent net-up from banger.dns= on the kernel command line.\nnameserver 1.1.1.1\nnameserver fd00::53\n",
		"hostname":    "quiet-otter\n",
		"hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tquiet-otter\n",
	}
	got := map[string]string{}
	for name := range want {
		got[name] = read(name)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"quiet-otter"}, hostnames); diff != "" {
		t.Errorf("hostnames set (-want +got):\n%s", diff)
	}
	if fi, err := os.Lstat(filepath.Join(etc, "resolv.conf")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("resolv.conf should now be a regular file: %v %v", fi, err)
	}
	left, _ := filepath.Glob(filepath.Join(etc, ".*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestApplyNoLink(t *testing.T) {
	h := newNamespace(t) // only lo
	cfg, _ := ParseCmdline("banger.ip=172.30.0.5/24")
	err := Apply(context.Background(), cfg, System{Netlink: h, EtcDir: t.TempDir(), LinkWait: 3 * linkPoll})
	want := "guestnet: no network link found (want eth0 or another Ethernet link; have lo); is virtio_net loaded and does the VM have a NIC?"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*linkPoll)
	defer cancel()
	err = Apply(ctx, cfg, System{Netlink: h, LinkWait: time.Hour})
	if err != context.DeadlineExceeded {
		t.Errorf("with a cancelled context: %v", err)
	}
}
