package hvtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// FakeDriverName is the driver name in the Fake's handles.
const FakeDriverName = "fake"

// fakePIDBase is above any Linux pid_max (at most 2^22), so a Fake handle
// never names a real process: hypervisor.Alive is false for it.
const fakePIDBase = 1 << 30

// Fake is a hand-written, in-memory hypervisor.Hypervisor for tests of
// code that drives VMs, down to a whole daemon (daemontest's fake mode).
// It runs no processes: its "VMs" are records with a state, its agent is
// agentmux.Basic over a net.Pipe holding the agent key of the spec's
// initramfs (BootKey: a VM booted without a boot payload has an agent that
// refuses every host) — health, readiness probes, host keys, power-off,
// memory, the identity call and an always empty session list; the pipes
// close when the VM stops — and it passes the conformance suite (with
// FakeGuest). It records every call and fails on demand.
//
// It is a hypervisor.Snapshotter (fakesnap.go): a VM's guest memory
// (FakeMemory: its agent key, hostname, host keys, the identities it
// took, its uptime, a count of agent channels) is what Save writes to a
// state file and Restore reads back.
//
// Launch checks the spec like a real driver (the boot files and disks
// must exist; a directory where a VM runs is refused; a disk a running VM
// holds read-only is refused read-write, and the reverse, as QEMU's image
// locking refuses it, while any number of VMs share a read-only disk) and
// records each Disk.ReadOnly with the spec (Launched). It creates
// placeholder control and agent "sockets" (empty files) and a console log
// in Spec.Dir; Shutdown and Kill remove the sockets, Crash leaves them as
// a dying process would.
//
// Set the exported fields before the code under test runs, or between
// its calls; the Fake is otherwise safe for concurrent use.
type Fake struct {
	// A non-nil error makes every call of that method fail with it
	// (recorded, and without any effect) until it is cleared.
	LaunchErr, StatusErr, ShutdownErr, KillErr, AdoptErr, DialErr error
	// RestoreErr and ResumeErr are as above. SaveErr makes Save fail
	// as a real Save may, after it paused the VM (the contract leaves a
	// VM paused whether Save succeeds or fails), writing nothing.
	SaveErr, RestoreErr, ResumeErr error
	// IdentityErr makes the fake agent answer identity calls with an
	// error, applying nothing.
	IdentityErr error
	// HealthErr makes the fake agent answer health requests with an error.
	HealthErr error
	// Health is what the fake agent reports; the zero value gives a
	// plausible report (ext4 root, /root on /dev/vdb, hostname = VM name).
	Health agentproto.Health
	// IgnorePowerButton makes the guests ignore Shutdown's power-off
	// request, so Shutdown waits until its context ends and then kills.
	IgnorePowerButton bool
	// Transfers, when set, serves the fake agents' file transfers (a
	// workspace prepare's put, vm diff's changes get) in place of
	// refusing them: a test stands in for what a guest stores and
	// sends back.
	Transfers Transfers
	// Dial, when set, serves the fake agents' dial streams (a published
	// port's connections): it is called with the VM's name and the
	// guest port, and a test stands in for the guest's service. Unset,
	// dials are refused as an old agent refuses them (unknown_type).
	Dial func(ctx context.Context, vmName string, port int) (net.Conn, error)

	mu      sync.Mutex
	calls   []Call
	vms     map[int]*fakeVM
	nextPID int
}

// Call is one recorded call.
type Call struct {
	Op   string // "launch", "status", "adopt", "shutdown", "kill", "dial", "save", "restore", "resume"
	VMID string // the VM's Spec.ID, when the Fake launched the handle's VM
	PID  int    // the handle's PID (for launch: the new VM's, 0 on error)
	Err  error  // what the call returned
}

type fakeVM struct {
	spec   hypervisor.Spec
	handle hypervisor.Handle
	state  hypervisor.State
	// mem is the guest's memory; mem.Key starts as the agent key the
	// spec's initramfs carries (nil: none).
	mem FakeMemory
	// since is when the guest last started running (zero while it is
	// paused or stopped): its uptime is mem.UptimeMS plus the time since.
	since time.Time
	// running is closed while the guest runs; a paused guest's agent
	// serves a new channel only once it is closed.
	running chan struct{}
	// done is closed when the VM stops.
	done chan struct{}
	// conns are the guest ends of the agent channels DialAgent opened:
	// closed when the VM stops, as a dying process closes its sockets.
	conns []net.Conn
}

// newFakeVM returns a paused VM with the memory mem.
func newFakeVM(spec hypervisor.Spec, h hypervisor.Handle, mem FakeMemory) *fakeVM {
	return &fakeVM{spec: spec, handle: h, state: hypervisor.Paused, mem: mem, running: make(chan struct{}), done: make(chan struct{})}
}

// setState moves the VM to s, keeping its uptime: a paused guest's clock
// stands still.
func (vm *fakeVM) setState(s hypervisor.State) {
	if vm.state == hypervisor.Running && s != hypervisor.Running {
		vm.mem.UptimeMS = vm.uptimeMS()
		vm.since = time.Time{}
		vm.running = make(chan struct{})
	}
	if vm.state != hypervisor.Running && s == hypervisor.Running {
		vm.since = time.Now()
		close(vm.running)
	}
	if vm.state != hypervisor.Stopped && s == hypervisor.Stopped {
		close(vm.done)
	}
	vm.state = s
}

// uptimeMS is how long the guest has run, paused time left out.
func (vm *fakeVM) uptimeMS() int64 {
	if vm.since.IsZero() {
		return vm.mem.UptimeMS
	}
	return vm.mem.UptimeMS + time.Since(vm.since).Milliseconds()
}

// hangUp closes the VM's agent channels.
func (vm *fakeVM) hangUp() {
	for _, c := range vm.conns {
		c.Close()
	}
	vm.conns = nil
}

var _ hypervisor.Hypervisor = (*Fake)(nil)

// NewFake returns a Fake with no VMs.
func NewFake() *Fake { return &Fake{} }

// Name returns FakeDriverName.
func (f *Fake) Name() string { return FakeDriverName }

// Calls returns the calls so far, in order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Ops returns the Op of every call so far, in order.
func (f *Fake) Ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ops := make([]string, len(f.calls))
	for i, c := range f.calls {
		ops[i] = c.Op
	}
	return ops
}

// Launched returns the specs of the VMs launched so far, in order.
func (f *Fake) Launched() []hypervisor.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	var specs []hypervisor.Spec
	for pid := fakePIDBase + 1; pid <= fakePIDBase+f.nextPID; pid++ {
		if vm, ok := f.vms[pid]; ok {
			specs = append(specs, vm.spec)
		}
	}
	return specs
}

// Running returns the handles of the VMs that have not stopped.
func (f *Fake) Running() []hypervisor.Handle {
	f.mu.Lock()
	defer f.mu.Unlock()
	var hs []hypervisor.Handle
	for pid := fakePIDBase + 1; pid <= fakePIDBase+f.nextPID; pid++ {
		if vm, ok := f.vms[pid]; ok && vm.state != hypervisor.Stopped {
			hs = append(hs, vm.handle)
		}
	}
	return hs
}

// Crash ends h's VM as if its process died: it is Stopped, and its
// sockets stay behind.
func (f *Fake) Crash(h hypervisor.Handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if vm := f.vm(h); vm != nil {
		vm.setState(hypervisor.Stopped)
		vm.hangUp()
	}
}

// SetState sets the state of h's VM (Running or Paused; Stopped is Crash).
func (f *Fake) SetState(h hypervisor.Handle, s hypervisor.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if vm := f.vm(h); vm != nil {
		vm.setState(s)
	}
}

// vm returns the live VM h names (PID and start time), or nil.
func (f *Fake) vm(h hypervisor.Handle) *fakeVM {
	vm, ok := f.vms[h.PID]
	if !ok || vm.handle.StartTime != h.StartTime || vm.state == hypervisor.Stopped {
		return nil
	}
	return vm
}

func (f *Fake) record(op string, h hypervisor.Handle, err error) {
	c := Call{Op: op, PID: h.PID, Err: err}
	if vm, ok := f.vms[h.PID]; ok {
		c.VMID = vm.spec.ID
	}
	f.calls = append(f.calls, c)
}

func fakePaths(dir string) (control, agent, console string) {
	return filepath.Join(dir, "fake-control.sock"), filepath.Join(dir, "fake-agent.sock"), filepath.Join(dir, "console.log")
}

// Launch records a VM after checking spec as a real driver would.
func (f *Fake) Launch(ctx context.Context, spec hypervisor.Spec) (h hypervisor.Handle, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() { f.record("launch", h, err) }()
	if f.LaunchErr != nil {
		return hypervisor.Handle{}, f.LaunchErr
	}
	if err := ctx.Err(); err != nil {
		return hypervisor.Handle{}, err
	}
	if err := fakeValidate(spec, true); err != nil {
		return hypervisor.Handle{}, fmt.Errorf("fake: launching VM %s: %w", spec.ID, err)
	}
	if err := f.placeable(spec); err != nil {
		return hypervisor.Handle{}, fmt.Errorf("fake: launching VM %s: %w", spec.ID, err)
	}
	var key []byte
	if spec.Boot.Initrd != "" {
		if key, err = BootKey(spec.Boot.Initrd); err != nil {
			return hypervisor.Handle{}, fmt.Errorf("fake: launching VM %s: %w", spec.ID, err)
		}
	}
	h, err = f.place(spec, "booted")
	if err != nil {
		return hypervisor.Handle{}, fmt.Errorf("fake: launching VM %s: %w", spec.ID, err)
	}
	vm := newFakeVM(spec, h, FakeMemory{
		Key:      key,
		Hostname: spec.Name,
		HostKeys: []string{FakeHostKey},
		BootID:   newBootID(),
	})
	vm.setState(hypervisor.Running)
	f.vms[h.PID] = vm
	return h, nil
}

// placeable refuses spec where a running VM holds its directory or, in
// the other mode, one of its disks. f.mu is held.
func (f *Fake) placeable(spec hypervisor.Spec) error {
	for _, vm := range f.vms {
		if vm.state != hypervisor.Stopped && vm.spec.Dir == spec.Dir {
			return fmt.Errorf("VM %s (pid %d) already runs in %s: stop it first", vm.spec.ID, vm.handle.PID, spec.Dir)
		}
	}
	return f.sharedDiskConflict(spec)
}

// place creates a new VM's placeholder sockets and its console log
// (saying how the VM started) in spec.Dir, and returns its handle; the
// caller records the VM under the handle's PID. f.mu is held.
func (f *Fake) place(spec hypervisor.Spec, how string) (hypervisor.Handle, error) {
	control, agent, console := fakePaths(spec.Dir)
	for _, p := range []string{control, agent} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			os.Remove(control)
			return hypervisor.Handle{}, err
		}
	}
	if err := os.WriteFile(console, []byte("fake console: VM "+spec.ID+" "+how+"\n"), 0o600); err != nil {
		os.Remove(control)
		os.Remove(agent)
		return hypervisor.Handle{}, err
	}
	if f.vms == nil {
		f.vms = map[int]*fakeVM{}
	}
	f.nextPID++
	return hypervisor.Handle{
		Driver:        FakeDriverName,
		PID:           fakePIDBase + f.nextPID,
		StartTime:     uint64(time.Now().UnixNano()),
		ControlSocket: control,
		Agent:         hypervisor.AgentSerial,
		AgentSocket:   agent,
		ConsoleLog:    console,
		ConsoleLimit:  spec.ConsoleLimit,
		Accel:         cmp.Or(spec.Accel, "fake"),
	}, nil
}

// sharedDiskConflict refuses a disk of spec that a running VM holds with
// the other mode: read-write while another VM has it read-only, or
// read-only while another VM writes it, as QEMU's image locking refuses
// it. Files are compared by identity (device and inode), not by path.
// Read-only uses share a file freely; two read-write uses are not
// refused (the caller gives each VM its own writable disk). f.mu is held.
func (f *Fake) sharedDiskConflict(spec hypervisor.Spec) error {
	for _, d := range spec.Disks {
		fi, err := os.Stat(d.Path)
		if err != nil {
			continue // fakeValidate named it
		}
		// In launch order (pids grow), so the VM named is the first.
		for _, pid := range slices.Sorted(maps.Keys(f.vms)) {
			vm := f.vms[pid]
			if vm.state == hypervisor.Stopped {
				continue
			}
			for _, od := range vm.spec.Disks {
				if od.ReadOnly == d.ReadOnly {
					continue
				}
				ofi, err := os.Stat(od.Path)
				if err != nil || !os.SameFile(fi, ofi) {
					continue
				}
				if od.ReadOnly {
					return fmt.Errorf("disk %s (%s) is attached read-only to VM %s (pid %d), which a read-write use would change under it: stop that VM first or attach the disk read-only", d.ID, d.Path, vm.spec.ID, vm.handle.PID)
				}
				return fmt.Errorf("disk %s (%s) is attached read-write to VM %s (pid %d), which may change it under a read-only user: stop that VM first", d.ID, d.Path, vm.spec.ID, vm.handle.PID)
			}
		}
	}
	return nil
}

// fakeValidate checks that spec names existing files: its boot files
// too when boot is set (a Restore boots nothing).
func fakeValidate(spec hypervisor.Spec, boot bool) error {
	if spec.ID == "" {
		return errors.New("the spec has no VM id")
	}
	if fi, err := os.Stat(spec.Dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("runtime directory %q: not a directory (%v)", spec.Dir, err)
	}
	if boot && spec.Boot.Vmlinuz == "" && spec.Boot.Vmlinux == "" {
		return errors.New("the spec has no kernel")
	}
	for _, p := range []string{spec.Boot.Vmlinuz, spec.Boot.Vmlinux, spec.Boot.Initrd} {
		if p == "" || !boot {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("boot file %s: %w", p, err)
		}
	}
	for _, d := range spec.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			return fmt.Errorf("disk %s (%s): %w", d.ID, d.Path, err)
		}
	}
	return nil
}

// Status returns the VM's state; a VM the Fake does not know, or one whose
// start time differs, is Stopped.
func (f *Fake) Status(ctx context.Context, h hypervisor.Handle) (s hypervisor.State, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() { f.record("status", h, err) }()
	if f.StatusErr != nil {
		return "", f.StatusErr
	}
	if vm := f.vm(h); vm != nil {
		return vm.state, nil
	}
	return hypervisor.Stopped, nil
}

// Adopt succeeds for a live VM the Fake launched, with the same start time.
func (f *Fake) Adopt(ctx context.Context, h hypervisor.Handle) (err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() { f.record("adopt", h, err) }()
	if f.AdoptErr != nil {
		return f.AdoptErr
	}
	if f.vm(h) == nil {
		return fmt.Errorf("fake: %w: no live VM with pid %d and start time %d", hypervisor.ErrNotOurs, h.PID, h.StartTime)
	}
	return nil
}

// Shutdown stops the VM at once, or, with IgnorePowerButton or while the
// VM is paused (its guest cannot see the power button), when ctx ends;
// it removes the VM's sockets.
func (f *Fake) Shutdown(ctx context.Context, h hypervisor.Handle) (err error) {
	f.mu.Lock()
	if f.ShutdownErr != nil {
		defer f.mu.Unlock()
		f.record("shutdown", h, f.ShutdownErr)
		return f.ShutdownErr
	}
	vm := f.vm(h)
	ignore := vm != nil && (f.IgnorePowerButton || vm.state == hypervisor.Paused)
	f.mu.Unlock()
	if ignore {
		<-ctx.Done()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stop(h)
	f.record("shutdown", h, nil)
	return nil
}

// Kill stops the VM and removes its sockets.
func (f *Fake) Kill(h hypervisor.Handle) (err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() { f.record("kill", h, err) }()
	if f.KillErr != nil {
		return f.KillErr
	}
	f.stop(h)
	return nil
}

func (f *Fake) stop(h hypervisor.Handle) {
	if vm := f.vm(h); vm != nil {
		vm.setState(hypervisor.Stopped)
		vm.hangUp()
	}
	if vm, ok := f.vms[h.PID]; ok && vm.handle.StartTime == h.StartTime {
		for _, other := range f.vms {
			if other != vm && other.state != hypervisor.Stopped && other.spec.Dir == vm.spec.Dir {
				return // another VM uses the directory now
			}
		}
		os.Remove(h.ControlSocket)
		os.Remove(h.AgentSocket)
	}
}

// DialAgent returns one end of a pipe whose other end the fake agent
// serves (agentmux.Basic, with the guest's agent key, plus an empty
// session list and the identity call: see fakeGuest) once the guest runs:
// a paused guest answers nothing until it is resumed. The pipe closes
// when the VM stops.
func (f *Fake) DialAgent(ctx context.Context, h hypervisor.Handle) (c net.Conn, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() { f.record("dial", h, err) }()
	if f.DialErr != nil {
		return nil, f.DialErr
	}
	vm := f.vm(h)
	if vm == nil {
		return nil, fmt.Errorf("fake: dialing the agent of pid %d: the VM is not running", h.PID)
	}
	client, server := net.Pipe()
	vm.conns = append(vm.conns, server)
	vm.mem.Channels++
	agent := &fakeAgent{f: f, vm: vm, health: f.Health, err: f.HealthErr, memoryMiB: vm.spec.MemoryMiB}
	running, done := vm.running, vm.done
	go func() {
		defer server.Close()
		select {
		case <-running:
		case <-done:
			return
		}
		g := &agentmux.Guest{
			Handler:       fakeGuest{agentmux.Basic(agent), agent},
			KeyFunc:       agent.key,
			AuthFailDelay: time.Millisecond,
			Dial:          agent.dial,
		}
		g.Serve(context.Background(), server)
	}()
	return client, nil
}

// fakeAgent is a Fake guest's agent; what it keeps lives in its VM's
// memory (vm.mem, under f.mu).
type fakeAgent struct {
	f         *Fake
	vm        *fakeVM
	health    agentproto.Health // the Fake's Health when the channel was dialled
	err       error
	memoryMiB int
}

// key is the guest's agent key now.
func (a *fakeAgent) key() []byte {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	return a.vm.mem.Key
}

// Health is the Fake's Health when it is set, else a plausible report
// from the guest's memory: its hostname and uptime.
func (a *fakeAgent) Health(context.Context) (agentproto.Health, error) {
	if a.err != nil {
		return agentproto.Health{}, a.err
	}
	h := a.health
	if h.Hostname == "" && h.Kernel == "" && h.RootMount == "" {
		a.f.mu.Lock()
		h = agentproto.Health{
			AgentVersion: "fake", BuildID: "fake", Hostname: a.vm.mem.Hostname, Kernel: "fake",
			UptimeMS: max(1, a.vm.uptimeMS()), Root: "ext4", RootMount: "/dev/vdb",
		}
		a.f.mu.Unlock()
	}
	h.Time = time.Now()
	return h, nil
}

// FakeGuest returns a Guest for running the suite against Fake: empty
// files where the boot files and disks go.
func FakeGuest(t testing.TB) Guest {
	t.Helper()
	dir := t.TempDir()
	p := func(name string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return Guest{
		Vmlinuz:  p("vmlinuz"),
		Vmlinux:  p("vmlinux"),
		Initrd:   p("initrd.img"),
		Root:     p("root.ext4"),
		Work:     p("work.ext4"),
		Cmdline:  "root=/dev/vda ro",
		InMemory: true,
	}
}

// ForgetStopped drops what the Fake keeps of its stopped VMs (their specs,
// as Launched reports them) and its call log (Calls, Ops), and returns how
// many VMs it forgot. A long run (a soak test) calls it so that the
// Fake's memory, which lives in the process that drives it, does not grow
// with every VM it ever launched. Running VMs are kept.
func (f *Fake) ForgetStopped() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for pid, vm := range f.vms {
		if vm.state == hypervisor.Stopped {
			delete(f.vms, pid)
			n++
		}
	}
	f.calls = nil
	return n
}
