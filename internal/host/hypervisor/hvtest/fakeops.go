package hvtest

import (
	"context"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// FakeHostKey is the SSH host key every Fake guest reports.
const FakeHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYWtl root@banger"

var _ agentproto.GuestOps = (*fakeAgent)(nil)

// ProbeTCP reports every port open: a Fake guest serves whatever the image
// promises.
func (a *fakeAgent) ProbeTCP(_ context.Context, port int) agentproto.ProbeResult {
	return agentproto.ProbeResult{Port: port, Open: true}
}

// HostKeys returns FakeHostKey.
func (a *fakeAgent) HostKeys(context.Context) ([]string, error) { return []string{FakeHostKey}, nil }

// PowerOff accepts the request; Shutdown decides what the guest does.
func (a *fakeAgent) PowerOff(context.Context) error { return nil }
