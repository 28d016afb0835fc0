package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/guest/identity"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// agentKey is the key the agent channels check at every upgrade: this
// boot's, until an identity call replaces it. A session keeps working
// with the key it was opened with.
type agentKey struct {
	mu  sync.Mutex
	key []byte
}

func (k *agentKey) get() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.key
}

func (k *agentKey) set(key []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.key = key
}

// guestIdentity is the identity call's applier for a real guest: the
// kernel's clock, RNG, mounts and network, changing keys.
func guestIdentity(keys *agentKey, log *slog.Logger) *identity.Applier {
	sys := identity.Kernel(log.With("part", "identity"))
	sys.SetKey = keys.set
	return &identity.Applier{
		Sys: sys,
		// Only rtnetlink, as net-up: guest kernels may lack the other
		// netlink families.
		OpenNetlink: func() (*netlink.Handle, error) { return netlink.NewHandle(unix.NETLINK_ROUTE) },
	}
}

// sandboxIdentity is the identity call's applier for NewGuest, the agent
// host tests talk to: it changes only files below root (its /etc, /run,
// and a plain file standing for /proc's boot_id) and keys; the clock, the
// kernel RNG, the host name and the network are left alone.
func sandboxIdentity(root string, keys *agentKey, log *slog.Logger) *identity.Applier {
	return &identity.Applier{Sys: identity.System{
		Root:     root,
		ProcDir:  filepath.Join(root, "proc"),
		Home:     filepath.Join(root, "home"),
		SetClock: func(time.Time) error { return nil },
		Entropy:  nopEntropy{},
		Mounter:  copyMounter{},
		NoLink:   true,
		SetKey:   keys.set,
		Log:      log.With("part", "identity"),
	}}
}

// nopEntropy stands for the kernel RNG in a test agent.
type nopEntropy struct{}

func (nopEntropy) AddEntropy([]byte) error { return nil }
func (nopEntropy) Reseed() error           { return nil }

// copyMounter stands for a bind mount in a test agent: it copies the
// source over the target, which is a plain file there.
type copyMounter struct{}

func (copyMounter) Unmount(string) (bool, error) { return false, nil }
func (copyMounter) Bind(source, target string) error {
	b, err := os.ReadFile(source)
	if err != nil {
		return err
	}
	return atomicfile.Write(target, b, 0o444, 0o755)
}

// callIdentity serves agentproto.MethodIdentity: a bad field is
// bad_request naming it, before anything changed; a field that fails to
// apply is internal, naming it.
func (h *muxHandler) callIdentity(ctx context.Context, params json.RawMessage) (any, error) {
	if h.identity == nil {
		return nil, &agentmux.Error{Code: agentmux.CodeUnknownType, Message: "this agent cannot change its identity"}
	}
	id, err := identity.Decode(params)
	var res agentproto.IdentityResult
	if err == nil {
		res, err = h.identity.Apply(ctx, id)
	}
	var invalid *identity.InvalidError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &invalid):
		return nil, &agentmux.Error{Code: agentmux.CodeBadRequest, Message: fmt.Sprintf("%v: nothing was changed; fix the identity call on the host", err)}
	}
	return nil, &agentmux.Error{Code: agentmux.CodeInternal, Message: fmt.Sprintf("%v; see `banger vm logs` (banger-agent)", err)}
}
