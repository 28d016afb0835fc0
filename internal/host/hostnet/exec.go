package hostnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is what Setup, Teardown and Pool need: read the host, apply steps.
// *Executor is the real one; tests use a recording fake.
type Host interface {
	Observe(ctx context.Context, cfg Config) (State, error)
	Apply(ctx context.Context, steps []Step) error
}

var _ Host = (*Executor)(nil)

// Executor observes and changes the networking of one network namespace.
// Apply is the only code in banger that changes host networking.
type Executor struct {
	ns  netns.NsHandle // the namespace acted on; not open = this process's own
	nl  *netlink.Handle
	nft *nftables.Conn
	log *slog.Logger

	mu sync.Mutex // one Observe or Apply at a time
}

// NewExecutor returns an Executor for network namespace ns, or for the
// process's own namespace when ns is netns.None(). The caller keeps ns open
// for the Executor's life and closes it; Close releases the Executor's own
// sockets. A nil log discards.
func NewExecutor(ns netns.NsHandle, log *slog.Logger) (*Executor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Executor{ns: ns, log: log}
	var err error
	var opts []nftables.ConnOption
	if ns.IsOpen() {
		e.nl, err = netlink.NewHandleAt(ns)
		opts = append(opts, nftables.WithNetNSFd(int(ns)))
	} else {
		e.nl, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket: %w", err)
	}
	if e.nft, err = nftables.New(opts...); err != nil {
		e.nl.Close()
		return nil, fmt.Errorf("opening an nftables connection: %w", err)
	}
	return e, nil
}

// Close releases the Executor's netlink sockets.
func (e *Executor) Close() error {
	e.nl.Close()
	return nil
}

// Observe reads the namespace's state for cfg (see the package function).
func (e *Executor) Observe(ctx context.Context, cfg Config) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return Observe(cfg, e.nl, e.nft, e.forwarding)
}

// StepError is how Apply fails: which step, why, and what the user can do.
type StepError struct {
	Step Step
	Err  error
	// Fix is the next action for the user; "" when there is no better
	// advice than the error itself.
	Fix string
}

func (e *StepError) Error() string {
	msg := e.Step.doing() + ": " + e.Err.Error()
	if e.Fix != "" {
		msg += ": " + e.Fix
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

// Apply runs steps in order and stops at the first failure, returning a
// *StepError. Every step is idempotent, so after a failure or a crash the
// caller observes, plans and applies again.
func (e *Executor) Apply(ctx context.Context, steps []Step) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("host network changes stopped before step %d of %d (%s): %w", i+1, len(steps), s, err)
		}
		start := time.Now()
		if err := e.apply(s); err != nil {
			serr := &StepError{Step: s, Err: err, Fix: fixFor(s, err)}
			e.log.Error("host network step failed", "step", s.String(), "n", i+1, "of", len(steps), "err", err)
			return serr
		}
		e.log.Info("host network step", "step", s.String(), "n", i+1, "of", len(steps), "duration", time.Since(start))
	}
	return nil
}

func (e *Executor) apply(s Step) error {
	switch s := s.(type) {
	case EnsureBridge:
		if l, err := e.nl.LinkByName(s.Name); err == nil {
			if l.Type() != "bridge" {
				return fixedErr(fmt.Errorf("%s exists and is a %s, not a bridge", s.Name, l.Type()),
					fmt.Sprintf("set another network.bridge in config, or delete the link (ip link del %s)", s.Name))
			}
			return nil
		} else if !isLinkNotFound(err) {
			return err
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: s.Name, HardwareAddr: s.MAC}}
		if err := e.nl.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		return nil
	case SetBridgeAddr:
		l, err := e.nl.LinkByName(s.Bridge)
		if err != nil {
			return err
		}
		return e.nl.AddrReplace(l, &netlink.Addr{IPNet: prefixToIPNet(s.Addr)})
	case DelBridgeAddr:
		l, err := e.nl.LinkByName(s.Bridge)
		if err != nil {
			return err
		}
		if err := e.nl.AddrDel(l, &netlink.Addr{IPNet: prefixToIPNet(s.Addr)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return err
		}
		return nil
	case SetLinkUp:
		l, err := e.nl.LinkByName(s.Name)
		if err != nil {
			return err
		}
		return e.nl.LinkSetUp(l)
	case CreateTAP:
		if l, err := e.nl.LinkByName(s.Name); err == nil {
			if t, ok := l.(*netlink.Tuntap); !ok || t.Mode != netlink.TUNTAP_MODE_TAP {
				return fixedErr(fmt.Errorf("%s exists and is a %s, not a TAP", s.Name, l.Type()),
					fmt.Sprintf("delete it (ip link del %s); banger's pool owns the tap-pool-* names", s.Name))
			}
			return nil
		} else if !isLinkNotFound(err) {
			return err
		}
		return e.inNS(func() error { return createTAP(s.Name, s.Owner) })
	case AttachToBridge:
		l, err := e.nl.LinkByName(s.Name)
		if err != nil {
			return err
		}
		br, err := e.nl.LinkByName(s.Bridge)
		if err != nil {
			return err
		}
		return e.nl.LinkSetMaster(l, br)
	case SetIsolated:
		l, err := e.nl.LinkByName(s.Name)
		if err != nil {
			return err
		}
		return e.nl.LinkSetIsolated(l, true)
	case DeleteLink:
		l, err := e.nl.LinkByName(s.Name)
		if isLinkNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		if err := e.nl.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			return err
		}
		return nil
	case FlushPort:
		return e.flushPort(s.Name)
	case EnableForwarding:
		return e.inNS(func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
		})
	case EnsureNFTable:
		return writeTable(e.nft, s.Table)
	case Bind:
		return e.bind(s.Table, s.Bindings, true)
	case Unbind:
		return e.bind(s.Table, s.Bindings, false)
	case DeleteNFTable:
		queueDeleteTable(e.nft, s.Name, s.Family)
		return e.nft.Flush()
	}
	return fmt.Errorf("unknown step %T", s)
}

// bind adds (add) or removes bindings from the set guest-addrs of bridge
// table table, setChunk at a time. Adding an element that is there is not
// an error for nf_tables; removing one that is gone is, so a removal is
// retried one element at a time, skipping the ones already gone.
func (e *Executor) bind(table string, bs []Binding, add bool) error {
	ks, err := setKeyType(NFTSet{Name: guestAddrsSet, Type: "ifname . ether_addr . ipv4_addr"})
	if err != nil {
		return err
	}
	set := &nftables.Set{Table: &nftables.Table{Name: table, Family: nftables.TableFamilyBridge}, Name: guestAddrsSet,
		KeyType: ks, Concatenation: true}
	apply := func(bs []Binding) error {
		elems := make([]nftables.SetElement, len(bs))
		for i, b := range bs {
			elems[i] = nftables.SetElement{Key: b.key()}
		}
		if add {
			if err := e.nft.SetAddElements(set, elems); err != nil {
				return err
			}
		} else if err := e.nft.SetDeleteElements(set, elems); err != nil {
			return err
		}
		return e.nft.Flush()
	}
	for len(bs) > 0 {
		n := min(len(bs), setChunk)
		err := apply(bs[:n])
		if err != nil && !add && errors.Is(err, unix.ENOENT) {
			for _, b := range bs[:n] {
				if err := apply([]Binding{b}); err != nil && !errors.Is(err, unix.ENOENT) {
					return err
				}
			}
			err = nil
		}
		if err != nil {
			return err
		}
		bs = bs[n:]
	}
	return nil
}

// flushPort deletes the forwarding-database entries the bridge learned on
// port name. The port's own (permanent) entries stay.
func (e *Executor) flushPort(name string) error {
	l, err := e.nl.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	idx := l.Attrs().Index
	entries, err := e.nl.NeighList(idx, unix.AF_BRIDGE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return err
	}
	for _, n := range entries {
		if n.LinkIndex != idx || n.State&unix.NUD_PERMANENT != 0 || n.HardwareAddr == nil {
			continue
		}
		del := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_MASTER, HardwareAddr: n.HardwareAddr, Vlan: n.Vlan}
		if err := e.nl.NeighDel(del); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("forgetting %s: %w", n.HardwareAddr, err)
		}
	}
	return nil
}

// forwarding reads net.ipv4.ip_forward in the namespace.
func (e *Executor) forwarding() (bool, error) {
	var on bool
	err := e.inNS(func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		on = strings.TrimSpace(string(b)) == "1"
		return err
	})
	return on, err
}

// inNS runs fn on an OS thread inside the Executor's namespace, for what
// netlink sockets cannot do: /dev/net/tun and /proc/sys/net act on the
// calling thread's namespace.
func (e *Executor) inNS(fn func() error) error {
	if !e.ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: when this goroutine returns the
		// runtime discards it, so the namespace switch cannot leak into
		// other goroutines, not even if switching back would have failed.
		runtime.LockOSThread()
		if err := netns.Set(e.ns); err != nil {
			errc <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// createTAP creates a persistent TAP owned by owner in the calling thread's
// network namespace: open /dev/net/tun, TUNSETIFF, TUNSETOWNER,
// TUNSETGROUP, TUNSETPERSIST. The flags match what Firecracker and QEMU
// open it with (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, single queue); an opener's
// flags win anyway, except multi-queue, which must match. netlink.Tuntap
// does the same ioctls but formats their errors with %v, losing the errno
// that tells "not permitted" (grow the pool with sudo) from the rest.
func createTAP(name string, owner Owner) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	// Until TUNSETPERSIST succeeds, closing fd removes the device again,
	// so a failure half-way leaves nothing behind.
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("TUNSETIFF: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, int(owner.UID)); err != nil {
		return fmt.Errorf("TUNSETOWNER %d: %w", owner.UID, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETGROUP, int(owner.GID)); err != nil {
		return fmt.Errorf("TUNSETGROUP %d: %w", owner.GID, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("TUNSETPERSIST: %w", err)
	}
	return nil
}

// fixedError carries the fix for a failure the step itself diagnosed.
type fixedError struct {
	err error
	fix string
}

func (e *fixedError) Error() string { return e.err.Error() }
func (e *fixedError) Unwrap() error { return e.err }

func fixedErr(err error, fix string) error { return &fixedError{err: err, fix: fix} }

// fixFor names the user's next action after step s failed with err.
func fixFor(s Step, err error) string {
	if fe, ok := errors.AsType[*fixedError](err); ok {
		return fe.fix
	}
	_, isTAP := s.(CreateTAP)
	_, isFwd := s.(EnableForwarding)
	_, isTable := s.(EnsureNFTable)
	switch {
	case errors.Is(err, os.ErrPermission) && isTAP:
		return "run `sudo banger host setup` once so an unprivileged bangerd gets a TAP pool of its own"
	case errors.Is(err, os.ErrPermission) && isFwd:
		return "run `sudo banger host setup` once, or `sudo sysctl -w net.ipv4.ip_forward=1`"
	case errors.Is(err, os.ErrPermission):
		return "bangerd needs CAP_NET_ADMIN for this: run `sudo banger host setup` once, or run bangerd as root"
	case errors.Is(err, unix.EROFS) && isFwd:
		return "/proc/sys is read-only here (a container?): set net.ipv4.ip_forward=1 where this network namespace is managed"
	case isTAP && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV)):
		return "load the TUN/TAP driver (`sudo modprobe tun`) and check that /dev/net/tun exists"
	case isTable && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT)):
		return "the kernel lacks part of nftables: `sudo modprobe nf_tables nft_masq` (kernel options NF_TABLES_INET, NF_TABLES_BRIDGE, NFT_NAT, NFT_MASQ, NFT_CT)"
	}
	return ""
}

func isLinkNotFound(err error) bool {
	if err == nil {
		return false
	}
	_, ok := errors.AsType[netlink.LinkNotFoundError](err)
	return ok || errors.Is(err, unix.ENODEV)
}

// InNamespace runs fn on an OS thread inside the Executor's namespace
// (the calling goroutine's own when it acts on this process's
// namespace). Sockets fn opens stay in that namespace: package egress
// opens its resolver's and its upstream queries' sockets this way.
func (e *Executor) InNamespace(fn func() error) error { return e.inNS(fn) }
