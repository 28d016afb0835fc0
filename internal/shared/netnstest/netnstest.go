// Package netnstest gives tests network namespaces of their own, so that
// tests which change networking (bridges, TAPs, nftables, resolvers,
// traffic) never touch the machine's own namespace: New makes one named
// banger-test-<random> and deletes it when the test ends, and Run runs
// code inside one. Both sides' tests use it (host networking, egress,
// doctor's fixes, the guest's NIC bootstrap and identity).
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// New creates a fresh named network namespace banger-test-<random><suffix>,
// deletes it when the test ends, and fails the test if it turns out to be
// this process's own namespace or the machine's (init's). It skips the
// test, saying why, when not root (why names what needs root, e.g.
// "creating network namespaces and nftables tables") or when the host
// cannot make a namespace.
func New(t testing.TB, suffix, why string) (netns.NsHandle, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("%s needs root: run the tests as root (CI does)", why)
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
			// Leave the thread locked: the runtime discards it when this
			// goroutine returns, namespace and all.
			ch <- result{ns: ns, err: rerr}
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
	// Where this process may look at init's namespace, check that too.
	if host, err := netns.GetFromPid(1); err == nil {
		defer host.Close()
		if r.ns.Equal(host) {
			t.Fatalf("namespace %s is the machine's own namespace: refusing to touch it", name)
		}
	}
	return r.ns, name
}

// Handle is a netlink handle bound to ns, closed when the test ends. It
// fails the test unless ns holds nothing but lo: a fresh namespace, never
// one with the host's links.
func Handle(t testing.TB, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in the test namespace: %v", err)
	}
	t.Cleanup(h.Close)
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Fatalf("the test namespace is not fresh (%d links): refusing to configure it", len(links))
	}
	return h
}

// Run runs fn on a thread inside ns; sockets fn creates stay in ns. With
// netns.None() it runs fn in the test's own namespace (for loopback only).
func Run(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// The thread goes back before it is unlocked: a goroutine may run
		// on the main thread, which the runtime never ends, and a main
		// thread left in ns would put the whole process there.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err // still locked: the thread ends with the goroutine
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		err = fn()
		if rerr := netns.Set(orig); rerr != nil {
			errc <- rerr // left locked: the thread ends with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}
