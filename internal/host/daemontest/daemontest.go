// Package daemontest runs a real bangerd in-process for tests: the real
// store, socket and handlers, rooted in a fresh temporary directory the way
// BANGER_HOME roots a user's, with a client connected to it.
//
// In fake mode (Options.Fake) the daemon is whole — store, socket,
// handlers, operations, VM lifecycle, image catalog — but its hypervisor is
// hvtest.Fake and its network the in-memory Network (daemon.TestSeams), and
// an image named FakeImage is registered, a shared base (SeedImageWith): a
// create with zero values goes through every stage to running in
// milliseconds, without root, QEMU or a bridge, so front ends are tested against a real daemon and benchmarked
// with hundreds of VMs. A fake VM answers health, readiness probes, host
// keys, memory and an empty session list; it runs nothing, so session
// start, attach, exec, file transfer and ssh are refused or fail.
package daemontest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemon"
	"github.com/bangerdev/banger/internal/host/doctor"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/host/vm"
)

// Options tune the daemon under test.
type Options struct {
	// Root is the BANGER_HOME to use; "" makes a fresh one.
	Root string
	// Host replaces the real system for doctor.
	Host doctor.Host
	// AgentBin is the banger-agent binary the daemon should use; in fake
	// mode "" means a stand-in script that only reports its version.
	AgentBin string
	// Fake runs the daemon with hvtest.Fake and an in-memory Network in
	// place of the hypervisors and the host network, VMs of 1 GiB disks
	// on FakeSubnet by default, and the image FakeImage registered. It
	// skips the test when e2fsprogs is missing.
	Fake bool
	// WebListen sets web.listen, e.g. "127.0.0.1:0": the daemon starts
	// its web listener with it.
	WebListen string
	// AutoWarm sets vm.auto_warm.
	AutoWarm bool
	// StateDir and DataDir place the daemon's state directory (store, VM
	// directories, log) and data directory (images, managed key)
	// elsewhere than under Root, e.g. on a small filesystem a test
	// fills; "" keeps each under Root.
	StateDir, DataDir string
}

// Daemon is a running in-process bangerd.
type Daemon struct {
	Root   string
	Config *config.Config
	Client *client.Client
	// Fake and Network are the fake mode's hypervisor and network (nil
	// otherwise): a test inspects them, or makes the Fake fail or crash
	// a VM.
	Fake    *hvtest.Fake
	Network *Network

	opts   Options
	seams  *daemon.TestSeams
	cancel context.CancelFunc
	done   chan error
}

// ShortTempDir returns a fresh directory with a short path (unix socket
// paths are limited to 107 bytes, which t.TempDir can exceed), removed at
// the end of the test.
func ShortTempDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "bgt")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Config returns the configuration a daemon rooted at root would load.
func Config(tb testing.TB, root string) *config.Config {
	tb.Helper()
	env := config.MapEnv(map[string]string{config.EnvHome: root, "HOME": filepath.Join(root, "home")})
	paths, err := config.DefaultPaths(env, os.Getuid())
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Load(paths, env)
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// Start runs a daemon until the test ends and waits until it answers. In
// fake mode the image FakeImage is registered (unless the root has it),
// and the fake VMs are killed when the test ends.
func Start(tb testing.TB, o Options) *Daemon {
	tb.Helper()
	if o.Fake {
		requireFakeTools(tb)
	}
	if o.Root == "" {
		o.Root = ShortTempDir(tb)
	}
	d := &Daemon{Root: o.Root, opts: o}
	if o.Fake {
		if d.opts.AgentBin == "" {
			d.opts.AgentBin = fakeAgentBin(tb, o.Root)
		}
		d.Fake = hvtest.NewFake()
		d.Network = NewNetwork(FakeSubnet)
	}
	d.run(tb)
	tb.Cleanup(func() {
		err := d.Stop()
		if d.Fake != nil {
			// Fake VMs outlive their daemon, as real ones do; at the end
			// of the test they go, and with them their agents' pipes.
			for _, h := range d.Fake.Running() {
				d.Fake.Kill(h)
			}
		}
		if err != nil {
			tb.Errorf("daemon stop: %v", err)
		}
	})
	if o.Fake {
		_, err := d.Client.Image(context.Background(), FakeImage)
		switch {
		case errors.Is(err, api.ErrNotFound):
			// A shared base, as every image becomes at its first
			// create; where the fake kernel set cannot be staged, an
			// image whose VMs copy its rootfs.
			if !canStageKernels() {
				tb.Logf("daemontest: %s is no shared base on %s/%s: its VMs copy its rootfs", FakeImage, runtime.GOOS, runtime.GOARCH)
			}
			d.SeedImageWith(tb, FakeImage, Seed{Copy: !canStageKernels()})
		case err != nil:
			tb.Fatal(err)
		}
	}
	return d
}

// run starts the daemon with d's options and waits until it answers.
func (d *Daemon) run(tb testing.TB) {
	tb.Helper()
	o := d.opts
	cfg := Config(tb, o.Root)
	cfg.Web.Listen = o.WebListen
	cfg.VM.AutoWarm = o.AutoWarm
	if o.StateDir != "" {
		cfg.Paths.StateDir = o.StateDir
	}
	if o.DataDir != "" {
		cfg.Paths.DataDir = o.DataDir
	}
	var seams *daemon.TestSeams
	if o.Fake {
		cfg.VM.DiskBytes = vm.MinDiskBytes
		cfg.Network.Subnet = FakeSubnet
		seams = &daemon.TestSeams{Hypervisor: d.Fake, Network: d.Network}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	d.Config, d.seams, d.cancel, d.done = cfg, seams, cancel, done
	go func() {
		done <- daemon.Run(ctx, daemon.Options{Config: cfg, Host: o.Host, AgentBin: o.AgentBin, Seams: seams})
	}()
	if d.Client == nil {
		d.Client = client.New(cfg.Paths.Socket())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := d.Client.DaemonStatus(context.Background()); err == nil {
			return
		}
		select {
		case err := <-done:
			cancel()
			d.cancel = nil
			tb.Fatalf("daemon exited during start: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Stop()
			tb.Fatal("daemon did not answer within 10s")
		}
	}
}

// Restart stops the daemon gracefully and starts it again on the same
// root (and, in fake mode, the same Fake and Network, so its running VMs
// are adopted as a real restart adopts live hypervisors). Client keeps
// working: it dials the same socket.
func (d *Daemon) Restart(tb testing.TB) {
	tb.Helper()
	if err := d.Stop(); err != nil {
		tb.Fatalf("daemon stop: %v", err)
	}
	d.run(tb)
}

// Stop shuts the daemon down gracefully and returns what Run returned. It
// is safe to call more than once.
func (d *Daemon) Stop() error {
	if d.cancel == nil {
		return nil
	}
	d.cancel()
	d.cancel = nil
	d.Client.Close()
	select {
	case err := <-d.done:
		return err
	case <-time.After(30 * time.Second):
		return context.DeadlineExceeded
	}
}
