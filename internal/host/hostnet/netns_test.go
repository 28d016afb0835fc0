package hostnet

import (
	"os"
	"testing"

	"github.com/bangerdev/banger/internal/shared/netnstest"
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

// newNamespace creates a namespace of the test's own (netnstest.New).
func newNamespace(t *testing.T, suffix string) (netns.NsHandle, string) {
	t.Helper()
	return netnstest.New(t, suffix, "creating network namespaces, bridges, TAPs and nftables tables")
}

// inNamespace runs fn on a thread inside ns; sockets fn creates stay in ns.
func inNamespace(t *testing.T, ns netns.NsHandle, fn func() error) error {
	t.Helper()
	return netnstest.Run(ns, fn)
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
