package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/shared/poll"
	"github.com/vishvananda/netns"
)

// network adapts hostnet's pool to what the VM lifecycle needs; the
// store's leases say which TAPs VMs hold.
type network struct {
	cfg  hostnet.Config
	host *hostnet.Executor
	pool *hostnet.Pool
	// afterSetup runs after each setup of the host network (egressNet's
	// Resync: a rewrite of banger's table empties the egress sets); set
	// and read under setupMu.
	afterSetup func()
	store      *store.Store
	log        *slog.Logger

	refill sync.Mutex

	setupMu sync.Mutex
	setUp   bool
}

var _ vm.Network = (*network)(nil)

// hostnetConfig is the host network cfg asks for: guests may reach the
// configured allowlist and the host's resolvers (which guests are given),
// and only this daemon's user (and root) may connect to guests.
func hostnetConfig(cfg *config.Config) hostnet.Config {
	return hostnet.Config{
		Bridge: cfg.Network.Bridge, Subnet: cfg.Network.Subnet, PoolSize: cfg.Network.TAPPoolSize, Table: hostnet.DefaultTable,
		AllowCIDRs: cfg.Network.AllowCIDRs, DNS: hostnet.Resolvers(hostnet.ResolvConf),
	}
}

// openNetwork connects to the networking of the daemon's namespace. It
// changes nothing: the host is set up when a VM first needs it (see
// ready), so a daemon that never runs a VM never touches the network.
func openNetwork(cfg *config.Config, st *store.Store, log *slog.Logger) (*network, error) {
	exec, err := hostnet.NewExecutor(netns.None(), log)
	if err != nil {
		return nil, err
	}
	n := &network{cfg: hostnetConfig(cfg), host: exec, store: st, log: log}
	n.pool = hostnet.NewPool(n.cfg, exec, log)
	// VMs that outlived the previous daemon hold TAPs: bring the host's
	// tables (isolation, anti-spoofing) up to date for them now rather
	// than at the next VM start.
	if leased, err := n.leased(context.Background()); err == nil && len(leased) > 0 {
		if err := n.ready(context.Background()); err != nil {
			log.Warn("setting up host networking for running VMs", "error", err)
		}
	}
	return n, nil
}

// ready sets the host up once per daemon run when the daemon is root
// (bridge, NAT and isolation tables, TAP pool), and again when the host's
// resolvers changed (guests are told the current ones at boot, and may
// reach exactly those); an unprivileged daemon uses what `sudo banger host
// setup` made.
func (n *network) ready(ctx context.Context) error {
	n.setupMu.Lock()
	defer n.setupMu.Unlock()
	if os.Geteuid() != 0 {
		return nil
	}
	if dns := hostnet.Resolvers(hostnet.ResolvConf); !slices.Equal(dns, n.cfg.DNS) {
		n.log.Info("host resolvers changed", "was", n.cfg.DNS, "now", dns)
		n.cfg.DNS = dns
		n.pool.SetConfig(n.cfg)
		n.setUp = false
	}
	if n.setUp {
		return nil
	}
	if err := hostnet.Setup(ctx, n.cfg, n.host); err != nil {
		return err
	}
	if n.afterSetup != nil {
		n.afterSetup()
	}
	if err := n.ensure(ctx); err != nil {
		return err
	}
	n.log.Info("host network ready", "bridge", n.cfg.Bridge, "subnet", n.cfg.Subnet, "pool", n.cfg.PoolSize)
	n.setUp = true
	return nil
}

// Tidy brings banger's host network back in line at daemon start when it
// exists already: a daemon killed between taking a pool TAP and recording
// it, or while refilling the pool, leaves the pool off its size, which
// nothing else would correct before the next VM. A host where banger's
// network does not exist yet is left alone (it is set up lazily, at the
// first VM).
func (n *network) Tidy(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return nil
	}
	st, err := n.host.Observe(ctx, n.Config())
	if err != nil {
		return err
	}
	if !st.Bridge.Exists && len(st.TAPs) == 0 {
		return nil
	}
	return n.ready(ctx)
}

func (n *network) Subnet() netip.Prefix { return n.cfg.Subnet }
func (n *network) Gateway() netip.Addr  { return hostnet.Gateway(n.cfg.Subnet) }
func (n *network) Close() error         { return n.host.Close() }

// DNS is the resolvers guests are given and may reach (port 53 only).
func (n *network) DNS() []netip.Addr { return n.Config().DNS }

func (n *network) Config() hostnet.Config {
	n.setupMu.Lock()
	defer n.setupMu.Unlock()
	return n.cfg
}

// leased returns the TAPs the store says VMs hold.
func (n *network) leased(ctx context.Context) ([]string, error) {
	leases, err := n.store.ListLeases(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range leases {
		if l.TAP != "" {
			out = append(out, l.TAP)
		}
	}
	return out, nil
}

func (n *network) ensure(ctx context.Context) error {
	n.refill.Lock()
	defer n.refill.Unlock()
	leased, err := n.leased(ctx)
	if err != nil {
		return err
	}
	return n.pool.Ensure(ctx, leased)
}

// AcquireTAP hands out the pool TAP of guest address ip and refills the
// pool off the caller's path.
func (n *network) AcquireTAP(ctx context.Context, ip netip.Addr) (string, error) {
	if err := n.ready(ctx); err != nil {
		return "", err
	}
	leased, err := n.leased(ctx)
	if err != nil {
		return "", err
	}
	tap, err := n.pool.Acquire(ctx, leased, ip)
	if err != nil {
		return "", err
	}
	if os.Geteuid() == 0 {
		go func() {
			if err := n.ensure(context.WithoutCancel(ctx)); err != nil {
				n.log.Warn("refilling the tap pool", "error", err)
			}
		}()
	}
	return tap, nil
}

// ReleaseTAP returns a TAP to the pool. A hypervisor that was just killed
// may hold the TAP for a moment while its threads exit, so a busy TAP is
// retried briefly.
func (n *network) ReleaseTAP(ctx context.Context, tap string) error {
	deadline := time.Now().Add(10 * time.Second)
	var err error
	// An ended context stops the retries; the answer is still the pool's.
	_ = poll.Until(ctx, 100*time.Millisecond, func() (bool, error) {
		err = n.pool.Release(ctx, tap)
		return !errors.Is(err, hostnet.ErrTAPBusy) || time.Now().After(deadline), nil
	})
	return err
}

// Leaks lists network resources no lease explains.
func (n *network) Leaks(ctx context.Context) ([]hostnet.Leak, hostnet.State, error) {
	cfg := n.Config()
	st, err := n.host.Observe(ctx, cfg)
	if err != nil {
		return nil, st, err
	}
	leases, err := n.store.ListLeases(ctx)
	if err != nil {
		return nil, st, err
	}
	var leased []string
	var misbound []hostnet.Leak
	for _, l := range leases {
		if l.TAP == "" {
			continue
		}
		leased = append(leased, l.TAP)
		if leak, ok := misboundLease(cfg, l); ok {
			misbound = append(misbound, leak)
		}
	}
	return append(hostnet.Leaks(cfg, st, leased), misbound...), st, nil
}

// misboundLease reports a VM holding a TAP that the anti-spoofing table
// binds to another address or MAC (a VM started by a banger that handed
// out any idle TAP): everything it sends is dropped until it restarts.
func misboundLease(cfg hostnet.Config, l store.Lease) (hostnet.Leak, bool) {
	ip, err := netip.ParseAddr(l.IP)
	want, ok := hostnet.TAPFor(cfg.Subnet, ip)
	if err == nil && ok && want == l.TAP && l.MAC == hostnet.MAC(ip).String() {
		return hostnet.Leak{}, false
	}
	return hostnet.Leak{Kind: "tap", Name: l.TAP,
		Reason: fmt.Sprintf("held by the VM at %s (MAC %s), but the anti-spoofing table binds %s to another address, so the host drops what that VM sends", l.IP, l.MAC, l.TAP),
		Fix:    "restart the VM (`banger vm restart <name>`): it was started by an older banger; a start gives it the TAP of its address"}, true
}
