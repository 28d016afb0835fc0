package hostnet

import (
	"context"
	"flag"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func testConfig() Config {
	return Config{
		Bridge:   "banger0",
		Subnet:   netip.MustParsePrefix("172.30.0.0/24"),
		PoolSize: 3,
		TAPOwner: &Owner{UID: 4242, GID: 4343},
	}
}

// countingHost records how often Apply is called with work to do.
type countingHost struct {
	Host
	applied [][]Step
}

func (c *countingHost) Apply(ctx context.Context, steps []Step) error {
	c.applied = append(c.applied, steps)
	return c.Host.Apply(ctx, steps)
}

func TestSetupAndTeardownInNamespace(t *testing.T) {
	e, ns, nsName := newTestExecutor(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.DNS = []netip.Addr{netip.MustParseAddr("192.168.1.53")}
	cfg.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("192.168.7.0/24")}

	if err := Setup(ctx, cfg, e); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	st, err := e.Observe(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Want{{IdleTAPs: cfg.PoolSize}, {IdleTAPs: cfg.PoolSize, Trim: true}} {
		if steps := Plan(cfg, st, want); len(steps) != 0 {
			t.Errorf("Plan(%+v) after Setup = %v, want nothing", want, steps)
		}
	}
	rec := &countingHost{Host: e}
	if err := Setup(ctx, cfg, rec); err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	if len(rec.applied) != 0 {
		t.Errorf("second Setup applied %v, want nothing", rec.applied)
	}

	h := handleAt(t, ns)
	t.Run("bridge", func(t *testing.T) {
		br, err := h.LinkByName(cfg.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		if br.Type() != "bridge" || br.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("bridge: type %s flags %v, want an up bridge", br.Type(), br.Attrs().Flags)
		}
		if got, want := br.Attrs().HardwareAddr.String(), MAC(Gateway(cfg.Subnet)).String(); got != want {
			t.Errorf("bridge MAC = %s, want %s", got, want)
		}
		addrs, err := h.AddrList(br, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range addrs {
			got = append(got, a.IPNet.String())
		}
		if diff := cmp.Diff([]string{"172.30.0.1/24"}, got); diff != "" {
			t.Errorf("bridge addresses (-want +got):\n%s", diff)
		}
	})
	t.Run("taps", func(t *testing.T) {
		br, err := h.LinkByName(cfg.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		for i := range cfg.PoolSize {
			l, err := h.LinkByName(TAPName(i))
			if err != nil {
				t.Fatal(err)
			}
			tap, ok := l.(*netlink.Tuntap)
			if !ok || tap.Mode != netlink.TUNTAP_MODE_TAP {
				t.Fatalf("%s is a %T, want a TAP", TAPName(i), l)
			}
			if tap.NonPersist || tap.Owner != 4242 || tap.Group != 4343 {
				t.Errorf("%s: persistent=%v owner=%d:%d, want persistent, 4242:4343", tap.Name, !tap.NonPersist, tap.Owner, tap.Group)
			}
			if tap.MasterIndex != br.Attrs().Index || tap.Attrs().Flags&net.FlagUp == 0 {
				t.Errorf("%s: master %d flags %v, want attached to %s (%d) and up", tap.Name, tap.MasterIndex, tap.Attrs().Flags, cfg.Bridge, br.Attrs().Index)
			}
			pi, err := h.LinkGetProtinfo(l)
			if err != nil {
				t.Fatal(err)
			}
			if !pi.Isolated {
				t.Errorf("%s: bridge port not isolated", tap.Name)
			}
		}
		if _, err := h.LinkByName(TAPName(cfg.PoolSize)); err == nil {
			t.Errorf("%s exists, want exactly %d pool TAPs", TAPName(cfg.PoolSize), cfg.PoolSize)
		}
	})
	t.Run("forwarding", func(t *testing.T) {
		if !st.Forwarding {
			t.Error("net.ipv4.ip_forward is off in the namespace after Setup")
		}
	})
	t.Run("nftables", func(t *testing.T) {
		c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
		if err != nil {
			t.Fatal(err)
		}
		table, err := c.ListTableOfFamily("banger", nftables.TableFamilyINet)
		if err != nil {
			t.Fatalf("table inet banger: %v", err)
		}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			t.Fatal(err)
		}
		want := Ruleset(cfg)
		got := map[string]NFTChain{}
		for _, ch := range chains {
			if ch.Table.Name == "banger" {
				got[ch.Name] = chainFromKernel(ch)
			}
		}
		for _, wc := range want.Chains {
			if diff := cmp.Diff(wc, got[wc.Name]); diff != "" {
				t.Errorf("chain %s (-want +got):\n%s", wc.Name, diff)
			}
			rules, err := c.GetRules(table, &nftables.Chain{Name: wc.Name, Table: table})
			if err != nil {
				t.Fatal(err)
			}
			wr := chainRules(want.Rules, wc.Name)
			if len(rules) != len(wr) {
				t.Fatalf("chain %s has %d rules, want %d", wc.Name, len(rules), len(wr))
			}
			for i, r := range rules {
				g := ruleFromKernel(wc.Name, r)
				if g.Comment != wr[i].Comment {
					t.Errorf("chain %s rule %d comment = %q, want %q", wc.Name, i, g.Comment, wr[i].Comment)
				}
				if diff := cmp.Diff(wr[i].Exprs, g.Exprs); diff != "" {
					t.Errorf("chain %s rule %s expressions (-want +got):\n%s", wc.Name, wr[i].Comment, diff)
				}
			}
		}
		if len(got) != len(want.Chains) {
			t.Errorf("table has chains %v, want %d", got, len(want.Chains))
		}
		checkNftListing(t, nsName)
	})

	if err := Teardown(ctx, cfg, e); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	st, err = e.Observe(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(State{Forwarding: true}, st, cmpOpts...); diff != "" {
		t.Errorf("State after Teardown (-want +got):\n%s", diff)
	}
	if steps := Plan(cfg, st, Want{Teardown: true}); len(steps) != 0 {
		t.Errorf("Plan(teardown) after Teardown = %v, want nothing", steps)
	}
}

// checkNftListing compares `nft list table inet banger` and `nft list
// table bridge banger`, run inside the namespace, with testdata/ruleset.nft
// (-update rewrites it). It is skipped where the nft binary is missing:
// banger itself never runs it.
func checkNftListing(t *testing.T, nsName string) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Log("nft not installed; not comparing its listing")
		return
	}
	var out []byte
	for _, family := range []string{"inet", "bridge"} {
		b, err := exec.Command("ip", "netns", "exec", nsName, "nft", "list", "table", family, "banger").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list table %s banger: %v\n%s", family, err, b)
		}
		out = append(out, b...)
	}
	golden := filepath.Join("testdata", "ruleset.nft")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(out)); diff != "" {
		t.Errorf("nft list table inet|bridge banger differs from %s (-want +got; -update rewrites it):\n%s", golden, diff)
	}
}

func TestPoolInNamespace(t *testing.T) {
	e, ns, _ := newTestExecutor(t)
	ctx := context.Background()
	cfg := testConfig() // pool size 3
	h := handleAt(t, ns)
	if err := Setup(ctx, cfg, e); err != nil {
		t.Fatal(err)
	}
	p := NewPool(cfg, e, nil)
	idle := func(leased ...string) []string {
		t.Helper()
		st, err := e.Observe(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return IdleTAPs(cfg, st, leased)
	}

	a, err := p.Acquire(ctx, nil, netip.MustParseAddr("172.30.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := idle(a); len(got) != 2 {
		t.Errorf("idle after Acquire = %v, want 2", got)
	}
	if err := p.Ensure(ctx, []string{a}); err != nil {
		t.Fatal(err)
	}
	if got := idle(a); len(got) != 3 {
		t.Errorf("idle after Ensure = %v, want 3", got)
	}

	// The pool is full (3 idle), so the released TAP goes.
	if err := p.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got := idle(); len(got) != 3 || slices.Contains(got, a) {
		t.Errorf("idle after Release = %v, want 3 without %s", got, a)
	}
	bound := func(name string) bool {
		t.Helper()
		st, err := e.Observe(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return isBound(cfg, st, name)
	}
	if bound(a) {
		t.Errorf("%s is deleted but still bound", a)
	}
	for _, name := range idle() {
		if !bound(name) {
			t.Errorf("idle %s is not bound to its address", name)
		}
	}

	// Below size, a released TAP stays as capacity, minus what the VM left.
	b, err := p.Acquire(ctx, nil, netip.MustParseAddr("172.30.0.3"))
	if err != nil {
		t.Fatal(err)
	}
	hv := openTAP(t, ns, b) // the VM's hypervisor
	st, err := e.Observe(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(st.TAPs, func(s TAPState) bool { return s.Name == b }); i < 0 || !st.TAPs[i].InUse {
		t.Errorf("Observe does not see %s in use while a process has it open: %+v", b, st.TAPs)
	}
	tap, err := h.LinkByName(b)
	if err != nil {
		t.Fatal(err)
	}
	vmMAC := MAC(netip.MustParseAddr("172.30.0.9"))
	if err := h.NeighAdd(&netlink.Neigh{LinkIndex: tap.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_MASTER,
		State: unix.NUD_REACHABLE, HardwareAddr: vmMAC}); err != nil {
		t.Fatalf("adding an address the bridge learned from the VM: %v", err)
	}
	if err := p.Release(ctx, b); err == nil || !strings.Contains(err.Error(), "still has it open") {
		t.Errorf("Release while the hypervisor holds %s = %v, want a refusal", b, err)
	}
	hv.Close()
	if fdb, err := h.NeighList(tap.Attrs().Index, unix.AF_BRIDGE); err != nil || !slices.ContainsFunc(fdb, func(n netlink.Neigh) bool { return n.HardwareAddr.String() == vmMAC.String() }) {
		t.Fatalf("the learned address should still be there before Release: %v, %v", fdb, err)
	}
	if err := p.Release(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := idle(); len(got) != 3 || !slices.Contains(got, b) {
		t.Errorf("idle after Release = %v, want 3 with %s", got, b)
	}
	fdb, err := h.NeighList(tap.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range fdb {
		if n.LinkIndex == tap.Attrs().Index && n.State&unix.NUD_PERMANENT == 0 {
			t.Errorf("%s still has learned address %s after Release", b, n.HardwareAddr)
		}
	}

	// A TAP that vanished under a VM (a runtime that lost its handles).
	c, err := p.Acquire(ctx, nil, netip.MustParseAddr("172.30.0.4"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, []Step{DeleteLink{Name: c}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(ctx, c); err != nil {
		t.Errorf("Release of a vanished TAP: %v", err)
	}
	if err := p.Ensure(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := idle(); len(got) != 3 {
		t.Errorf("idle after Ensure = %v, want 3", got)
	}
	if st, err = e.Observe(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if leaks := Leaks(cfg, st, nil); len(leaks) != 0 {
		t.Errorf("Leaks = %v, want none", leaks)
	}
}

// openTAP opens pool TAP name inside ns the way a hypervisor does, which
// turns its carrier on.
func openTAP(t *testing.T, ns netns.NsHandle, name string) *os.File {
	t.Helper()
	var f *os.File
	err := inNamespace(t, ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return err
		}
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	if err != nil {
		t.Fatalf("opening %s like a hypervisor: %v", name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestSetupRefusesASquatterOnTheBridgeName(t *testing.T) {
	e, ns, _ := newTestExecutor(t)
	h := handleAt(t, ns)
	cfg := testConfig()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: cfg.Bridge}, PeerName: "squatter"}); err != nil {
		t.Fatal(err)
	}
	err := Setup(context.Background(), cfg, e)
	want := "setting up host networking: creating bridge banger0: banger0 exists and is a veth, not a bridge: set another network.bridge in config, or delete the link (ip link del banger0)"
	if err == nil || err.Error() != want {
		t.Fatalf("Setup = %v\nwant %s", err, want)
	}
	if _, err := h.LinkByName(cfg.Bridge); err != nil {
		t.Errorf("the squatter is gone: %v", err)
	}
}

// Setup repairs what was broken behind its back, and Leaks sees it first.
func TestSetupRepairsInNamespace(t *testing.T) {
	e, ns, _ := newTestExecutor(t)
	ctx := context.Background()
	cfg := testConfig()
	h := handleAt(t, ns)
	if err := Setup(ctx, cfg, e); err != nil {
		t.Fatal(err)
	}
	tap, err := h.LinkByName("tap-pool-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetNoMaster(tap); err != nil {
		t.Fatal(err)
	}
	st, err := e.Observe(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if leaks := Leaks(cfg, st, nil); len(leaks) != 1 || leaks[0].Name != "tap-pool-1" {
		t.Errorf("Leaks = %v, want tap-pool-1 detached", leaks)
	}
	steps := Plan(cfg, st, Want{IdleTAPs: cfg.PoolSize})
	want := []Step{AttachToBridge{Name: "tap-pool-1", Bridge: "banger0"}, SetIsolated{Name: "tap-pool-1"}}
	if diff := cmp.Diff(want, steps, cmpOpts...); diff != "" {
		t.Errorf("Plan (-want +got):\n%s", diff)
	}
	if err := Setup(ctx, cfg, e); err != nil {
		t.Fatal(err)
	}
	if st, err = e.Observe(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if leaks := Leaks(cfg, st, nil); len(leaks) != 0 {
		t.Errorf("Leaks after Setup = %v, want none", leaks)
	}
}
