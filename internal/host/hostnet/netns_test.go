package hostnet

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Tests that change networking do it only inside network namespaces they
// create (banger-test-<random>) and delete; they never touch the
// machine's own namespace, and send traffic only between namespaces they
// made.

// requireRoot skips tests that create network namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating network namespaces, bridges, TAPs and nftables tables needs root: run `sudo go test ./internal/host/hostnet` (CI does)")
	}
}

// newNamespace creates a fresh named network namespace
// banger-test-<random><suffix>, deletes it when the test ends, and checks
// that it is neither this process's namespace nor the machine's own.
func newNamespace(t *testing.T, suffix string) (netns.NsHandle, string) {
	t.Helper()
	requireRoot(t)
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

	// Safety: never operate on the test process's or the machine's own
	// namespace.
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

// inNamespace runs fn on a thread inside ns; sockets fn creates stay in ns.
func inNamespace(t *testing.T, ns netns.NsHandle, fn func() error) error {
	t.Helper()
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

// newTestExecutor returns an Executor acting on a fresh namespace.
func newTestExecutor(t *testing.T) (*Executor, netns.NsHandle, string) {
	t.Helper()
	ns, name := newNamespace(t, "")
	e, err := NewExecutor(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, ns, name
}
