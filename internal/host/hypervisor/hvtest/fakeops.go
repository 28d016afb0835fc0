package hvtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"slices"

	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// FakeHostKey is the SSH host key every Fake guest reports until an
// identity call gives it new ones.
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

// HostKeys returns the guest's host keys: FakeHostKey, or those of the
// last identity call with HostKeys.
func (a *fakeAgent) HostKeys(context.Context) ([]string, error) {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	return slices.Clone(a.vm.mem.HostKeys), nil
}

// PowerOff accepts the request; Shutdown decides what the guest does.
func (a *fakeAgent) PowerOff(context.Context) error { return nil }

// MemInfo reports the VM's memory as its total, a quarter of it in use.
func (a *fakeAgent) MemInfo(context.Context) (agentproto.MemInfo, error) {
	total := int64(a.memoryMiB) << 20
	return agentproto.MemInfo{TotalBytes: total, AvailableBytes: total - total/4}, nil
}

// fakeGuest is what a Fake guest serves: agentmux.Basic's health and
// guest operations, the identity call (see identity), and a session list
// that is always empty, so that a front end's views of a fake VM show no
// sessions rather than an error. Starting, attaching to or signalling a
// session, exec and file transfer are refused (unknown_type): a Fake
// guest runs nothing; file transfer goes to the Fake's Transfers when it
// has one.
type fakeGuest struct {
	agentmux.Handler
	agent *fakeAgent
}

var _ agentmux.Caller = fakeGuest{}

// Transfers serves a Fake guest's puts and gets (Fake.Transfers).
type Transfers interface {
	Put(ctx context.Context, req agentmux.Transfer, r io.Reader) (any, error)
	Get(ctx context.Context, req agentmux.Transfer, w io.Writer) error
}

// transfers is the Fake's Transfers, nil when it has none.
func (g fakeGuest) transfers() Transfers {
	g.agent.f.mu.Lock()
	defer g.agent.f.mu.Unlock()
	return g.agent.f.Transfers
}

// Put is the Fake's Transfers' put, else refused.
func (g fakeGuest) Put(ctx context.Context, req agentmux.Transfer, r io.Reader) (any, error) {
	if t := g.transfers(); t != nil {
		return t.Put(ctx, req, r)
	}
	return g.Handler.Put(ctx, req, r)
}

// Get is the Fake's Transfers' get, else refused.
func (g fakeGuest) Get(ctx context.Context, req agentmux.Transfer, w io.Writer) error {
	if t := g.transfers(); t != nil {
		return t.Get(ctx, req, w)
	}
	return g.Handler.Get(ctx, req, w)
}

func (g fakeGuest) Call(ctx context.Context, method string, params json.RawMessage) (any, error) {
	switch method {
	case agentproto.MethodSessionList:
		return []agentproto.SessionInfo{}, nil
	case agentproto.MethodIdentity:
		return g.agent.identity(params)
	}
	return g.Handler.(agentmux.Caller).Call(ctx, method, params)
}

// identity checks an identity call's fields lightly (what a real agent
// would refuse before applying anything: a missing time, a seed or key
// of the wrong size, a malformed machine ID, boot ID, hostname, address
// or MAC) and applies it to the guest's memory: it is recorded
// (FakeMemory.Identities); Hostname, MachineID and BootID replace the
// guest's; HostKeys replaces its host keys with a new random one; Key
// becomes the key of the channels opened after the call (this one keeps
// its key). The answer lists the host keys. The Fake's IdentityErr fails
// it, applying nothing.
func (a *fakeAgent) identity(params json.RawMessage) (any, error) {
	var id agentproto.Identity
	if err := json.Unmarshal(params, &id); err != nil {
		return nil, badIdentity("the params are not an identity: %v", err)
	}
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	var hostKey string
	if id.HostKeys {
		k, err := newHostKey()
		if err != nil {
			return nil, fmt.Errorf("identity: generating a host key: %w", err)
		}
		hostKey = k
	}
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	if a.f.IdentityErr != nil {
		return nil, a.f.IdentityErr
	}
	m := &a.vm.mem
	m.Identities = append(m.Identities, id)
	if id.MachineID != "" {
		m.MachineID = id.MachineID
	}
	if id.BootID != "" {
		m.BootID = id.BootID
	}
	if id.Hostname != "" {
		m.Hostname = id.Hostname
	}
	if id.HostKeys {
		m.HostKeys = []string{hostKey}
	}
	if len(id.Key) > 0 {
		m.Key = bytes.Clone(id.Key)
	}
	return agentproto.IdentityResult{HostKeys: slices.Clone(m.HostKeys)}, nil
}

var (
	machineIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	bootIDRe    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	hostnameRe  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$`)
)

// checkIdentity refuses an identity a real agent could not apply.
func checkIdentity(id agentproto.Identity) error {
	if id.TimeUnixNano <= 0 {
		return badIdentity("no time_unix_nano: send the host's clock")
	}
	if n := len(id.Seed); n != 0 && (n < agentproto.IdentitySeedMin || n > agentproto.IdentitySeedMax) {
		return badIdentity("a seed of %d bytes: send %d to %d", n, agentproto.IdentitySeedMin, agentproto.IdentitySeedMax)
	}
	if id.MachineID != "" && !machineIDRe.MatchString(id.MachineID) {
		return badIdentity("machine ID %q: want 32 lowercase hex digits", id.MachineID)
	}
	if id.BootID != "" && !bootIDRe.MatchString(id.BootID) {
		return badIdentity("boot ID %q: want a lowercase UUID", id.BootID)
	}
	if id.Hostname != "" && !hostnameRe.MatchString(id.Hostname) {
		return badIdentity("hostname %q: want letters, digits, dots and dashes, at most 63", id.Hostname)
	}
	if n := id.Net; n != nil {
		if _, err := netip.ParsePrefix(n.Address); err != nil {
			return badIdentity("address %q: %v", n.Address, err)
		}
		if _, err := netip.ParseAddr(n.Gateway); err != nil {
			return badIdentity("gateway %q: %v", n.Gateway, err)
		}
		if _, err := net.ParseMAC(n.MAC); err != nil {
			return badIdentity("MAC %q: %v", n.MAC, err)
		}
	}
	if n := len(id.Key); n != 0 && n != agentmux.KeySize {
		return badIdentity("a key of %d bytes: send %d", n, agentmux.KeySize)
	}
	return nil
}

func badIdentity(format string, args ...any) error {
	return &agentmux.Error{Code: agentmux.CodeBadRequest, Message: "identity: " + fmt.Sprintf(format, args...)}
}

// dial serves a Fake guest's dial streams through the Fake's Dial, else
// refuses them as an agent that predates them does.
func (a *fakeAgent) dial(ctx context.Context, port int) (net.Conn, error) {
	a.f.mu.Lock()
	dial, name := a.f.Dial, a.vm.spec.Name
	a.f.mu.Unlock()
	if dial == nil {
		return nil, &agentmux.Error{Code: agentmux.CodeUnknownType, Message: `unknown request type "dial": this fake agent serves none`}
	}
	return dial(ctx, name, port)
}
