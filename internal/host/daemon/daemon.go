// Package daemon is bangerd: it takes the instance lock, opens the store,
// reconciles what a previous run left behind, serves the versioned API on
// the owner-only socket, runs long operations, and shuts down gracefully
// when its context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/doctor"
	"github.com/bangerdev/banger/internal/host/eventhub"
	"github.com/bangerdev/banger/internal/host/ext4img"
	"github.com/bangerdev/banger/internal/host/guest"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker"
	"github.com/bangerdev/banger/internal/host/hypervisor/qemu"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/imagebuild"
	"github.com/bangerdev/banger/internal/host/journal"
	"github.com/bangerdev/banger/internal/host/localsock"
	"github.com/bangerdev/banger/internal/host/logrotate"
	"github.com/bangerdev/banger/internal/host/operation"
	"github.com/bangerdev/banger/internal/host/portfwd"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
)

// Options configure a daemon run.
type Options struct {
	Config *config.Config
	// ConfigFileFound says whether Config came from a file (for doctor).
	ConfigFileFound bool
	// AgentBin is the banger-agent companion binary; "" means the file named
	// banger-agent next to this executable.
	AgentBin string
	// Host is what doctor reads; nil means the real system.
	Host doctor.Host
	// Seams, for tests only, replace the hypervisor drivers and the host
	// network (see TestSeams); nil, as bangerd runs, uses the real ones.
	Seams *TestSeams
	// LogTo, when set, receives the log (as the journal wants it, see
	// package journal) instead of the log file: bangerd under systemd.
	LogTo io.Writer
	// ManagedBy names the service manager that started the daemon
	// ("systemd"), reported in its status so the CLI stops and restarts
	// it through that manager; "" when the CLI (or a user) started it.
	ManagedBy string
}

// Daemon is one running bangerd.
type Daemon struct {
	cfg       *config.Config
	opts      Options
	log       *slog.Logger
	store     *store.Store
	ops       *operation.Manager
	images    *image.Catalog
	builder   *imagebuild.Builder
	vms       *vm.Manager
	guest     *guest.Service
	ports     *portfwd.Manager // published ports (ports.go)
	events    *eventhub.Hub
	net       *network
	egress    *egressNet // nil unless the daemon is root and manages the network
	qemu      *qemu.Driver
	fc        *firecracker.Driver
	fcErr     error
	fcVersion string
	hvMu      sync.Mutex
	stats     statsSampler
	webUI     webListener
	// warmTried holds the image shapes vm.auto_warm began warming.
	warmTried sync.Map

	// confinedRoot: vm_user = "" was warned about (see confineHypervisors).
	confinedRoot bool

	host      doctor.Host
	started   time.Time
	build     buildinfo.Info
	exe       string
	exeStamp  string
	agentBin  string
	stop      context.CancelFunc
	stopCause string
}

// maxLogSize is the size past which the log file is rotated (to
// bangerd.log.1) while the daemon runs.
const maxLogSize = 16 << 20

// Run runs the daemon until ctx ends or a client asks it to shut down.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	// Everything the daemon writes (store, logs, VM files) is private to
	// its user.
	syscall.Umask(0o077)
	// The data, state and runtime directories hold what another local user
	// must not plant or read (images, the managed ssh key; store, lock,
	// log, VM files; socket, pid file): they must be this user's alone
	// before anything is created in them.
	for _, dir := range []string{cfg.Paths.DataDir, cfg.Paths.StateDir, cfg.Paths.RuntimeDir} {
		if err := localsock.EnsurePrivateDir(dir); err != nil {
			return err
		}
	}
	unlock, err := lockInstance(cfg.Paths)
	if err != nil {
		return err
	}
	defer unlock()
	pidFile := cfg.Paths.PIDFile()
	if err := localsock.WritePrivateFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		return err
	}
	defer os.Remove(pidFile)

	var log *slog.Logger
	if opts.LogTo != nil {
		log = slog.New(journal.Handler(opts.LogTo, cfg.SlogLevel()))
	} else {
		logFile, err := logrotate.Open(cfg.Paths.LogFile(), maxLogSize)
		if err != nil {
			return err
		}
		defer logFile.Close()
		log = slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	}

	exe, _ := os.Executable()
	d := &Daemon{
		cfg: cfg, opts: opts, log: log, started: time.Now(), build: buildinfo.Get(), exe: exe,
		host: opts.Host, agentBin: opts.AgentBin, exeStamp: buildinfo.FileStamp(exe),
	}
	if d.host == nil {
		d.host = doctor.System{}
	}
	if d.agentBin == "" {
		d.agentBin = filepath.Join(filepath.Dir(exe), "banger-agent")
	}
	log.Info("bangerd starting", "version", d.build.Version, "build_id", d.build.BuildID, "pid", os.Getpid(),
		"socket", cfg.Paths.Socket(), "store", cfg.Paths.DBFile())

	st, err := store.Open(ctx, cfg.Paths.DBFile())
	if err != nil {
		log.Error("opening store", "error", err)
		return err
	}
	defer st.Close()
	d.store = st
	d.images = &image.Catalog{
		Root: filepath.Join(cfg.Paths.DataDir, "images"), Store: st, Tools: ext4img.New(), AgentBin: d.agentBin, Log: log,
		Kernels: kernelStager{agentBin: d.agentBin}, AgentFiles: agentFiles,
	}
	d.builder = &imagebuild.Builder{
		Catalog: d.images, CacheDir: cfg.Paths.Cache(), PublicKey: publicKey(cfg), FetchKernel: fetchDebianKernel(log), Log: log,
	}
	if err := d.openVMs(ctx, log); err != nil {
		log.Error("opening the vm manager", "error", err)
		return err
	}
	if d.net != nil {
		defer d.net.Close()
	}
	if d.egress != nil {
		defer d.egress.Close()
	}
	defer d.vms.Close()
	d.openEvents()
	if err := d.reconcile(ctx); err != nil {
		log.Error("reconciling", "error", err)
		return err
	}
	d.openPorts(ctx)
	defer d.ports.Close()

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	d.stop = stop
	// Operations are canceled by the shutdown below, with its reason, not
	// by ctx ending: a canceled operation says who canceled it.
	opsCtx, stopOps := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopOps(nil)
	d.ops = operation.NewManager(opsCtx, st, log)
	d.ops.OnChange = d.events.Publish
	// A hypervisor that ends while we run (guest poweroff, crash, kill)
	// is recorded stopped within watchInterval, with its event.
	watched := make(chan struct{})
	go func() { defer close(watched); d.vms.Watch(ctx, watchInterval) }()
	defer func() { stop(); <-watched }()

	ln, err := localsock.Listen(cfg.Paths.Socket())
	if err != nil {
		return err
	}

	srv := &http.Server{
		Handler:           d.routes(),
		ConnContext:       withPeer,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("bangerd ready", "socket", cfg.Paths.Socket())
	if cfg.Web.Listen != "" {
		if _, err := d.startWeb(cfg.Web.Listen); err != nil {
			log.Error("web UI not started: `banger web` tries again", "listen", cfg.Web.Listen, "error", err)
		}
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		log.Error("serving", "error", err)
		return err
	}
	reason := d.stopCause
	if reason == "" {
		// signal.NotifyContext's cause names the signal
		// ("terminated signal received").
		reason = "signal"
		if c := context.Cause(ctx); c != nil && c != context.Canceled {
			reason = c.Error()
		}
	}
	log.Info("bangerd shutting down", "reason", reason)
	stopOps(&operation.Cancellation{By: "daemon shutdown (" + reason + ")"})
	// Stop accepting, let in-flight requests finish (streams end when their
	// operations are cancelled), then wait for the operations themselves.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := d.ops.Wait(shutdownCtx); err != nil {
		log.Warn("waiting for operations", "error", err)
	}
	// Event streams never end by themselves: end them, so that Shutdown
	// does not wait for them.
	d.events.Close()
	d.stopWeb(shutdownCtx)
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("closing connections", "error", err)
		srv.Close()
	}
	os.Remove(cfg.Paths.Socket())
	log.Info("bangerd stopped")
	return nil
}

// watchInterval is how often running VMs' hypervisors are checked.
const watchInterval = 2 * time.Second

// reconcile brings the store in line with reality after a previous run:
// an operation recorded as running cannot be running now.
func (d *Daemon) reconcile(ctx context.Context) error {
	ids, err := d.store.FailUnfinished(ctx, operation.InterruptedReason, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("marking interrupted operations: %w", err)
	}
	for _, id := range ids {
		d.log.Warn("operation interrupted by restart", "op", id)
	}
	findings, err := d.vms.Reconcile(ctx)
	if err != nil {
		d.log.Warn("reconciling vms", "error", err)
	}
	for _, f := range findings {
		if f.Action == "unexplained" {
			d.log.Warn("vm state cannot be explained", "vm", f.VM, "detail", f.Detail)
		}
	}
	tidied, err := d.vms.TidyWarm(ctx)
	for _, p := range tidied {
		d.log.Warn("removed what a crash left of warming an image, or a removed image's warm snapshots", "path", p)
	}
	if err != nil {
		d.log.Warn("tidying warm snapshots", "error", err)
	}
	if d.net != nil { // nil: TestSeams stand in for the host network
		if err := d.net.Tidy(ctx); err != nil {
			d.log.Warn("tidying the host network", "error", err)
		}
	}
	removed, err := d.images.CleanLeftovers(ctx)
	for _, p := range removed {
		d.log.Warn("removed what a crash left of an image operation", "path", p)
	}
	if err != nil {
		return fmt.Errorf("removing what a crash left of image operations: %w", err)
	}
	return nil
}

// openVMs wires the VM manager: host networking, the hypervisor drivers
// and the lifecycle.
func (d *Daemon) openVMs(ctx context.Context, log *slog.Logger) error {
	net, drivers, sel, err := d.openHost(ctx, log)
	if err != nil {
		return err
	}
	d.vms = &vm.Manager{
		Cfg: d.cfg, Store: d.store, Images: d.images, Net: net, Select: sel,
		Drivers: drivers, Tools: d.images.Tools, Log: log,
		PublicKey: publicKey(d.cfg),
	}
	if d.net != nil && os.Geteuid() == 0 {
		// Only a daemon that manages the host's network can enforce
		// egress policies; others refuse all but NAT (vm.Manager.Egress nil).
		d.egress = &egressNet{n: d.net}
		d.vms.Egress = d.egress
	}
	d.images.Warm = d.vms.WarmSnapshots
	if d.cfg.VM.AutoWarm {
		d.vms.AutoWarm = d.autoWarm
	}
	d.guest = &guest.Service{VMs: d.vms, Store: d.store}
	return nil
}

// openHost opens what VMs need of the host: its network and the
// hypervisor drivers, with the selector that picks one (or, in tests, the
// TestSeams that stand in for them).
func (d *Daemon) openHost(ctx context.Context, log *slog.Logger) (vm.Network, map[string]hypervisor.Hypervisor, vm.Selector, error) {
	if d.opts.Seams != nil {
		return d.opts.Seams.open(d)
	}
	net, err := openNetwork(d.cfg, d.store, log)
	if err != nil {
		return nil, nil, nil, err
	}
	d.net = net
	accel := qemu.AccelTCG
	if rec, _ := d.lastProbe(ctx); rec != nil && rec.Status == "booted" {
		accel = qemu.AccelKVM
	}
	d.qemu = &qemu.Driver{Bin: d.cfg.QEMUBin, Accel: accel, Log: log}
	drivers := map[string]hypervisor.Hypervisor{d.qemu.Name(): d.qemu}
	d.openFirecracker(ctx, log)
	if d.fc != nil {
		drivers[d.fc.Name()] = d.fc
	}
	return net, drivers, d.selectHypervisor, nil
}

// openFirecracker finds Firecracker (firecracker_bin, else PATH) and checks
// its version; when it is missing or too old the reason is kept for the
// errors and doctor.
func (d *Daemon) openFirecracker(ctx context.Context, log *slog.Logger) {
	bin := d.cfg.FirecrackerBin
	if bin == "" {
		found, err := exec.LookPath("firecracker")
		if err != nil {
			d.fcErr = fmt.Errorf("firecracker is not on PATH and firecracker_bin is not set")
			return
		}
		bin = found
	}
	fc, err := firecracker.New(bin, log)
	if err != nil {
		d.fcErr = err
		return
	}
	fc.Jailer = d.cfg.Jailer
	if v, err := firecracker.Version(ctx, bin); err == nil {
		d.fcVersion = "v" + v.String()
	}
	d.fc = fc
}

// lockInstance takes the daemon's two locks for its whole life: the
// instance lock on the state directory, so no two daemons share one store
// (whatever runtime directory each was given), and the socket lock on the
// runtime directory, so no two daemons displace each other's socket. The
// kernel drops both when the process dies, so a crashed daemon never blocks
// the next one.
func lockInstance(p config.Paths) (func(), error) {
	state, err := localsock.TryLock(p.InstanceLock())
	var held *localsock.HeldError
	if errors.As(err, &held) {
		pid, socket := holderOf(held.Note)
		return nil, fmt.Errorf("another bangerd is already running (pid %s, serving %s) with the state directory %s: one store has one daemon; use that one (run banger with the environment it was started with, so that it finds %s; `banger daemon stop` there stops it), or give this daemon a state_dir of its own",
			pid, socket, p.StateDir, socket)
	}
	if err != nil {
		return nil, fmt.Errorf("taking the instance lock: %w", err)
	}
	if err := state.SetNote(fmt.Sprintf("pid=%d\nsocket=%s", os.Getpid(), p.Socket())); err != nil {
		state.Release()
		return nil, err
	}
	sock, err := localsock.TryLock(p.SocketLock())
	if errors.As(err, &held) {
		state.Release()
		pid, _ := os.ReadFile(p.PIDFile())
		return nil, fmt.Errorf("another bangerd is already running (pid %s) for %s: use `banger daemon status` or `banger daemon stop`",
			trimNL(pid), p.RuntimeDir)
	}
	if err != nil {
		state.Release()
		return nil, fmt.Errorf("taking the socket lock: %w", err)
	}
	return func() { sock.Release(); state.Release() }, nil
}

// holderOf reads the pid and socket an instance lock's holder wrote into
// it ("unknown" for what it has not written yet).
func holderOf(note string) (pid, socket string) {
	pid, socket = "unknown", "an unknown socket"
	for _, line := range strings.Split(note, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "pid":
			pid = v
		case "socket":
			socket = v
		}
	}
	return pid, socket
}

func trimNL(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	if s == "" {
		return "unknown"
	}
	return s
}
