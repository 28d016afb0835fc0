// Package qemu is banger's QEMU driver: it turns a hypervisor.Spec into a
// QEMU command line (Args), starts QEMU detached from the daemon so a VM
// outlives a daemon restart, controls it over QMP (a small client of its
// own), keeps its serial console log bounded, and dials the guest agent
// over vhost-vsock or, where the host has none, a virtio-serial port.
//
// With Accel "kvm" the guest runs by default on the microvm machine with
// virtio-mmio devices and an uncompressed ELF kernel; with Accel "tcg"
// (software emulation, for hosts where KVM cannot boot a guest) on q35
// with virtio-pci devices and a bzImage. Driver.Machine overrides the
// choice; the tests run the conformance suite on both machines under TCG.
//
// Everything the driver needs to find a VM again is in its Handle and in
// the VM's runtime directory (Spec.Dir): qmp.sock, agent.sock, qemu.pid
// (locked while QEMU runs), qemu.stderr and console.log. A fresh Driver
// value, as after a daemon restart, controls a VM another one launched.
//
// Every QEMU runs under -sandbox (Sandbox). With Driver.User (a daemon
// running as root) QEMU starts as that unprivileged user, from an
// exec-only copy of its binary (so it is not dumpable), and can open no
// file of the VM itself: the daemon opens each one and passes the
// descriptor (Passed); the runtime directory and everything in it stay
// root's. Without it (a daemon running as a normal user) QEMU runs as
// that user and opens its files by path.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/localsock"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// DriverName is the name recorded in the handles this driver makes.
const DriverName = "qemu"

// DefaultBin is the QEMU system emulator Driver uses when Bin is empty.
const DefaultBin = "qemu-system-x86_64"

// DefaultVhostVsock is the device whose presence makes Launch give the
// guest a vhost-vsock device for the agent.
const DefaultVhostVsock = "/dev/vhost-vsock"

// DefaultLaunchTimeout bounds how long Launch waits for QMP to answer.
const DefaultLaunchTimeout = 10 * time.Second

// Driver launches and controls QEMU VMs. The zero value with Accel set
// works; its methods are safe for concurrent use.
type Driver struct {
	Bin   string // QEMU system emulator; DefaultBin when empty
	Accel string // AccelKVM or AccelTCG
	// Machine is the QEMU machine; MachineFor(Accel) when empty.
	Machine Machine
	Log     *slog.Logger
	// VhostVsock is the vhost-vsock device; DefaultVhostVsock when empty.
	// When it is missing or not usable, the agent talks over virtio-serial.
	VhostVsock string
	// LaunchTimeout bounds how long Launch waits for QMP to answer;
	// DefaultLaunchTimeout when 0.
	LaunchTimeout time.Duration
	// ConsoleTrimInterval is how often the console logs of the VMs this
	// driver launched or adopted are trimmed to their limit;
	// DefaultConsoleTrimInterval when 0.
	ConsoleTrimInterval time.Duration

	// User, when set, is the unprivileged user QEMU runs as (a daemon
	// running as root sets it): QEMU starts with its uid and gid and no
	// supplementary group but /dev/kvm's, and receives every file of the
	// VM as a descriptor the daemon opened (see Passed). Nil: QEMU runs as
	// the daemon's user and opens its files by path.
	User *hypervisor.VMUser

	exe     execOnly
	kernels sharedCopies

	keeperOnce sync.Once
	keeper     *hypervisor.LogKeeper
}

var _ hypervisor.Hypervisor = (*Driver)(nil)

// New returns a driver for the QEMU binary bin (DefaultBin when "") with
// accelerator accel (AccelKVM or AccelTCG).
func New(bin, accel string, log *slog.Logger) (*Driver, error) {
	d := &Driver{Bin: bin, Accel: accel, Log: log}
	if _, err := d.accel(); err != nil {
		return nil, err
	}
	if _, err := d.bin(); err != nil {
		return nil, err
	}
	return d, nil
}

// Name returns "qemu".
func (d *Driver) Name() string { return DriverName }

func (d *Driver) accel() (string, error) {
	switch d.Accel {
	case AccelKVM, AccelTCG:
		return d.Accel, nil
	}
	return "", fmt.Errorf("qemu: unknown accelerator %q: use %q where KVM can boot a guest (see banger doctor), %q otherwise", d.Accel, AccelKVM, AccelTCG)
}

func (d *Driver) machine(accel string) (Machine, error) {
	switch d.Machine {
	case "":
		return MachineFor(accel), nil
	case Microvm, Q35:
		return d.Machine, nil
	}
	return "", fmt.Errorf("qemu: unknown machine %q: use %q or %q, or leave it empty", d.Machine, Microvm, Q35)
}

func (d *Driver) bin() (string, error) {
	return hypervisor.LookBin(d.Bin, DefaultBin, func(bin string, err error) error {
		return fmt.Errorf("qemu: %s not found (%v): install QEMU (apt-get install qemu-system-x86) or configure the QEMU binary's path", bin, err)
	})
}

func (d *Driver) vhostVsock() string {
	if d.VhostVsock != "" {
		return d.VhostVsock
	}
	return DefaultVhostVsock
}

// agentTransport is vsock when the host offers vhost-vsock to this user.
func (d *Driver) agentTransport() hypervisor.AgentTransport {
	if unix.Access(d.vhostVsock(), unix.R_OK|unix.W_OK) == nil {
		return hypervisor.AgentVsock
	}
	return hypervisor.AgentSerial
}

// Launch starts QEMU for spec, detached in its own session so it outlives
// the daemon, and returns once QMP answers. On error nothing runs and the
// files Launch made in spec.Dir are gone; when QEMU itself failed, the
// error carries the end of its stderr.
func (d *Driver) Launch(ctx context.Context, spec hypervisor.Spec) (hypervisor.Handle, error) {
	return d.launch(ctx, spec, nil)
}

// launch is Launch and, with a state file, Restore: QEMU starts paused
// (-S) and loads the state from the file (-incoming fd:N), which the
// daemon opened read-only and QEMU inherits.
func (d *Driver) launch(ctx context.Context, spec hypervisor.Spec, state *os.File) (hypervisor.Handle, error) {
	accel, err := d.accel()
	if spec.Accel != "" {
		accel, err = (&Driver{Accel: spec.Accel}).accel()
	}
	if err != nil {
		return hypervisor.Handle{}, err
	}
	bin, err := d.bin()
	if err != nil {
		return hypervisor.Handle{}, err
	}
	machine, err := d.machine(accel)
	if err != nil {
		return hypervisor.Handle{}, err
	}
	if err := validate(spec, machine); err != nil {
		return hypervisor.Handle{}, fmt.Errorf("qemu: launching VM %s: %w", spec.ID, err)
	}
	p := PathsIn(spec.Dir)
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return hypervisor.Handle{}, fmt.Errorf("qemu: creating the VM's runtime directory: %w", err)
	}
	if pid, ok := runningIn(ctx, p); ok {
		return hypervisor.Handle{}, fmt.Errorf("qemu: launching VM %s: a QEMU (pid %d) already runs in %s: stop that VM first", spec.ID, pid, spec.Dir)
	}
	hypervisor.RemoveFiles(p.QMP, p.Agent, p.PID) // stale, from a QEMU that was killed

	transport := d.agentTransport()
	cmd := exec.Command(bin)
	// Fresh files, private to the user. QEMU's stderr is always the
	// daemon's; QEMU appends to the console log.
	files := []string{p.Stderr}
	var passed *passedFiles
	if d.User == nil {
		files = append(files, p.Console)
		cmd.Args = append(cmd.Args, Args(spec, accel, machine, transport)...)
		cmd.Dir = spec.Dir
		if state != nil {
			cmd.ExtraFiles = []*os.File{state}
			cmd.Args = append(cmd.Args, incomingArgs(3)...)
		}
	} else {
		passed, err = openPassed(spec, p, machine, transport, d.vhostVsock(), &d.kernels)
		if err != nil {
			hypervisor.RemoveFiles(p.Stderr, p.Console, p.QMP, p.Agent, p.PID)
			return hypervisor.Handle{}, fmt.Errorf("qemu: launching VM %s as %s: %w", spec.ID, d.User.Name, err)
		}
		defer passed.close()
		exe, dataDirs, err := d.exe.get(bin)
		if err != nil {
			hypervisor.RemoveFiles(p.Stderr, p.Console, p.QMP, p.Agent, p.PID)
			return hypervisor.Handle{}, fmt.Errorf("qemu: launching VM %s: %w", spec.ID, err)
		}
		for _, dir := range dataDirs {
			cmd.Args = append(cmd.Args, "-L", dir)
		}
		cmd.Args = append(cmd.Args, ArgsPassed(spec, accel, machine, transport, passed.fds)...)
		if state != nil {
			cmd.Args = append(cmd.Args, incomingArgs(3+len(passed.extra))...)
			passed.extra = append(passed.extra, state)
		}
		cmd.ExtraFiles = append(passed.extra, exe)
		// The child execs the copy through its own descriptor.
		cmd.Path = fmt.Sprintf("/proc/self/fd/%d", 2+len(cmd.ExtraFiles))
		cmd.Dir = "/"
		// Nothing of the daemon's environment.
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		var groups []uint32
		if accel == AccelKVM {
			if g, ok := hypervisor.DeviceGroup("/dev/kvm"); ok {
				groups = append(groups, g)
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: d.User.Credential(groups...)}
	}
	if accel == AccelTCG {
		d.log().Warn("QEMU runs this VM under software emulation (TCG) because KVM cannot boot a guest here: expect it to be slow", "vm", spec.ID)
	}
	proc, err := hypervisor.Start(hypervisor.Command{
		Name: "QEMU", Cmd: cmd, Files: files, Stderr: p.Stderr,
		Log: d.log(),
	})
	if err != nil {
		hypervisor.RemoveFiles(p.Stderr, p.Console, p.QMP, p.Agent, p.PID)
		var se *hypervisor.StartError
		if errors.As(err, &se) {
			return hypervisor.Handle{}, fmt.Errorf("qemu: starting %s: %w; check the QEMU binary", bin, se.Err)
		}
		return hypervisor.Handle{}, fmt.Errorf("qemu: launching VM %s: %w", spec.ID, err)
	}

	h := hypervisor.Handle{
		Driver:        DriverName,
		PID:           proc.PID,
		ControlSocket: p.QMP,
		Agent:         transport,
		ConsoleLog:    p.Console,
		ConsoleLimit:  spec.ConsoleLimit,
		Accel:         accel,
	}
	if transport == hypervisor.AgentVsock {
		h.AgentCID = CID(spec.ID)
	} else {
		h.AgentSocket = p.Agent
	}

	fail := func(err error) (hypervisor.Handle, error) {
		proc.Abort()
		hypervisor.RemoveFiles(p.QMP, p.Agent, p.PID, p.Console)
		return hypervisor.Handle{}, fmt.Errorf("qemu: launching VM %s: %w", spec.ID, err)
	}
	if passed != nil {
		if err := passed.writePID(h.PID); err != nil {
			return fail(err)
		}
	}
	if err := d.waitQMP(ctx, proc, p.QMP); err != nil {
		if errors.Is(err, hypervisor.ErrExited) {
			return fail(diskLockHint(proc.ExitError()))
		}
		if tail := proc.StderrTail(); tail != hypervisor.NoStderr {
			err = fmt.Errorf("%w; QEMU said: %s", err, tail)
		}
		return fail(err)
	}
	st, err := hypervisor.ProcessStartTime(h.PID)
	if err != nil {
		return fail(fmt.Errorf("QEMU exited right after starting: %s", proc.StderrTail()))
	}
	h.StartTime = st
	if state != nil {
		if err := d.waitIncoming(ctx, proc, p.QMP); err != nil {
			return fail(err)
		}
	}
	d.keepConsole(h)
	user := "the daemon's user"
	if d.User != nil {
		user = d.User.Name
	}
	d.log().Info("QEMU started", "vm", spec.ID, "pid", h.PID, "accel", accel, "agent", transport, "user", user)
	return h, nil
}

// waitQMP waits until QMP at path answers query-status from proc, proc
// exits (hypervisor.ErrExited), the launch timeout passes or ctx ends.
func (d *Driver) waitQMP(ctx context.Context, proc *hypervisor.Process, path string) error {
	timeout := d.LaunchTimeout
	if timeout <= 0 {
		timeout = DefaultLaunchTimeout
	}
	return proc.WaitReady(ctx, timeout, "QMP", func(ctx context.Context) error {
		q, err := dialQMP(ctx, path)
		if err != nil {
			return err
		}
		defer q.Close()
		if _, err := q.status(); err != nil {
			return err
		}
		if peer, err := q.peerPID(); err == nil && peer != proc.PID {
			return fmt.Errorf("QMP socket %s is served by pid %d, not the QEMU just started (%d)", path, peer, proc.PID)
		}
		return nil
	})
}

// validate checks that the files the spec names exist, so the error names
// the missing one instead of QEMU's exit status.
func validate(spec hypervisor.Spec, m Machine) error {
	if spec.ID == "" {
		return errors.New("the spec has no VM id")
	}
	if spec.Dir == "" || !filepath.IsAbs(spec.Dir) {
		return fmt.Errorf("runtime directory %q is not an absolute path", spec.Dir)
	}
	for _, s := range SocketPaths(spec.Dir) {
		if len(s) > maxSocketPath {
			return fmt.Errorf("socket path %s is %d bytes, over the %d a unix socket allows: use a shorter runtime directory", s, len(s), maxSocketPath)
		}
	}
	kernel, kind := spec.Boot.Vmlinuz, "bzImage (Boot.Vmlinuz)"
	if m == Microvm {
		kernel, kind = spec.Boot.Vmlinux, "uncompressed ELF vmlinux (Boot.Vmlinux)"
	}
	if kernel == "" {
		return fmt.Errorf("QEMU's %s machine boots a %s and the spec has none: stage the image's kernel again", m, kind)
	}
	if err := hypervisor.RegularFile(kernel); err != nil {
		return fmt.Errorf("kernel %s: %w: stage the image's kernel again", kernel, err)
	}
	if spec.Boot.Initrd != "" {
		if err := hypervisor.RegularFile(spec.Boot.Initrd); err != nil {
			return fmt.Errorf("initrd %s: %w: stage the image's kernel again", spec.Boot.Initrd, err)
		}
	}
	for _, disk := range spec.Disks {
		if err := hypervisor.RegularFile(disk.Path); err != nil {
			return fmt.Errorf("disk %s (%s): %w: recreate the VM's disks", disk.ID, disk.Path, err)
		}
	}
	if n := spec.NIC; n != nil {
		if n.TAP == "" {
			return errors.New("the NIC has no TAP device: take one from the pool")
		}
		if _, err := net.ParseMAC(n.MAC); err != nil {
			return fmt.Errorf("NIC MAC %q: %w", n.MAC, err)
		}
	}
	return nil
}

// maxSocketPath is the longest path a sockaddr_un holds.
const maxSocketPath = localsock.MaxPath

// SocketPaths are the Unix sockets QEMU makes in a VM's runtime directory
// dir: each must fit in maxSocketPath, which the config's state_dir is
// held to as well.
func SocketPaths(dir string) []string {
	p := PathsIn(dir)
	return []string{p.QMP, p.Agent}
}

// Status asks QEMU for its run state: "running" is Running, every other
// state of a live QEMU (paused, prelaunch, guest-panicked, ...) Paused; a
// process that is gone is Stopped.
func (d *Driver) Status(ctx context.Context, h hypervisor.Handle) (hypervisor.State, error) {
	st, err := hypervisor.StateOf(h, func() (hypervisor.State, error) {
		q, err := d.qmp(ctx, h)
		if err != nil {
			return "", err
		}
		defer q.Close()
		s, err := q.status()
		if err != nil {
			return "", err
		}
		if s == "running" {
			return hypervisor.Running, nil
		}
		return hypervisor.Paused, nil
	})
	if err != nil {
		return "", fmt.Errorf("qemu: %w", err)
	}
	return st, nil
}

// qmp opens a QMP session with h's QEMU and checks that the socket is
// served by h.PID.
func (d *Driver) qmp(ctx context.Context, h hypervisor.Handle) (*qmpConn, error) {
	q, err := dialQMP(ctx, h.ControlSocket)
	if err != nil {
		return nil, err
	}
	if pid, err := q.peerPID(); err == nil && pid != h.PID {
		q.Close()
		return nil, fmt.Errorf("%w: QMP socket %s is served by pid %d, not %d", hypervisor.ErrNotOurs, h.ControlSocket, pid, h.PID)
	}
	return q, nil
}

// Adopt checks that h.PID is alive with the recorded start time and that
// its QMP socket answers, then trims the console log and keeps it bounded.
func (d *Driver) Adopt(ctx context.Context, h hypervisor.Handle) error {
	err := hypervisor.VerifyOurs(ctx, h, "QMP socket", func(ctx context.Context) error {
		q, err := d.qmp(ctx, h)
		if err != nil {
			return err
		}
		defer q.Close()
		_, err = q.status()
		return err
	})
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	if _, err := TrimConsole(h.ConsoleLog, h.ConsoleLimit); err != nil {
		d.log().Warn("cannot bound the console log", "log", h.ConsoleLog, "err", err)
	}
	d.keepConsole(h)
	return nil
}

// Shutdown presses the ACPI power button (system_powerdown) and waits for
// QEMU to exit until ctx ends; then it kills QEMU's process group. It
// removes the VM's sockets and pid file. A VM that is already gone is
// cleaned up and reported as success.
func (d *Driver) Shutdown(ctx context.Context, h hypervisor.Handle) error {
	return hypervisor.ShutdownVM(ctx, h, DriverName, d.log(), func() error {
		q, err := d.qmp(ctx, h)
		if err != nil {
			return err
		}
		defer q.Close()
		return q.powerdown()
	}, d.cleanup)
}

// Kill stops QEMU at once (SIGKILL to its process group) and removes the
// VM's sockets and pid file. A VM that is already gone is cleaned up and
// reported as success.
func (d *Driver) Kill(h hypervisor.Handle) error { return hypervisor.KillVM(h, DriverName, d.cleanup) }

// cleanup runs once h's QEMU has ended: it removes h's sockets and pid
// file, unless another QEMU has taken over the runtime directory since,
// and stops trimming the console log (trimming it a last time).
func (d *Driver) cleanup(h hypervisor.Handle) {
	defer d.stopKeeping(h)
	if h.ControlSocket == "" {
		return
	}
	pidFile := filepath.Join(filepath.Dir(h.ControlSocket), PIDFile)
	if holder := lockHolder(pidFile); holder != 0 && holder != h.PID {
		d.log().Warn("another QEMU runs in the VM's directory; leaving its sockets", "pid", holder, "dir", filepath.Dir(pidFile))
		return
	}
	hypervisor.RemoveFiles(h.ControlSocket, h.AgentSocket, pidFile)
}

// DialAgent connects to the guest agent: the virtio-serial port's unix
// socket, or AF_VSOCK to the guest's CID. A virtio-serial port serves one
// host connection at a time; a second one waits until the first closes.
func (d *Driver) DialAgent(ctx context.Context, h hypervisor.Handle) (net.Conn, error) {
	switch h.Agent {
	case hypervisor.AgentSerial:
		var dialer net.Dialer
		c, err := dialer.DialContext(ctx, "unix", h.AgentSocket)
		if err != nil {
			return nil, fmt.Errorf("qemu: dialing the agent's virtio-serial socket: %w", err)
		}
		return c, nil
	case hypervisor.AgentVsock:
		c, err := dialVsock(ctx, h.AgentCID, agentproto.VsockPort)
		if err != nil {
			return nil, fmt.Errorf("qemu: dialing the agent: %w", err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("qemu: the handle's agent transport %q is not one QEMU offers (%s or %s): was it made by another driver?", h.Agent, hypervisor.AgentSerial, hypervisor.AgentVsock)
}

// runningIn reports a QEMU that still runs in the directory of p: the
// holder of the pid file's lock, or whoever answers on the QMP socket.
func runningIn(ctx context.Context, p Paths) (int, bool) {
	if pid := lockHolder(p.PID); pid != 0 {
		return pid, true
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	q, err := dialQMP(ctx, p.QMP)
	if err != nil {
		return 0, false
	}
	defer q.Close()
	pid, _ := q.peerPID()
	return pid, true
}

// diskLockHint adds the fix to QEMU's refusal of a disk another QEMU
// holds ("Failed to get "write" lock" / "Failed to get shared "write"
// lock"): QEMU's image locking lets several VMs share a read-only disk
// but refuses a read-write user beside them, and a read-only user beside
// a writer.
func diskLockHint(err error) error {
	if !strings.Contains(err.Error(), `"write" lock`) {
		return err
	}
	return fmt.Errorf("%w: a disk of this VM is in use by another running VM (VMs may share a disk only when all attach it read-only): stop that VM first", err)
}

// lockHolder returns the PID holding a lock on path (QEMU locks its pid
// file while it runs), -1 when a lock's holder is not known yet, or 0.
func lockHolder(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil || lk.Type == unix.F_UNLCK {
		return 0
	}
	if lk.Pid == -1 {
		// An open file description lock, which the driver takes for a
		// QEMU running as the VM user (see openPassed): the file holds
		// the pid.
		b := make([]byte, 16)
		n, _ := f.ReadAt(b, 0)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
		if err != nil || pid <= 0 {
			return -1
		}
		return pid
	}
	return int(lk.Pid)
}
