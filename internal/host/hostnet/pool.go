package hostnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
)

// ErrPoolExhausted is returned (wrapped) by Pool.Acquire when no pool TAP
// is idle and this process may not create one (not root, no CAP_NET_ADMIN).
var ErrPoolExhausted = errors.New("TAP pool exhausted")

// ErrTAPBusy is returned (wrapped) by Pool.Release while a process (a
// hypervisor that is still exiting) holds the TAP open.
var ErrTAPBusy = errors.New("tap still open")

// Pool hands pool TAPs to VMs. A pool TAP is leased (a VM holds it) or
// idle capacity; idle TAPs are attached to the bridge, isolated and up, so
// a VM create only has to hand one over. Which TAP a VM gets follows from
// its address (TAPFor), since the anti-spoofing table binds each TAP to
// one address; leases are handed out lowest first (NextFree), and so are
// the idle TAPs Ensure keeps, so the next VM's TAP is normally warm.
//
// Acquire does not refill the pool: the daemon calls Ensure when it suits
// it (after a create, off its critical path, and on start), so refills
// run in one place, under the caller's logging and context, and no
// goroutine outlives a call.
//
// Callers pass the TAPs their store has leased; the Pool adds the ones it
// handed out and that were not released yet, so two Acquires never return
// the same TAP even before the caller has recorded the first lease.
type Pool struct {
	cfg  Config
	host Host
	log  *slog.Logger

	mu   sync.Mutex
	held map[string]bool // handed out by Acquire, not yet released
}

// NewPool returns a Pool for cfg acting through host. A nil log discards.
func NewPool(cfg Config, host Host, log *slog.Logger) *Pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pool{cfg: cfg, host: host, log: log, held: map[string]bool{}}
}

// SetConfig replaces the Pool's config, e.g. after the host's resolvers
// (Config.DNS) changed; what the Pool handed out stays held.
func (p *Pool) SetConfig(cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg = cfg
}

// busy returns leased plus what this Pool handed out.
func (p *Pool) busy(leased []string) []string {
	out := append([]string(nil), leased...)
	for name := range p.held {
		out = append(out, name)
	}
	return out
}

// Ensure makes the host match the config with exactly PoolSize idle TAPs:
// it creates missing ones, repairs broken ones and deletes extras. leased
// must name every TAP a VM holds.
func (p *Pool) Ensure(ctx context.Context, leased []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	return converge(ctx, p.cfg, p.host, Want{IdleTAPs: p.cfg.PoolSize, Leased: p.busy(leased), Trim: true}, "refilling the TAP pool")
}

// Acquire returns the pool TAP for guest address ip (TAPFor: the only
// TAP the anti-spoofing table lets send from ip), ready for a hypervisor,
// and counts it as held until Release. When it does not exist yet Acquire
// creates it; when this process may not, the error satisfies
// errors.Is(err, ErrPoolExhausted) and says how to grow the pool.
func (p *Pool) Acquire(ctx context.Context, leased []string, ip netip.Addr) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cfg.Validate(); err != nil {
		return "", err
	}
	name, ok := TAPFor(p.cfg.Subnet, ip)
	if !ok {
		return "", fmt.Errorf("acquiring a TAP: %v is not a guest address of %v (network.subnet changed since the VM was made?): delete the VM and create it again", ip, p.cfg.Subnet)
	}
	if slices.Contains(p.busy(leased), name) {
		return "", fmt.Errorf("acquiring %s for %v: another VM holds it, so two VMs share address %v: delete one of them", name, ip, ip)
	}
	st, err := p.host.Observe(ctx, p.cfg)
	if err != nil {
		return "", fmt.Errorf("acquiring %s: %w", name, err)
	}
	var steps []Step
	switch i := slices.IndexFunc(st.TAPs, func(t TAPState) bool { return t.Name == name }); {
	case i < 0:
		steps = newTAPSteps(p.cfg, name, p.cfg.owner())
	case !st.TAPs[i].isPoolTAP():
		return "", fmt.Errorf("acquiring %s: it exists and is a %s, not a TAP: delete it (ip link del %s); banger's pool owns the tap-pool-* names", name, st.TAPs[i].Kind, name)
	case st.TAPs[i].InUse:
		return "", fmt.Errorf("acquiring %s for %v: a process still has it open (%w): stop whatever holds it (an earlier run of this VM's hypervisor?)", name, ip, ErrTAPBusy)
	case st.TAPs[i].Owner != p.cfg.owner():
		steps = append([]Step{DeleteLink{Name: name}}, newTAPSteps(p.cfg, name, p.cfg.owner())...)
	default:
		steps = repairSteps(p.cfg, st.TAPs[i])
	}
	if b, ok := BindingFor(p.cfg.Subnet, name); ok && !st.TableUnknown && !isBound(p.cfg, st, name) {
		steps = append([]Step{Bind{Table: p.cfg.table(), Bindings: []Binding{b}}}, steps...)
	}
	if len(steps) > 0 {
		if err := p.host.Apply(ctx, steps); err != nil {
			if se, ok := errors.AsType[*StepError](err); ok && errors.Is(err, os.ErrPermission) {
				switch se.Step.(type) {
				case CreateTAP, DeleteLink:
					n, _ := parseTAPName(name)
					return "", fmt.Errorf("%w: %s, the TAP that carries %v, is missing or not usable and this bangerd may not create it (%w): run `sudo banger host setup --taps %d` so that the pool reaches it",
						ErrPoolExhausted, name, ip, se.Err, n+1)
				}
			}
			return "", fmt.Errorf("acquiring %s: %w", name, err)
		}
	}
	p.held[name] = true
	return name, nil
}

// Release returns TAP name to the pool once its VM is gone: it forgets what
// the bridge learned from the VM and keeps the TAP attached and up as idle
// capacity, or deletes it when the pool already has PoolSize idle TAPs.
// A TAP that no longer exists (a runtime that lost its network handles) or
// an empty name is not an error: there is nothing to release, and Ensure
// refills. Without CAP_NET_ADMIN the TAP is kept as it is: the bridge
// forgets the learned addresses by itself within its ageing time.
func (p *Pool) Release(ctx context.Context, name string) error {
	if name == "" {
		return nil
	}
	if _, ok := parseTAPName(name); !ok {
		return fmt.Errorf("releasing %q: not a pool TAP (want tap-pool-<n>)", name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := p.host.Observe(ctx, p.cfg)
	if err != nil {
		return fmt.Errorf("releasing %s: %w", name, err)
	}
	var t TAPState
	found := false
	for _, s := range st.TAPs {
		if s.Name == name && s.isPoolTAP() {
			t, found = s, true
		}
	}
	if !found {
		delete(p.held, name)
		p.log.Info("released TAP is already gone", "tap", name)
		return nil
	}
	if t.InUse {
		return fmt.Errorf("releasing %s: a process still has it open (%w): stop the VM's hypervisor first", name, ErrTAPBusy)
	}
	delete(p.held, name)
	var steps []Step
	if others := idleTAPs(p.cfg, st, p.busy([]string{name})); len(others) >= p.cfg.PoolSize {
		steps = []Step{DeleteLink{Name: name}}
		if b, ok := BindingFor(p.cfg.Subnet, name); ok && isBound(p.cfg, st, name) {
			steps = append(steps, Unbind{Table: p.cfg.table(), Bindings: []Binding{b}})
		}
	} else {
		steps = append([]Step{FlushPort{Name: name}}, repairSteps(p.cfg, t)...)
	}
	if err := p.host.Apply(ctx, steps); err != nil {
		if errors.Is(err, os.ErrPermission) {
			p.log.Warn("released TAP kept as it is", "tap", name, "err", err)
			return nil
		}
		return fmt.Errorf("releasing %s: %w", name, err)
	}
	return nil
}

// IdleTAPs names the idle pool TAPs in st, lowest number first: TAP
// devices owned by the configured owner that are neither leased nor held
// open by a process.
func IdleTAPs(cfg Config, st State, leased []string) []string {
	var out []string
	for _, t := range idleTAPs(cfg, st, leased) {
		out = append(out, t.Name)
	}
	return out
}

func idleTAPs(cfg Config, st State, leased []string) []TAPState {
	busy := make(map[string]bool, len(leased))
	for _, n := range leased {
		busy[n] = true
	}
	owner := cfg.owner()
	var out []TAPState
	for _, t := range st.TAPs {
		if t.isPoolTAP() && !busy[t.Name] && !t.InUse && t.Owner == owner {
			out = append(out, t)
		}
	}
	return out
}
