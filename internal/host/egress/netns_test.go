package egress

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Tests that change networking do it only inside network namespaces they
// create (banger-test-<random>) and delete; they never touch the
// machine's own namespace, and send traffic only between namespaces they
// made.

// newNamespace creates a fresh named network namespace
// banger-test-<random><suffix>, deletes it when the test ends, and checks
// that it is neither this process's namespace nor the machine's own.
func newNamespace(t *testing.T, suffix string) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the egress enforcement test creates network namespaces, a bridge and nftables tables, which needs root: run `sudo go test ./internal/host/egress` (CI does)")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "banger-test-" + hex.EncodeToString(b) + suffix
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name) // also moves this thread into it
		if rerr := netns.Set(orig); rerr != nil {
			ch <- result{ns: ns, err: rerr} // the locked thread dies with us
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ns: ns, err: err}
	}()
	r := <-ch
	if r.ns.IsOpen() {
		t.Cleanup(func() {
			r.ns.Close()
			if err := netns.DeleteNamed(name); err != nil {
				t.Errorf("deleting network namespace %s: %v", name, err)
			}
		})
	}
	if r.err != nil {
		t.Skipf("cannot create a network namespace here: %v", r.err)
	}
	self, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if r.ns.Equal(self) {
		t.Fatalf("namespace %s is the test process's own namespace: refusing to touch it", name)
	}
	if host, err := netns.GetFromPid(1); err == nil {
		defer host.Close()
		if r.ns.Equal(host) {
			t.Fatalf("namespace %s is the machine's own namespace: refusing to touch it", name)
		}
	}
	return r.ns
}

// inNamespace runs fn on a thread inside ns; sockets fn creates stay in
// ns. With netns.None() it runs fn in the test's own namespace (for
// loopback only).
func inNamespace(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

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
