package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/egress"
	"github.com/bangerdev/banger/internal/host/hostnet"
)

// systemdResolvConf lists the upstream servers of systemd-resolved, whose
// /etc/resolv.conf names only its loopback stub.
const systemdResolvConf = "/run/systemd/resolve/resolv.conf"

// egressNet puts VMs' egress policies in force (vm.Egress) through an
// egress.Enforcer, which it starts with the host network the first time
// a VM needs one: a daemon whose VMs all use NAT never opens the
// resolver.
type egressNet struct {
	n *network

	mu  sync.Mutex
	enf *egress.Enforcer
}

// enforcer returns the running Enforcer, setting the host network up and
// starting the resolver first if needed.
func (e *egressNet) enforcer() (*egress.Enforcer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.enf != nil {
		return e.enf, nil
	}
	ctx := context.Background()
	if err := e.n.ready(ctx); err != nil {
		return nil, err
	}
	cfg := e.n.Config()
	var upstream []netip.AddrPort
	servers := cfg.DNS
	if len(servers) == 0 {
		servers = hostnet.Resolvers(systemdResolvConf)
	}
	for _, a := range servers {
		upstream = append(upstream, netip.AddrPortFrom(a, 53))
	}
	enf, err := egress.New(egress.Config{
		Table: e.n.host, TableName: cfg.Table, Gateway: hostnet.Gateway(cfg.Subnet), Port: cfg.ResolverPort,
		Upstream: upstream, Logger: e.n.log,
	})
	if err != nil {
		return nil, err
	}
	if err := enf.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, fmt.Errorf("starting the egress resolver on %v: %w", hostnet.Gateway(cfg.Subnet), err)
	}
	e.enf = enf
	e.n.setupMu.Lock()
	e.n.afterSetup = func() {
		// A rewrite of banger's table empties the egress sets.
		if err := enf.Resync(); err != nil {
			e.n.log.Error("putting egress policies back after the host network was set up again", "error", err)
		}
	}
	e.n.setupMu.Unlock()
	return enf, nil
}

// running is the Enforcer if it was started, else nil.
func (e *egressNet) running() *egress.Enforcer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.enf
}

func (e *egressNet) Set(ip netip.Addr, p egress.Policy) error {
	if p.Mode == api.EgressNAT && e.running() == nil {
		return nil // nothing was ever restricted
	}
	enf, err := e.enforcer()
	if err != nil {
		return err
	}
	return enf.Set(ip, p)
}

func (e *egressNet) Remove(ip netip.Addr) error {
	if enf := e.running(); enf != nil {
		return enf.Remove(ip)
	}
	return nil
}

func (e *egressNet) Drops(ip netip.Addr) []api.EgressDrop {
	enf := e.running()
	if enf == nil {
		return nil
	}
	drops, err := enf.Drops(ip)
	if err != nil {
		e.n.log.Warn("reading a VM's egress refusals", "ip", ip, "error", err)
	}
	return drops
}

// Close stops the resolver; the policies' nftables state stays, so
// guests stay restricted until the next daemon puts them back.
func (e *egressNet) Close() error {
	if enf := e.running(); enf != nil {
		return enf.Close()
	}
	return nil
}
