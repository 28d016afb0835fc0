// Package firecracker is banger's Firecracker driver: it starts Firecracker
// detached from the daemon (optionally under the jailer) so a VM outlives a
// daemon restart, configures and boots the microVM through Firecracker's
// HTTP API on a unix socket (a small client of its own, gated on the
// release it finds), keeps the serial console log bounded, reaches the
// guest agent over hybrid vsock, and stops, kills and re-adopts VMs from
// their hypervisor.Handle. It is a hypervisor.Snapshotter too: Save writes
// a paused VM's state with PUT /snapshot/create, Restore loads it into a
// fresh Firecracker with PUT /snapshot/load (snapshotter.go says what a
// restore may change, and why clones need the jailer).
//
// Everything the driver needs to find a VM again is in its Handle and in
// the VM's runtime directory (Spec.Dir): fc.sock (the API), vsock.sock
// (hybrid vsock), console.log (the serial console, Firecracker's stdout),
// firecracker.log, firecracker.metrics and firecracker.stderr. A jailed
// VM keeps its sockets, log and metrics in its chroot instead. A fresh
// Driver value, as after a daemon restart, controls a VM another one
// launched.
//
// Kernel suitability (an uncompressed ELF vmlinux with virtio-mmio devices
// described on the command line or, from Firecracker v1.8.0, in ACPI) is
// the caller's to check.
package firecracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// DriverName is the name recorded in the handles this driver makes.
const DriverName = "firecracker"

// DefaultBin is the Firecracker binary Driver uses when Bin is empty.
const DefaultBin = "firecracker"

// DefaultLaunchTimeout bounds how long Launch waits for the API socket to
// answer.
const DefaultLaunchTimeout = 10 * time.Second

// Owner is a user and group to give files to.
type Owner struct{ UID, GID int }

// Driver launches and controls Firecracker VMs. The zero value works with
// firecracker on PATH; its methods are safe for concurrent use.
type Driver struct {
	// Bin is the Firecracker binary; DefaultBin (looked up in PATH) when
	// empty.
	Bin string
	// Jailer runs Firecracker under the jailer (JailerBin, or
	// DefaultJailerBin when that is empty), configured by Jail. Setting
	// JailerBin enables the jailer too. The jailer needs root.
	Jailer    bool
	JailerBin string
	Jail      JailConfig
	Log       *slog.Logger
	// SocketOwner, when set, receives the VM's API and vsock sockets
	// after launch: a daemon running as root hands the sockets of a
	// user's VM to that user.
	SocketOwner *Owner
	// GiveTAP hands a jailed VM's TAP to the jail's user, who opens it by
	// name (the kernel lets only a TAP's owner, or anyone when it has
	// none, attach it); hypervisor.GiveTAP when nil.
	GiveTAP func(name string, uid, gid int) error
	// LaunchTimeout bounds how long Launch waits for the API socket;
	// DefaultLaunchTimeout when 0.
	LaunchTimeout time.Duration
	// ConsoleTrimInterval is how often the console logs of the VMs this
	// driver launched or adopted are trimmed to their limit;
	// DefaultConsoleTrimInterval when 0.
	ConsoleTrimInterval time.Duration

	keeperOnce sync.Once
	keeper     *hypervisor.LogKeeper
}

var _ hypervisor.Hypervisor = (*Driver)(nil)

// New returns a driver for the Firecracker binary bin (DefaultBin when
// ""), after checking that it runs and is a release the driver drives
// (MinVersion or newer).
func New(bin string, log *slog.Logger) (*Driver, error) {
	d := &Driver{Bin: bin, Log: log}
	if _, _, err := d.binVersion(context.Background()); err != nil {
		return nil, err
	}
	return d, nil
}

// Name returns "firecracker".
func (d *Driver) Name() string { return DriverName }

func (d *Driver) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Driver) bin() (string, error) {
	p, err := hypervisor.LookBin(d.Bin, DefaultBin, func(bin string, err error) error {
		return fmt.Errorf("firecracker: %s not found (%v): install Firecracker (https://github.com/firecracker-microvm/firecracker/releases) or configure firecracker_bin", bin, err)
	})
	if err != nil {
		return "", err
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p, nil
}

// binVersion finds the binary and its release, and refuses releases older
// than MinVersion. It runs `firecracker --version` every time: the binary
// may be upgraded while the daemon runs.
func (d *Driver) binVersion(ctx context.Context) (string, *semver.Version, error) {
	bin, err := d.bin()
	if err != nil {
		return "", nil, err
	}
	v, err := Version(ctx, bin)
	if err != nil {
		return "", nil, fmt.Errorf("firecracker: %w: is %s a Firecracker binary?", err, bin)
	}
	if err := checkVersion(bin, v); err != nil {
		return "", nil, fmt.Errorf("firecracker: %w", err)
	}
	return bin, v, nil
}

func (d *Driver) jailed() bool { return d.Jailer || d.JailerBin != "" }

func (d *Driver) jailerBin() (string, error) {
	return hypervisor.LookBin(d.JailerBin, DefaultJailerBin, func(bin string, err error) error {
		return fmt.Errorf("firecracker: jailer %s not found (%v): install the jailer of the same Firecracker release or turn the jailer off", bin, err)
	})
}

// layout is where one VM's files are, on the host.
type layout struct {
	Dir                           string
	API, Vsock                    string // sockets
	Console, Stderr, Log, Metrics string
	// DiskLinks are the symbolic links in Dir by which an unjailed
	// Firecracker opens the disks (see layoutFor).
	DiskLinks []diskLink
	jail      *jailPlan
}

// diskLink is a symbolic link Name in the runtime directory to the disk
// file Target.
type diskLink struct{ Name, Target string }

func (d *Driver) layoutFor(spec hypervisor.Spec, fcBin string) (layout, fcPaths, error) {
	l := layout{
		Dir:     spec.Dir,
		API:     filepath.Join(spec.Dir, APISocket),
		Vsock:   filepath.Join(spec.Dir, VsockSocket),
		Console: filepath.Join(spec.Dir, ConsoleFile),
		Stderr:  filepath.Join(spec.Dir, StderrFile),
		Log:     filepath.Join(spec.Dir, LogFile),
		Metrics: filepath.Join(spec.Dir, MetricsFile),
	}
	// Firecracker runs in spec.Dir and is given the disks and the vsock
	// socket by paths relative to it, the disks through symbolic links
	// there: a snapshot records the paths its devices were opened by and a
	// restore reopens them as they are, relative ones from the restoring
	// Firecracker's directory, so a state restores into another VM, whose
	// directory links its own disks (docs/snapshotting/snapshot-support.md:
	// "the same relative paths"). Under the jailer the chroot does the
	// same.
	fp := fcPaths{Log: l.Log, Metrics: l.Metrics, Kernel: spec.Boot.Vmlinux, Initrd: spec.Boot.Initrd, Vsock: VsockSocket}
	for _, disk := range spec.Disks {
		target, err := filepath.Abs(disk.Path)
		if err != nil {
			return layout{}, fcPaths{}, err
		}
		name := diskFileName(disk.ID)
		l.DiskLinks = append(l.DiskLinks, diskLink{Name: name, Target: target})
		fp.Disks = append(fp.Disks, name)
	}
	sockDir := spec.Dir
	if d.jailed() {
		cgv := d.Jail.CgroupVersion
		if cgv == 0 {
			cgv = detectCgroupVersion()
		}
		plan, err := planJail(d.Jail, fcBin, spec, cgv)
		if err != nil {
			return layout{}, fcPaths{}, err
		}
		plan.Log = d.log()
		l.jail = &plan
		sockDir = plan.Root
		l.API = filepath.Join(plan.Root, APISocket)
		l.Vsock = filepath.Join(plan.Root, VsockSocket)
		l.Log = filepath.Join(plan.Root, LogFile)
		l.Metrics = filepath.Join(plan.Root, MetricsFile)
		l.DiskLinks = nil
		fp = plan.fcPaths(spec)
	}
	if err := checkSocketPaths(SocketPaths(sockDir)...); err != nil {
		return layout{}, fcPaths{}, err
	}
	return l, fp, nil
}

// Launch starts Firecracker for spec in its own session, so it outlives
// the daemon, configures the microVM through the API and starts it; it
// returns once Firecracker accepted InstanceStart, without waiting for
// the guest to boot. On error nothing runs and the files Launch made are
// gone; when Firecracker refused a request the error names the step
// ("configuring drives: Firecracker said: ...").
func (d *Driver) Launch(ctx context.Context, spec hypervisor.Spec) (hypervisor.Handle, error) {
	fail0 := func(err error) (hypervisor.Handle, error) {
		return hypervisor.Handle{}, fmt.Errorf("firecracker: launching VM %s: %w", spec.ID, err)
	}
	if err := validate(spec); err != nil {
		return fail0(err)
	}
	bin, version, err := d.binVersion(ctx)
	if err != nil {
		return hypervisor.Handle{}, err
	}
	l, fp, err := d.layoutFor(spec, bin)
	if err != nil {
		return fail0(err)
	}
	h, err := d.start(ctx, spec, bin, l, launchCalls(spec, fp, version))
	if err != nil {
		return fail0(err)
	}
	d.log().Info("Firecracker started", "vm", spec.ID, "pid", h.PID, "version", version.String(), "jailed", l.jail != nil)
	return h, nil
}

// start runs Firecracker (under the jailer when l has a jail), waits for
// its API and sends calls in order: a launch's configuration or a
// restore's snapshot load. On error nothing runs and the files it made,
// the sockets and the jail are gone.
func (d *Driver) start(ctx context.Context, spec hypervisor.Spec, bin string, l layout, calls []call) (hypervisor.Handle, error) {
	argv := []string{bin, "--api-sock", filepath.Join(spec.Dir, APISocket), "--id", spec.ID}
	if l.jail != nil {
		if os.Geteuid() != 0 {
			return hypervisor.Handle{}, errors.New("the jailer needs root: run the daemon as root or turn the jailer off")
		}
		jb, err := d.jailerBin()
		if err != nil {
			return hypervisor.Handle{}, err
		}
		argv = append([]string{jb}, l.jail.Args...)
	}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return hypervisor.Handle{}, fmt.Errorf("creating the runtime directory: %w", err)
	}
	if pid, ok := servedBy(ctx, l.API); ok {
		return hypervisor.Handle{}, fmt.Errorf("a Firecracker (pid %d) already runs with the API socket %s: stop that VM first", pid, l.API)
	}
	// Left by a Firecracker that was killed: Firecracker cannot bind over
	// them (the vsock socket must not exist when PUT /vsock comes).
	removeSockets(l.API, l.Vsock)
	if err := makeDiskLinks(l.Dir, l.DiskLinks); err != nil {
		return hypervisor.Handle{}, err
	}
	if l.jail != nil {
		if err := l.jail.prepare(d.Jail); err != nil {
			return hypervisor.Handle{}, err
		}
		if spec.NIC != nil {
			give := d.GiveTAP
			if give == nil {
				give = hypervisor.GiveTAP
			}
			if err := give(spec.NIC.TAP, d.Jail.UID, d.Jail.GID); err != nil {
				removeJail(l.jail.Dir, d.Jail.ParentCgroup)
				return hypervisor.Handle{}, err
			}
		}
	}
	// Fresh files, private to the user. Firecracker before v1.14 does not
	// create the log and metrics files, so the driver always does.
	made := []string{l.Console, l.Stderr}
	if l.jail == nil {
		made = append(made, l.Log, l.Metrics)
	}
	removeJailOf := func() {
		if l.jail != nil {
			removeJail(l.jail.Dir, d.Jail.ParentCgroup)
		}
		removeDiskLinks(l.Dir, l.DiskLinks)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = spec.Dir
	proc, err := hypervisor.Start(hypervisor.Command{
		Name: "Firecracker", Cmd: cmd, Files: made, Stdout: l.Console, Stderr: l.Stderr,
		Log: d.log(),
	})
	if err != nil {
		removeJailOf()
		return hypervisor.Handle{}, err
	}

	h := hypervisor.Handle{
		Driver:        DriverName,
		PID:           proc.PID,
		ControlSocket: l.API,
		Agent:         hypervisor.AgentHybridVsock,
		AgentSocket:   l.Vsock,
		AgentCID:      GuestCID,
		ConsoleLog:    l.Console,
		ConsoleLimit:  spec.ConsoleLimit,
		Accel:         "kvm",
	}
	fail := func(err error) (hypervisor.Handle, error) {
		proc.Abort()
		removeSockets(l.API, l.Vsock)
		removeJailOf()
		return hypervisor.Handle{}, err
	}
	api := &apiClient{socket: l.API, pid: h.PID}
	if err := d.waitAPI(ctx, proc, api); err != nil {
		if errors.Is(err, hypervisor.ErrExited) {
			return fail(proc.ExitError())
		}
		return fail(err)
	}
	st, err := hypervisor.ProcessStartTime(h.PID)
	if err != nil {
		return fail(proc.ExitError())
	}
	h.StartTime = st
	for _, c := range calls {
		if err := api.do(ctx, c.Method, c.Path, c.Body, nil); err != nil {
			select {
			case <-proc.Exited():
				return fail(fmt.Errorf("%s: %v; %w", c.Step, err, proc.ExitError()))
			default:
			}
			return fail(fmt.Errorf("%s: %w", c.Step, err))
		}
	}
	if o := d.SocketOwner; o != nil {
		for _, p := range []string{l.API, l.Vsock} {
			if err := os.Chown(p, o.UID, o.GID); err != nil {
				return fail(fmt.Errorf("giving %s to %d:%d: %w", p, o.UID, o.GID, err))
			}
		}
	}
	d.keepConsole(h)
	return h, nil
}

// makeDiskLinks replaces the disk links in dir. It never removes anything
// but a symbolic link: a file of that name is refused.
func makeDiskLinks(dir string, links []diskLink) error {
	for _, dl := range links {
		p := filepath.Join(dir, dl.Name)
		if fi, err := os.Lstat(p); err == nil {
			if fi.Mode()&os.ModeSymlink == 0 {
				return fmt.Errorf("%s is in the way of the disk link Firecracker opens the disk %s by: move it out of the VM's directory", p, dl.Target)
			}
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("replacing the disk link %s: %w", p, err)
			}
		}
		if err := os.Symlink(dl.Target, p); err != nil {
			removeDiskLinks(dir, links)
			return fmt.Errorf("linking the disk %s: %w", dl.Target, err)
		}
	}
	return nil
}

// removeDiskLinks removes the disk links in dir.
func removeDiskLinks(dir string, links []diskLink) {
	for _, dl := range links {
		removeLink(filepath.Join(dir, dl.Name))
	}
}

// removeLink removes path if it is a symbolic link.
func removeLink(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		os.Remove(path)
	}
}

// waitAPI waits until the API socket answers GET / from proc, proc exits
// (hypervisor.ErrExited), the launch timeout passes or ctx ends.
func (d *Driver) waitAPI(ctx context.Context, proc *hypervisor.Process, api *apiClient) error {
	timeout := d.LaunchTimeout
	if timeout <= 0 {
		timeout = DefaultLaunchTimeout
	}
	return proc.WaitReady(ctx, timeout, "the API socket", func(ctx context.Context) error {
		_, err := api.instanceInfo(ctx)
		return err
	})
}

// servedBy reports a process that answers on the unix socket at path.
func servedBy(ctx context.Context, path string) (int, bool) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	conn, err := (&apiClient{socket: path}).dial(ctx)
	if err != nil {
		return 0, false
	}
	defer conn.Close()
	pid, _ := hypervisor.PeerPID(conn)
	return pid, true
}

// Status asks Firecracker for the instance state: "Running" is Running,
// "Paused" and "Not started" are Paused; a process that is gone is
// Stopped.
func (d *Driver) Status(ctx context.Context, h hypervisor.Handle) (hypervisor.State, error) {
	st, err := hypervisor.StateOf(h, func() (hypervisor.State, error) {
		info, err := (&apiClient{socket: h.ControlSocket, pid: h.PID}).instanceInfo(ctx)
		if err != nil {
			return "", err
		}
		if info.State == stateRunning {
			return hypervisor.Running, nil
		}
		return hypervisor.Paused, nil
	})
	if err != nil {
		return "", fmt.Errorf("firecracker: %w", err)
	}
	return st, nil
}

// Adopt checks that h.PID is alive with the recorded start time and that
// its API socket answers GET /, then trims the console log and keeps it
// bounded.
func (d *Driver) Adopt(ctx context.Context, h hypervisor.Handle) error {
	err := hypervisor.VerifyOurs(ctx, h, "API socket", func(ctx context.Context) error {
		_, err := (&apiClient{socket: h.ControlSocket, pid: h.PID}).instanceInfo(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("firecracker: %w", err)
	}
	if err := d.boundFiles(h); err != nil {
		d.log().Warn("cannot bound the VM's logs", "err", err)
	}
	d.keepConsole(h)
	return nil
}

// Kill stops Firecracker at once (SIGKILL to its process group) and
// removes the VM's sockets (and its jail). A VM that is already gone is
// cleaned up and reported as success.
func (d *Driver) Kill(h hypervisor.Handle) error { return hypervisor.KillVM(h, DriverName, d.cleanup) }

// Shutdown sends Ctrl-Alt-Del to the guest (x86's SendCtrlAltDel action:
// the guest reboots, and a reboot ends Firecracker) and waits for the
// process to exit until ctx ends; then it kills Firecracker's process
// group. It removes the VM's sockets (and its jail). A VM that is already
// gone is cleaned up and reported as success.
func (d *Driver) Shutdown(ctx context.Context, h hypervisor.Handle) error {
	return hypervisor.ShutdownVM(ctx, h, DriverName, d.log(), func() error {
		return (&apiClient{socket: h.ControlSocket, pid: h.PID}).action(ctx, "SendCtrlAltDel")
	}, d.cleanup)
}

// cleanup removes h's sockets — the API socket, the vsock socket and the
// listeners for guest-initiated vsock connections (vsock.sock_<port>) —
// and the VM's jail (or, unjailed, its disk links), unless another
// Firecracker serves the API socket since; it runs once h's Firecracker has ended, and stops bounding its
// logs (bounding them a last time).
func (d *Driver) cleanup(h hypervisor.Handle) {
	defer d.stopKeeping(h)
	if h.ControlSocket == "" {
		return
	}
	if pid, ok := servedBy(context.Background(), h.ControlSocket); ok && pid != h.PID {
		d.log().Warn("another process serves the VM's API socket; leaving its sockets", "pid", pid, "socket", h.ControlSocket)
		return
	}
	removeSockets(h.ControlSocket, h.AgentSocket)
	if dir := jailOf(d.Jail.chrootBase(), h.ControlSocket); dir != "" {
		if err := removeJail(dir, d.Jail.ParentCgroup); err != nil {
			d.log().Warn("cannot remove the VM's jail", "err", err)
		}
		return
	}
	// The disk links of an unjailed VM, in its directory.
	links, _ := filepath.Glob(filepath.Join(globEscape(filepath.Dir(h.ControlSocket)), diskFileName("*")))
	for _, l := range links {
		removeLink(l)
	}
}

// removeSockets removes the API socket and the vsock socket with its
// listeners.
func removeSockets(api, vsock string) {
	hypervisor.RemoveFiles(api, vsock)
	if vsock != "" {
		listeners, _ := filepath.Glob(globEscape(vsock) + "_*")
		hypervisor.RemoveFiles(listeners...)
	}
}

// globEscape escapes the glob metacharacters of a literal path.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
