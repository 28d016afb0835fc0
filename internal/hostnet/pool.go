package hostnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
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
// a VM create only has to hand one over.
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
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return converge(ctx, p.cfg, p.host, Want{IdleTAPs: p.cfg.PoolSize, Leased: p.busy(leased), Trim: true}, "refilling the TAP pool")
}

// Acquire returns an idle pool TAP, ready for a hypervisor, and counts it
// as held until Release. With none idle it creates one; when this process
// may not, the error satisfies errors.Is(err, ErrPoolExhausted) and says
// how to grow the pool.
func (p *Pool) Acquire(ctx context.Context, leased []string) (string, error) {
	if err := p.cfg.Validate(); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	busy := p.busy(leased)
	st, err := p.host.Observe(ctx, p.cfg)
	if err != nil {
		return "", fmt.Errorf("acquiring a TAP: %w", err)
	}
	if idle := idleTAPs(p.cfg, st, busy); len(idle) > 0 {
		t := idle[0]
		if steps := repairSteps(p.cfg, t); len(steps) > 0 {
			if err := p.host.Apply(ctx, steps); err != nil {
				return "", fmt.Errorf("preparing %s: %w", t.Name, err)
			}
		}
		p.held[t.Name] = true
		return t.Name, nil
	}
	name := TAPName(freeTAPNumber(st))
	if err := p.host.Apply(ctx, newTAPSteps(p.cfg, name, p.cfg.owner())); err != nil {
		if se, ok := errors.AsType[*StepError](err); ok && errors.Is(err, os.ErrPermission) {
			if _, creating := se.Step.(CreateTAP); creating {
				return "", fmt.Errorf("%w: every pool TAP is in use (%d) and this bangerd may not create %s (%w): run `sudo banger host setup --taps %d` to add idle TAPs to the pool, or delete a VM",
					ErrPoolExhausted, countPoolTAPs(st), name, se.Err, max(p.cfg.PoolSize, 1))
			}
		}
		return "", fmt.Errorf("acquiring a TAP: %w", err)
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

// freeTAPNumber is the lowest n whose tap-pool-<n> name is free.
func freeTAPNumber(st State) int {
	taken := make(map[int]bool, len(st.TAPs))
	for _, t := range st.TAPs {
		taken[t.N] = true
	}
	n := 0
	for taken[n] {
		n++
	}
	return n
}

func countPoolTAPs(st State) int {
	n := 0
	for _, t := range st.TAPs {
		if t.isPoolTAP() {
			n++
		}
	}
	return n
}
