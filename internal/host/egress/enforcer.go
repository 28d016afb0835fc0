package egress

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hostnet"
)

// Table is what the Enforcer needs of the host: write and read the
// egress sets of banger's inet table, and open sockets in the network
// namespace that table lives in. *hostnet.Executor is the real one.
type Table interface {
	Egress(hostnet.EgressChange) error
	EgressList(table, set string) ([]hostnet.EgressEntry, error)
	InNamespace(fn func() error) error
}

var _ Table = (*hostnet.Executor)(nil)

// Bounds of what the Enforcer keeps and accepts.
const (
	// MinTTL and MaxTTL clamp how long an answered address stays
	// reachable: at least long enough to connect after a short-TTL
	// answer, at most an hour whatever the record says (the resolver
	// also lowers longer TTLs in the answer it relays, so the guest's
	// cache does not outlive its access).
	MinTTL = 30 * time.Second
	MaxTTL = time.Hour
	// MaxDrops is how many refusals Drops returns per VM.
	MaxDrops = 100
	// maxNameDrops is how many refused names are kept per VM.
	maxNameDrops = 64
	// maxNames bounds a guest's answered (address, port) elements whose
	// TTL has not run out.
	maxNames = 4096
)

// Config is what New needs.
type Config struct {
	// Table writes the egress sets and opens the resolver's sockets
	// (*hostnet.Executor of the daemon's own namespace, or of a test's).
	Table Table
	// TableName is hostnet.Config.Table ("" for hostnet.DefaultTable).
	TableName string
	// Gateway is the bridge's address, where the resolver listens;
	// Port its port (hostnet.Config.ResolverPort: 53 for a root daemon).
	Gateway netip.Addr
	Port    uint16
	// Upstream are the resolvers allowed names are forwarded to (the
	// host's, hostnet.Resolvers), tried in order.
	Upstream []netip.AddrPort
	// Logger gets refusals at debug level and failures; nil discards.
	Logger *slog.Logger
	// MinTTL overrides MinTTL when not 0 (tests use a short one).
	MinTTL time.Duration
}

// Enforcer applies each VM's egress policy: it keeps restricted guests'
// addresses and allowed ranges in banger's nftables sets and runs the
// resolver through which their DNS goes.
type Enforcer struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	guests map[netip.Addr]*guest // restricted guests (none and allow)

	res *resolver
}

// guest is one restricted VM's state.
type guest struct {
	policy Policy
	// names are the answered addresses in egress-names(-any), with the
	// name that was answered and when the element expires.
	names map[hostnet.EgressElem]answered
	// refused names, for Drops.
	refused []api.EgressDrop
	rate    bucket
}

type answered struct {
	name    string
	expires time.Time
}

// New checks cfg; Start starts the resolver.
func New(cfg Config) (*Enforcer, error) {
	if cfg.Table == nil {
		return nil, errors.New("egress: Config.Table is nil")
	}
	if !cfg.Gateway.Is4() {
		return nil, fmt.Errorf("egress: the gateway %v is not an IPv4 address", cfg.Gateway)
	}
	if cfg.MinTTL == 0 {
		cfg.MinTTL = MinTTL
	}
	if cfg.Port == 0 {
		cfg.Port = hostnet.DefaultResolverPort
	}
	if len(cfg.Upstream) == 0 {
		return nil, errors.New("egress: no upstream resolver: the host has no non-loopback nameserver in /etc/resolv.conf; set network.dns in the config")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Enforcer{cfg: cfg, log: log, now: time.Now, guests: map[netip.Addr]*guest{}}, nil
}

// Start opens the resolver on Gateway:Port, UDP and TCP, and serves
// until ctx ends or Close.
func (e *Enforcer) Start(ctx context.Context) error {
	r, err := startResolver(ctx, e)
	if err != nil {
		return err
	}
	e.res = r
	return nil
}

// Close stops the resolver. The nftables elements stay: the guests stay
// restricted (a restarted daemon calls Set again for each VM).
func (e *Enforcer) Close() error {
	if e.res != nil {
		e.res.close()
	}
	return nil
}

// Set makes vmIP's guest follow p, at once: mode nat lifts every
// restriction; none lets nothing through (its DNS is refused); allow lets
// through the rule's addresses and CIDRs, and the addresses the resolver
// answers for its names. Addresses answered under an earlier policy stay
// reachable only if the new policy still allows their name and port.
func (e *Enforcer) Set(vmIP netip.Addr, p Policy) error {
	if !vmIP.Is4() {
		return fmt.Errorf("egress: guest address %v is not IPv4", vmIP)
	}
	if p.Mode == "" || p.Mode == api.EgressNAT {
		return e.lift(vmIP, false)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.guests[vmIP]
	if g == nil {
		g = &guest{names: map[hostnet.EgressElem]answered{}}
	}
	change := hostnet.EgressChange{Table: e.cfg.TableName,
		Add: []hostnet.EgressElem{{Set: hostnet.EgressGuestsSet, Guest: vmIP}}}
	old, err := e.elements(vmIP, hostnet.EgressCIDRsSet, hostnet.EgressNamesSet, hostnet.EgressNamesAnySet)
	if err != nil {
		return err
	}
	keep := map[hostnet.EgressElem]answered{}
	for el, a := range g.names {
		if allowed(p, a.name, el) {
			keep[el] = a
		}
	}
	for _, el := range old {
		if _, ok := keep[el]; !ok {
			change.Remove = append(change.Remove, el)
		}
	}
	for pfx, ranges := range cidrRanges(p.Rules) {
		for _, r := range ranges {
			change.Add = append(change.Add, hostnet.EgressElem{Set: hostnet.EgressCIDRsSet, Guest: vmIP, Prefix: pfx, Ports: [2]uint16{r.first, r.last}})
		}
	}
	if err := e.cfg.Table.Egress(change); err != nil {
		return fmt.Errorf("applying the egress policy of %v: %w", vmIP, err)
	}
	g.policy, g.names = p, keep
	e.guests[vmIP] = g
	return nil
}

// Resync writes every restricted guest's elements again. Call it after
// hostnet rewrote table inet banger (Setup after a config change, or a
// repair): a rewrite empties the egress sets, which lifts every
// restriction until then. Addresses answered before are gone; guests
// resolve again.
func (e *Enforcer) Resync() error {
	e.mu.Lock()
	policies := map[netip.Addr]Policy{}
	for ip, g := range e.guests {
		policies[ip] = g.policy
		g.names = map[hostnet.EgressElem]answered{}
	}
	e.mu.Unlock()
	var errs []error
	for ip, p := range policies {
		if err := e.Set(ip, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// allowed reports whether p still lets the guest reach el, answered for
// name.
func allowed(p Policy, name string, el hostnet.EgressElem) bool {
	ok, ports := p.AllowsName(name)
	switch {
	case !ok:
		return false
	case el.Set == hostnet.EgressNamesAnySet:
		return ports == nil
	default:
		return ports != nil && slices.Contains(ports, el.Port)
	}
}

// Remove lifts every restriction of vmIP and forgets its refusals: the
// VM is gone, and its address may be leased to another.
func (e *Enforcer) Remove(vmIP netip.Addr) error { return e.lift(vmIP, true) }

func (e *Enforcer) lift(vmIP netip.Addr, forget bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	sets := []string{hostnet.EgressCIDRsSet, hostnet.EgressNamesSet, hostnet.EgressNamesAnySet}
	if forget {
		sets = append(sets, hostnet.EgressDropsSet)
	}
	old, err := e.elements(vmIP, sets...)
	if err != nil {
		return err
	}
	change := hostnet.EgressChange{Table: e.cfg.TableName,
		Remove: append([]hostnet.EgressElem{{Set: hostnet.EgressGuestsSet, Guest: vmIP}}, old...)}
	if err := e.cfg.Table.Egress(change); err != nil {
		return fmt.Errorf("lifting the egress policy of %v: %w", vmIP, err)
	}
	delete(e.guests, vmIP)
	return nil
}

// elements reads vmIP's elements of the given sets from the kernel (which
// may hold some from before a daemon restart).
func (e *Enforcer) elements(vmIP netip.Addr, sets ...string) ([]hostnet.EgressElem, error) {
	var out []hostnet.EgressElem
	for _, set := range sets {
		entries, err := e.cfg.Table.EgressList(e.cfg.TableName, set)
		if err != nil {
			return nil, err
		}
		for _, en := range entries {
			if en.Guest != vmIP {
				continue
			}
			el := hostnet.EgressElem{Set: set, Guest: vmIP}
			switch set {
			case hostnet.EgressNamesSet:
				el.Addr, el.Port = en.Addr, en.Port
			case hostnet.EgressNamesAnySet:
				el.Addr = en.Addr
			case hostnet.EgressCIDRsSet:
				el.Prefix = rangePrefix(en.Addr, en.End)
				el.Ports = [2]uint16{en.Port, en.LastPort}
			case hostnet.EgressDropsSet:
				el.Addr, el.Port, el.Proto = en.Addr, en.Port, en.Proto
			}
			out = append(out, el)
		}
	}
	return out, nil
}

// rangePrefix is the prefix from first to last (both in it).
func rangePrefix(first, last netip.Addr) netip.Prefix {
	a, b := first.As4(), last.As4()
	x := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	y := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	bits := 32
	for d := x ^ y; d != 0; d >>= 1 {
		bits--
	}
	return netip.PrefixFrom(first, bits)
}

// policy returns the policy of a restricted guest.
func (e *Enforcer) policy(src netip.Addr) (Policy, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.guests[src]
	if g == nil {
		return Policy{}, false
	}
	return g.policy, true
}

// admit takes one query from src's rate budget.
func (e *Enforcer) admit(src netip.Addr) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.guests[src]
	return g != nil && g.rate.take(e.now())
}

// refused records that src asked for a name its policy refuses.
func (e *Enforcer) refused(src netip.Addr, name string) {
	e.log.Debug("egress: refused a name", "guest", src, "name", name)
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.guests[src]
	if g == nil {
		return
	}
	now := e.now()
	if i := slices.IndexFunc(g.refused, func(d api.EgressDrop) bool { return d.Name == name }); i >= 0 {
		g.refused[i].Count++
		g.refused[i].Last = now
		return
	}
	if len(g.refused) >= maxNameDrops {
		oldest := slices.IndexFunc(g.refused, func(d api.EgressDrop) bool {
			return d.Last.Equal(slices.MinFunc(g.refused, func(a, b api.EgressDrop) int { return a.Last.Compare(b.Last) }).Last)
		})
		g.refused = slices.Delete(g.refused, oldest, oldest+1)
	}
	g.refused = append(g.refused, api.EgressDrop{Name: name, Proto: "dns", Count: 1, Last: now})
}

// allow lets src reach the addresses answered for name, to the ports its
// policy allows name (every port when nil), each for its TTL clamped to
// MinTTL..MaxTTL, before the answer is relayed. The policy is checked
// again here: Set may have changed it while the query was upstream. An
// element that is there already is refreshed when the new answer lasts
// longer.
func (e *Enforcer) allow(src netip.Addr, name string, addrs map[netip.Addr]time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.guests[src]
	if g == nil {
		return errors.New("the guest is no longer restricted")
	}
	ok, ports := g.policy.AllowsName(name)
	if !ok {
		return fmt.Errorf("the guest's policy no longer allows %s", name)
	}
	now := e.now()
	for el, a := range g.names { // forget what the kernel has let expire
		if a.expires.Before(now) {
			delete(g.names, el)
		}
	}
	if len(g.names)+len(addrs)*max(1, len(ports)) > maxNames {
		return fmt.Errorf("the guest holds %d answered addresses, the most it may: %d", len(g.names), maxNames)
	}
	change := hostnet.EgressChange{Table: e.cfg.TableName}
	for addr, ttl := range addrs {
		ttl = min(max(ttl, e.cfg.MinTTL), MaxTTL)
		var els []hostnet.EgressElem
		if ports == nil {
			els = append(els, hostnet.EgressElem{Set: hostnet.EgressNamesAnySet, Guest: src, Addr: addr})
		}
		for _, p := range ports {
			els = append(els, hostnet.EgressElem{Set: hostnet.EgressNamesSet, Guest: src, Addr: addr, Port: p})
		}
		for _, el := range els {
			exp := now.Add(ttl)
			if a, ok := g.names[el]; ok {
				if !exp.After(a.expires.Add(e.cfg.MinTTL / 2)) {
					continue // fresh enough
				}
				change.Remove = append(change.Remove, el)
			}
			g.names[el] = answered{name: name, expires: exp}
			el.Timeout = ttl
			change.Add = append(change.Add, el)
		}
	}
	if len(change.Add) == 0 {
		return nil
	}
	return e.cfg.Table.Egress(change)
}

// Drops returns vmIP's recent refusals, newest first, at most MaxDrops:
// connections the kernel dropped (address, port, protocol, packets) and
// names the resolver refused.
func (e *Enforcer) Drops(vmIP netip.Addr) ([]api.EgressDrop, error) {
	entries, err := e.cfg.Table.EgressList(e.cfg.TableName, hostnet.EgressDropsSet)
	if err != nil {
		return nil, err
	}
	now := e.now()
	var out []api.EgressDrop
	for _, en := range entries {
		if en.Guest != vmIP {
			continue
		}
		d := api.EgressDrop{Address: en.Addr.String(), Proto: protoName(en.Proto), Count: int64(en.Packets),
			Last: now.Add(-(hostnet.EgressDropsTimeout - en.Expires)).Truncate(time.Second)}
		if d.Proto == "tcp" || d.Proto == "udp" {
			d.Port = int(en.Port)
		}
		out = append(out, d)
	}
	e.mu.Lock()
	if g := e.guests[vmIP]; g != nil {
		out = append(out, g.refused...)
	}
	e.mu.Unlock()
	slices.SortStableFunc(out, func(a, b api.EgressDrop) int {
		return cmp.Or(b.Last.Compare(a.Last), cmp.Compare(a.Name+a.Address, b.Name+b.Address))
	})
	if len(out) > MaxDrops {
		out = out[:MaxDrops]
	}
	return out, nil
}

func protoName(p byte) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return fmt.Sprintf("proto-%d", p)
}

// bucket is a token bucket: rate queries a second, burst at most.
type bucket struct {
	tokens float64
	last   time.Time
}

const (
	queryRate  = 50
	queryBurst = 200
)

func (b *bucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = queryBurst
	} else {
		b.tokens = min(queryBurst, b.tokens+now.Sub(b.last).Seconds()*queryRate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
