// Package hvtest is the conformance suite every hypervisor driver must
// pass: Run launches real guests through a driver and checks the
// behaviour the VM lifecycle code relies on (launch, status, agent
// health, adoption after a daemon restart, refusing a second QEMU in a
// busy directory, clean shutdown, kill, launch errors that name the
// missing file and leave nothing behind, two VMs sharing one read-only
// root disk at once without changing it, and, for a driver that is a
// hypervisor.Snapshotter, saving a VM's state and restoring it: see
// snapshot.go).
//
// It also provides the guests to run it with (LightGuest: Debian's cloud
// kernel, an initramfs whose /init is banger-agent, and a tiny root
// filesystem whose init serves the agent and honours the ACPI power
// button) and Fake, a hand-written in-memory hypervisor for unit tests of
// code that uses a hypervisor.Hypervisor.
package hvtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// Guest is a bootable guest for the suite. Its agent must serve health on
// the channel the driver offers, and its init must mount the second disk
// (the work disk) at /root.
type Guest struct {
	Vmlinuz string // compressed bzImage
	Vmlinux string // the same kernel as an uncompressed ELF
	Initrd  string
	// Root is an ext4 root filesystem image. Every launch gets it
	// read-only (/dev/vda), so Cmdline should mount it "ro".
	Root string
	// Work is the work disk image; every launch gets its own copy,
	// read-write, as /dev/vdb.
	Work string
	// Cmdline is banger's part of the kernel command line.
	Cmdline string
	// PowerOffMarker, when set, is what the guest prints on its console
	// when it powers off because of the ACPI power button; the suite
	// then requires it after Shutdown, which proves the shutdown was
	// clean rather than a kill at the deadline.
	PowerOffMarker string
	// MemoryMiB is the guest's memory; 256 when 0.
	MemoryMiB int
	// ConsoleLimit bounds the console log; 8 KiB when 0, less than a
	// kernel prints while booting, so the bound is exercised.
	ConsoleLimit int64
	// BootTimeout bounds the wait for the agent's health; 2 minutes when 0.
	BootTimeout time.Duration
	// InMemory says the driver runs no OS processes (Fake): the suite
	// skips its checks of the process table.
	InMemory bool
	// ReadOnlyProbe is a command the guest's agent runs, with a disk's
	// device name ("vda") appended, that prints how the guest sees that
	// disk: "ro=<the kernel's read-only flag> write=<ok, or why a write
	// failed>". Empty: the guest runs no commands (a stand-in), and the
	// suite skips that look inside the guest, saying so.
	ReadOnlyProbe []string
	// BootIDProbe is a command the guest's agent runs that prints the
	// kernel's boot ID (/proc/sys/kernel/random/boot_id): the snapshot
	// checks require a restored guest to print the saved guest's, which
	// no new boot could. Empty: the guest runs no commands, and those
	// checks rest on the agent key and the uptime (see snapshot.go).
	BootIDProbe []string
}

func (g Guest) bootTimeout() time.Duration {
	if g.BootTimeout > 0 {
		return g.BootTimeout
	}
	return 2 * time.Minute
}

// Run is the conformance suite. newDriver returns a driver value; the
// suite calls it again to get a fresh value that must control the VMs of
// the first one (a daemon restart). Each subtest that boots starts its own
// VM and never leaves it running.
//
// Every VM boots with a boot payload that carries an agent key (the
// guest's initramfs followed by WithBootKey's archive), and the suite
// checks health over the authenticated protocol 2 channel with that key.
func Run(t *testing.T, newDriver func(t *testing.T) hypervisor.Hypervisor, guest Guest) {
	s := &suite{newDriver: newDriver, guest: guest, key: newAgentKey()}
	s.initrd = filepath.Join(t.TempDir(), "initrd-with-key.img")
	if err := WithBootKey(s.initrd, guest.Initrd, s.key); err != nil {
		t.Fatalf("adding the boot key to the initramfs: %v", err)
	}
	t.Run("LaunchErrors", s.launchErrors)
	t.Run("Lifecycle", s.lifecycle)
	t.Run("Kill", s.kill)
	t.Run("SurvivesItsLauncher", s.survivesItsLauncher)
	t.Run("SharedReadOnlyDisk", s.sharedReadOnlyDisk)
	t.Run("Snapshot", s.snapshot)
}

type suite struct {
	newDriver func(t *testing.T) hypervisor.Hypervisor
	guest     Guest
	key       []byte // every VM's agent key
	initrd    string // guest.Initrd with the key's boot payload
}

// spec returns a spec for a fresh VM with its own runtime directory and
// work disk.
func (s *suite) spec(t *testing.T) hypervisor.Spec {
	t.Helper()
	return s.specFrom(t, s.guest.Work)
}

// specFrom returns a spec for a VM with its own runtime directory and a
// work disk copied from work.
func (s *suite) specFrom(t *testing.T, work string) hypervisor.Spec {
	t.Helper()
	// A short directory: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "hvt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	workCopy := filepath.Join(dir, "work.ext4")
	if err := copySparse(workCopy, work); err != nil {
		t.Fatalf("copying the work disk: %v", err)
	}
	limit := s.guest.ConsoleLimit
	if limit == 0 {
		limit = 8 << 10
	}
	mem := s.guest.MemoryMiB
	if mem == 0 {
		mem = 256
	}
	return hypervisor.Spec{
		ID:        "hvt-" + randomHex(6),
		Name:      strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"),
		Dir:       runDir,
		VCPUs:     1,
		MemoryMiB: mem,
		Boot: hypervisor.Boot{
			Vmlinuz: s.guest.Vmlinuz,
			Vmlinux: s.guest.Vmlinux,
			Initrd:  s.initrd,
			Cmdline: s.guest.Cmdline,
		},
		Disks: []hypervisor.Disk{
			{ID: "root", Path: s.guest.Root, ReadOnly: true},
			{ID: "work", Path: workCopy},
		},
		ConsoleLimit: limit,
	}
}

// launch launches spec and makes sure the VM is killed when the test ends.
func (s *suite) launch(t *testing.T, d hypervisor.Hypervisor, spec hypervisor.Spec) hypervisor.Handle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	h, err := d.Launch(ctx, spec)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Kill(h); err != nil {
			t.Errorf("killing the VM at the end of the test: %v", err)
		}
	})
	t.Logf("launched pid %d in %v: %+v", h.PID, time.Since(start).Round(time.Millisecond), h)
	s.checkHandle(t, d, h)
	return h
}

// step runs f as a subtest and stops the sequence when it fails.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

func (s *suite) lifecycle(t *testing.T) {
	d := s.newDriver(t)
	spec := s.spec(t)
	ctx := context.Background()
	h := s.launch(t, d, spec)
	step(t, "StatusRunning", func(t *testing.T) { wantStatus(t, d, h, hypervisor.Running) })
	step(t, "AgentHealth", func(t *testing.T) { s.checkHealth(t, d, h) })
	step(t, "Adopt", func(t *testing.T) {
		if err := d.Adopt(ctx, h); err != nil {
			t.Fatalf("Adopt of the running VM: %v", err)
		}
	})
	step(t, "AdoptNotOurs", func(t *testing.T) {
		wrongStart := h
		wrongStart.StartTime++
		dead := h
		dead.PID = deadPID(t)
		for name, bad := range map[string]hypervisor.Handle{"wrong start time": wrongStart, "dead pid": dead} {
			if err := d.Adopt(ctx, bad); !errors.Is(err, hypervisor.ErrNotOurs) {
				t.Errorf("Adopt with a %s = %v, want ErrNotOurs", name, err)
			}
		}
	})
	step(t, "SecondLaunchRefused", func(t *testing.T) {
		before := dirEntries(t, spec.Dir)
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		h2, err := d.Launch(lctx, spec)
		if err == nil {
			d.Kill(h2)
			t.Fatalf("a second Launch into the busy directory %s succeeded (%+v); want it refused", spec.Dir, h2)
		}
		t.Logf("refused: %v", err)
		if after := dirEntries(t, spec.Dir); !equal(before, after) {
			t.Errorf("the refused launch changed %s: before %v, after %v", spec.Dir, before, after)
		}
		// The first VM is unharmed.
		wantStatus(t, d, h, hypervisor.Running)
		if err := d.Adopt(ctx, h); err != nil {
			t.Errorf("Adopt of the first VM after the refused launch: %v", err)
		}
		s.checkHealth(t, d, h)
	})
	step(t, "Shutdown", func(t *testing.T) { s.shutdown(t, d, h, spec) })
	step(t, "StopIsIdempotent", func(t *testing.T) {
		if err := d.Shutdown(ctx, h); err != nil {
			t.Errorf("Shutdown of a stopped VM: %v", err)
		}
		if err := d.Kill(h); err != nil {
			t.Errorf("Kill of a stopped VM: %v", err)
		}
	})
}

func (s *suite) kill(t *testing.T) {
	d := s.newDriver(t)
	spec := s.spec(t)
	h := s.launch(t, d, spec)
	wantStatus(t, d, h, hypervisor.Running)
	s.checkHealth(t, d, h) // kill a guest that is up, not one still booting
	if err := d.Kill(h); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	s.checkGone(t, d, h, spec)
}

func (s *suite) survivesItsLauncher(t *testing.T) {
	launcher := s.newDriver(t)
	spec := s.spec(t)
	h := s.launch(t, launcher, spec)
	// A daemon restart: a new driver value knows only the handle.
	d := s.newDriver(t)
	ctx := context.Background()
	step(t, "Adopt", func(t *testing.T) {
		if err := d.Adopt(ctx, h); err != nil {
			t.Fatalf("Adopt from a fresh driver: %v", err)
		}
	})
	step(t, "StatusRunning", func(t *testing.T) { wantStatus(t, d, h, hypervisor.Running) })
	step(t, "AgentHealth", func(t *testing.T) { s.checkHealth(t, d, h) })
	step(t, "Shutdown", func(t *testing.T) { s.shutdown(t, d, h, spec) })
	step(t, "LauncherSeesStopped", func(t *testing.T) { wantStatus(t, launcher, h, hypervisor.Stopped) })
}

// sharedReadOnlyDisk runs two VMs at once on the same root disk file,
// attached read-only to both: both boot and answer, each guest sees a
// read-only /dev/vda that refuses a write (where the guest can run the
// probe), and the file's digest is the same after both ran.
func (s *suite) sharedReadOnlyDisk(t *testing.T) {
	before := fileDigest(t, s.guest.Root)
	d := s.newDriver(t)
	specs := []hypervisor.Spec{s.spec(t), s.spec(t)}
	var hs []hypervisor.Handle
	for _, spec := range specs {
		if !spec.Disks[0].ReadOnly || spec.Disks[0].Path != s.guest.Root {
			t.Fatalf("the suite's spec does not attach the guest's root read-only: %+v", spec.Disks[0])
		}
		hs = append(hs, s.launch(t, d, spec))
	}
	step(t, "BothRunning", func(t *testing.T) {
		for _, h := range hs {
			wantStatus(t, d, h, hypervisor.Running)
			s.checkHealth(t, d, h)
		}
	})
	step(t, "GuestSeesReadOnly", func(t *testing.T) {
		if len(s.guest.ReadOnlyProbe) == 0 {
			t.Skip("the guest runs no commands (a stand-in): what it sees of /dev/vda cannot be asked; the host file's digest is still checked")
		}
		for i, h := range hs {
			ctx, cancel := context.WithTimeout(context.Background(), s.guest.bootTimeout())
			out, status, err := AgentExec(ctx, d, h, s.key, append(append([]string(nil), s.guest.ReadOnlyProbe...), "vda"))
			cancel()
			if err != nil || status.Code != 0 {
				t.Fatalf("VM %d: running the probe %v: %v (exit %+v, output %q)", i, s.guest.ReadOnlyProbe, err, status, out)
			}
			t.Logf("VM %d sees /dev/vda: %s", i, strings.TrimSpace(out))
			if !strings.Contains(out, "ro=1 ") {
				t.Errorf("VM %d: the kernel does not flag /dev/vda read-only: %q", i, out)
			}
			if strings.Contains(out, "write=ok") || !strings.Contains(out, "write=refused") {
				t.Errorf("VM %d: a write to /dev/vda was not refused: %q", i, out)
			}
		}
	})
	step(t, "Shutdown", func(t *testing.T) {
		for i, h := range hs {
			s.shutdown(t, d, h, specs[i])
		}
	})
	if after := fileDigest(t, s.guest.Root); after != before {
		t.Errorf("the shared read-only root %s changed while two VMs ran on it: sha256 %s before, %s after", s.guest.Root, before, after)
	} else {
		t.Logf("the shared root's sha256 is %s before and after", after)
	}
}

// fileDigest is the SHA-256 of path's content, in hex.
func fileDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *suite) launchErrors(t *testing.T) {
	missing := func(name string) string { return filepath.Join(t.TempDir(), name) }
	tests := []struct {
		name   string
		mutate func(*hypervisor.Spec) string // returns the path the error must name
	}{
		{"missing kernel", func(sp *hypervisor.Spec) string {
			p := missing("vmlinuz")
			sp.Boot.Vmlinuz, sp.Boot.Vmlinux = p, p
			return p
		}},
		{"missing initrd", func(sp *hypervisor.Spec) string {
			sp.Boot.Initrd = missing("initrd.img")
			return sp.Boot.Initrd
		}},
		{"missing root disk", func(sp *hypervisor.Spec) string {
			sp.Disks[0].Path = missing("root.ext4")
			return sp.Disks[0].Path
		}},
		{"missing work disk", func(sp *hypervisor.Spec) string {
			sp.Disks[1].Path = missing("work.ext4")
			return sp.Disks[1].Path
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.newDriver(t)
			spec := s.spec(t)
			path := tt.mutate(&spec)
			before := dirEntries(t, spec.Dir)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			h, err := d.Launch(ctx, spec)
			if err == nil {
				d.Kill(h)
				t.Fatalf("Launch succeeded (%+v); want an error naming %s", h, path)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), path) {
				t.Errorf("the error does not name the missing file %s: %v", path, err)
			}
			if after := dirEntries(t, spec.Dir); !equal(before, after) {
				t.Errorf("the failed launch left files in %s: before %v, after %v", spec.Dir, before, after)
			}
			if pids := processesMentioning(spec.Dir); len(pids) > 0 {
				t.Errorf("the failed launch left processes running: %v", pids)
			}
		})
	}
}

// shutdown shuts h down and checks that everything is gone.
func (s *suite) shutdown(t *testing.T, d hypervisor.Hypervisor, h hypervisor.Handle, spec hypervisor.Spec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := d.Shutdown(ctx, h); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("shut down in %v", time.Since(start).Round(time.Millisecond))
	if s.guest.PowerOffMarker != "" {
		b, _ := os.ReadFile(h.ConsoleLog)
		if !bytes.Contains(b, []byte(s.guest.PowerOffMarker)) {
			t.Errorf("the console log does not show %q: the guest did not power off by itself (was the ACPI power button pressed?); console tail:\n%s", s.guest.PowerOffMarker, tail(b, 1500))
		}
	}
	s.checkGone(t, d, h, spec)
}

// checkGone checks that h's VM is stopped and cleaned up, and that its
// console was captured within its bound.
func (s *suite) checkGone(t *testing.T, d hypervisor.Hypervisor, h hypervisor.Handle, spec hypervisor.Spec) {
	t.Helper()
	s.checkStopped(t, d, h, spec)
	fi, err := os.Stat(h.ConsoleLog)
	switch {
	case err != nil:
		t.Errorf("console log: %v", err)
	case fi.Size() == 0:
		t.Errorf("console log %s is empty: the serial console was not captured", h.ConsoleLog)
	case fi.Size() > spec.ConsoleLimit:
		t.Errorf("console log %s is %d bytes, over the limit of %d", h.ConsoleLog, fi.Size(), spec.ConsoleLimit)
	default:
		t.Logf("console log: %d bytes (limit %d)", fi.Size(), spec.ConsoleLimit)
	}
}

// checkStopped checks that h's VM is stopped: no process, Status
// Stopped, Adopt refused, no sockets left.
func (s *suite) checkStopped(t *testing.T, d hypervisor.Hypervisor, h hypervisor.Handle, spec hypervisor.Spec) {
	t.Helper()
	if !s.guest.InMemory {
		if hypervisor.Alive(h) {
			t.Errorf("pid %d is still alive", h.PID)
		}
		if pids := processesMentioning(spec.Dir); len(pids) > 0 {
			t.Errorf("processes mentioning %s still run: %v", spec.Dir, pids)
		}
	}
	wantStatus(t, d, h, hypervisor.Stopped)
	if err := d.Adopt(context.Background(), h); !errors.Is(err, hypervisor.ErrNotOurs) {
		t.Errorf("Adopt of the stopped VM = %v, want ErrNotOurs", err)
	}
	for _, p := range []string{h.ControlSocket, h.AgentSocket} {
		if p == "" {
			continue
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after the VM stopped (err %v)", p, err)
		}
	}
}

// checkHealth waits for the agent's health and checks it.
func (s *suite) checkHealth(t *testing.T, d hypervisor.Hypervisor, h hypervisor.Handle) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.guest.bootTimeout())
	defer cancel()
	start := time.Now()
	health, err := AgentHealth(ctx, d, h, s.key)
	if err != nil {
		b, _ := os.ReadFile(h.ConsoleLog)
		t.Fatalf("no health from the agent: %v; console tail:\n%s", err, tail(b, 3000))
	}
	t.Logf("agent health after %v: %+v", time.Since(start).Round(time.Millisecond), health)
	if health.Protocol != agentmux.Protocol {
		t.Errorf("health.Protocol = %d, want %d", health.Protocol, agentmux.Protocol)
	}
	if health.RootMount != "/dev/vdb" {
		t.Errorf("health.RootMount = %q, want /dev/vdb: the work disk must be the second disk", health.RootMount)
	}
}

// AgentHealth dials the agent of h through d, upgrades the channel with
// key (the agent key of the VM's boot payload) and asks for its health,
// until it answers or ctx ends. Each upgrade has a short timeout and is
// retried on the same connection, because a guest discards what reaches
// a virtio-serial port before the agent opened it; a failed connection is
// dialled again. An agent that refuses key (agentmux.ErrKeyRefused) ends
// the wait at once: it holds another key, which no retry changes.
func AgentHealth(ctx context.Context, d hypervisor.AgentDialer, h hypervisor.Handle, key []byte) (agentproto.Health, error) {
	var lastErr error
	for {
		conn, err := d.DialAgent(ctx, h)
		if err == nil {
			for {
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				health, herr := upgradedHealth(actx, conn, key)
				cancel()
				if herr == nil {
					conn.Close()
					return health, nil
				}
				if errors.Is(herr, agentmux.ErrKeyRefused) {
					conn.Close()
					return agentproto.Health{}, herr
				}
				lastErr = herr
				if ctx.Err() != nil || !errors.Is(herr, context.DeadlineExceeded) {
					break // the stream failed: dial again
				}
			}
			conn.Close()
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return agentproto.Health{}, fmt.Errorf("waiting for the agent's health: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// AgentExec runs argv in the guest of h through d's agent channel,
// upgraded with key, and returns its standard output and exit status. It
// dials and upgrades as AgentHealth does, until ctx ends; the command
// itself runs once. A refused key ends it at once, as in AgentHealth.
func AgentExec(ctx context.Context, d hypervisor.AgentDialer, h hypervisor.Handle, key []byte, argv []string) (string, agentmux.ExitStatus, error) {
	var lastErr error
	for {
		conn, err := d.DialAgent(ctx, h)
		if err == nil {
			for {
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				sess, uerr := agentmux.Upgrade(actx, conn, key)
				cancel()
				if uerr == nil {
					var out bytes.Buffer
					status, err := sess.Exec(ctx, agentmux.ExecRequest{Argv: argv}, nil, &out, &out)
					sess.Close()
					return out.String(), status, err
				}
				if errors.Is(uerr, agentmux.ErrKeyRefused) {
					conn.Close()
					return "", agentmux.ExitStatus{}, uerr
				}
				lastErr = uerr
				if ctx.Err() != nil || !errors.Is(uerr, context.DeadlineExceeded) {
					break // the stream failed: dial again
				}
			}
			conn.Close()
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return "", agentmux.ExitStatus{}, fmt.Errorf("waiting for the agent: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// upgradedHealth asks for health over an authenticated session on conn,
// leaving conn open when the upgrade timed out (to retry on it).
func upgradedHealth(ctx context.Context, conn net.Conn, key []byte) (agentproto.Health, error) {
	sess, err := agentmux.Upgrade(ctx, conn, key)
	if err != nil {
		return agentproto.Health{}, err
	}
	defer sess.Close() // closes conn: the caller's Close is a no-op
	return sess.Health(ctx)
}

func wantStatus(t *testing.T, d hypervisor.Hypervisor, h hypervisor.Handle, want hypervisor.State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := d.Status(ctx, h)
	if err != nil || got != want {
		t.Errorf("Status = %q, %v; want %q", got, err, want)
	}
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("running a short-lived process: %v", err)
	}
	return cmd.ProcessState.Pid()
}

// processesMentioning returns the PIDs whose command line contains s.
func processesMentioning(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func equal(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// copySparse copies src to dst, leaving holes where src has zero blocks.
func copySparse(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	var off int64
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := out.WriteAt(buf[:n], off); werr != nil {
				out.Close()
				return werr
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Truncate(fi.Size()); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
