package hvtest

import (
	"context"
	"encoding/json"

	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// FakeHostKey is the SSH host key every Fake guest reports.
const FakeHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYWtl root@banger"

var (
	_ agentproto.GuestOps  = (*fakeAgent)(nil)
	_ agentproto.MemInfoer = (*fakeAgent)(nil)
)

// ProbeTCP reports every port open: a Fake guest serves whatever the image
// promises.
func (a *fakeAgent) ProbeTCP(_ context.Context, port int) agentproto.ProbeResult {
	return agentproto.ProbeResult{Port: port, Open: true}
}

// HostKeys returns FakeHostKey.
func (a *fakeAgent) HostKeys(context.Context) ([]string, error) { return []string{FakeHostKey}, nil }

// PowerOff accepts the request; Shutdown decides what the guest does.
func (a *fakeAgent) PowerOff(context.Context) error { return nil }

// MemInfo reports the VM's memory as its total, a quarter of it in use.
func (a *fakeAgent) MemInfo(context.Context) (agentproto.MemInfo, error) {
	total := int64(a.memoryMiB) << 20
	return agentproto.MemInfo{TotalBytes: total, AvailableBytes: total - total/4}, nil
}

// fakeGuest is what a Fake guest serves: agentmux.Basic's health and
// guest operations, and a session list that is always empty, so that a
// front end's views of a fake VM show no sessions rather than an error.
// Starting, attaching to or signalling a session, exec and file transfer
// are refused (unknown_type): a Fake guest runs nothing.
type fakeGuest struct{ agentmux.Handler }

var _ agentmux.Caller = fakeGuest{}

func (g fakeGuest) Call(ctx context.Context, method string, params json.RawMessage) (any, error) {
	if method == agentproto.MethodSessionList {
		return []agentproto.SessionInfo{}, nil
	}
	return g.Handler.(agentmux.Caller).Call(ctx, method, params)
}
