// Package identity gives a guest restored from another VM's saved memory
// its own identity, and a guest resumed after a pause the right time: it
// is the guest side of agentproto.MethodIdentity.
//
// A warm-created or forked VM starts as a byte-for-byte copy of the VM
// whose memory it was restored from: same clock, same kernel RNG state,
// machine-id, boot ID, hostname, address, MAC, SSH host keys and agent
// key. Apply replaces each of them with what the host sends, in the order
// the Identity's doc gives, after checking the whole call first
// (Validate): a bad field changes nothing.
//
// Everything Apply touches goes through a System, so tests run it against
// a temporary root, recording fakes for the clock and the RNG, a network
// namespace of their own and a private mount namespace; Kernel is the
// System of a real guest.
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
)

// System is where Apply makes its changes.
type System struct {
	// Root holds the guest's /etc and /run ("/"; a test directory in
	// tests).
	Root string
	// ProcDir is the proc file system ("/proc"): the kernel's boot_id
	// is bound over below it, and sshd's command name read from it.
	ProcDir string
	// Home receives the payload's files (bootpayload.GuestHome).
	Home string
	// SetClock sets CLOCK_REALTIME (SetRealtime).
	SetClock func(time.Time) error
	// Entropy is the kernel RNG (KernelEntropy).
	Entropy Entropy
	// Mounter binds the new boot ID over the kernel's (BindMounter).
	Mounter Mounter
	// Netlink is bound to the network namespace of eth0; nil refuses a
	// call with Net, unless NoLink.
	Netlink *netlink.Handle
	// NoLink is a guest without a NIC to move (a test agent on a pipe):
	// Net only writes resolv.conf.
	NoLink bool
	// SetHostname sets the kernel's host name (unix.Sethostname).
	SetHostname func(name string) error
	// LinkWait bounds the wait for eth0 to appear.
	LinkWait time.Duration
	// SetKey installs the new agent key for the channels opened from now
	// on; nil refuses a call with Key.
	SetKey func(key []byte)
	Log    *slog.Logger
}

// Kernel is the System of a real guest, except Netlink and SetKey,
// which the caller supplies (a netlink handle is opened per call, the
// key belongs to the agent's server).
func Kernel(log *slog.Logger) System {
	return System{
		Root:        "/",
		ProcDir:     "/proc",
		Home:        bootpayload.GuestHome,
		SetClock:    SetRealtime,
		Entropy:     KernelEntropy{Device: "/dev/urandom"},
		Mounter:     BindMounter{},
		SetHostname: func(name string) error { return unix.Sethostname([]byte(name)) },
		LinkWait:    5 * time.Second,
		Log:         log,
	}
}

func (s System) etc(name ...string) string {
	return filepath.Join(append([]string{s.Root, "etc"}, name...)...)
}

func (s System) run(name ...string) string {
	return filepath.Join(append([]string{s.Root, "run"}, name...)...)
}

func (s System) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// InvalidError is a field of the call that Apply refuses; nothing was
// changed. Field is its JSON name ("net.mac").
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("identity: %s: %s", e.Field, e.Reason)
}

// StepError is a field that could not be applied: the fields before it
// (in the order of agentproto.Identity's doc) are in place, the ones after
// it are not. The host may send the same call again.
type StepError struct {
	Field string
	Err   error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("identity: applying %s: %v", e.Field, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Applier applies identity calls one at a time: two calls at once would
// interleave their steps.
type Applier struct {
	Sys System
	// OpenNetlink opens a handle for a call with Net when Sys.Netlink is
	// nil; Apply closes it.
	OpenNetlink func() (*netlink.Handle, error)

	mu sync.Mutex
}

// Apply applies id (see the package doc) and returns the SSH host public
// keys present after it and the time it took.
func (a *Applier) Apply(ctx context.Context, id agentproto.Identity) (agentproto.IdentityResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	sys := a.Sys
	if id.Net != nil && sys.Netlink == nil && !sys.NoLink && a.OpenNetlink != nil {
		if err := Validate(id); err != nil {
			return agentproto.IdentityResult{}, err
		}
		h, err := a.OpenNetlink()
		if err != nil {
			return agentproto.IdentityResult{}, &StepError{Field: "net", Err: fmt.Errorf("opening netlink: %w", err)}
		}
		defer h.Close()
		sys.Netlink = h
	}
	return Apply(ctx, id, sys)
}

// Apply checks id (Validate) and applies it to sys, stopping at the first
// field that fails (a *StepError naming it). It returns the SSH host
// public keys present afterwards and the time it took. Callers serving
// calls concurrently use an Applier.
func Apply(ctx context.Context, id agentproto.Identity, sys System) (agentproto.IdentityResult, error) {
	start := time.Now() // monotonic: setting the clock does not move it
	v, err := check(id)
	if err != nil {
		return agentproto.IdentityResult{}, err
	}
	if v.net != nil && sys.Netlink == nil && !sys.NoLink {
		return agentproto.IdentityResult{}, &InvalidError{Field: "net", Reason: "this agent has no network to configure"}
	}
	if id.Key != nil && sys.SetKey == nil {
		return agentproto.IdentityResult{}, &InvalidError{Field: "key", Reason: "this agent cannot change its key"}
	}
	log := sys.log()
	steps := []struct {
		field string
		set   bool
		apply func() error
	}{
		{"time_unix_nano", true, func() error { return setClock(sys, id.TimeUnixNano) }},
		{"seed", id.Seed != nil, func() error { return reseed(sys.Entropy, id.Seed) }},
		{"machine_id", id.MachineID != "", func() error { return writeMachineID(sys, id.MachineID) }},
		{"boot_id", id.BootID != "", func() error { return setBootID(sys, id.BootID) }},
		{"hostname", id.Hostname != "", func() error { return setHostname(ctx, sys, id.Hostname) }},
		{"net", v.net != nil, func() error { return moveNet(ctx, sys, *v.net) }},
		{"host_keys", id.HostKeys, func() error { return rotateHostKeys(sys, id.Hostname) }},
		{"payload", id.Payload != nil, func() error { return bootpayload.Apply(*id.Payload, sys.Home) }},
		{"key", id.Key != nil, func() error {
			sys.SetKey(append([]byte(nil), id.Key...))
			return nil
		}},
	}
	took := map[string]int64{}
	for _, s := range steps {
		if !s.set {
			continue
		}
		t := time.Now()
		if err := s.apply(); err != nil {
			return agentproto.IdentityResult{}, &StepError{Field: s.field, Err: err}
		}
		took[s.field] = time.Since(t).Milliseconds()
		log.Info("identity applied", "field", s.field)
	}
	// The files above were replaced without a sync each (a journal
	// commit apiece under emulation): one sync makes them all durable,
	// so a crash of the clone never brings back its template's
	// machine-id or host keys.
	t := time.Now()
	unix.Sync()
	took["sync"] = time.Since(t).Milliseconds()
	keys, err := PublicHostKeys(sys.etc("ssh"))
	if err != nil {
		return agentproto.IdentityResult{}, &StepError{Field: "host_keys", Err: fmt.Errorf("reading the host keys back: %w", err)}
	}
	return agentproto.IdentityResult{HostKeys: keys, ElapsedMS: time.Since(start).Milliseconds(), StepsMS: took}, nil
}

// errNoSystem is a seam a System left empty.
var errNoSystem = errors.New("not available in this agent")

func setClock(sys System, unixNano int64) error {
	if sys.SetClock == nil {
		return fmt.Errorf("setting the clock: %w", errNoSystem)
	}
	return sys.SetClock(time.Unix(0, unixNano))
}

// SetRealtime sets CLOCK_REALTIME to t.
func SetRealtime(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("setting the clock to %s: %w", t.UTC().Format(time.RFC3339Nano), err)
	}
	return nil
}
