// Package daemontest runs a real bangerd in-process for tests: the real
// store, socket and handlers, rooted in a fresh temporary directory the way
// BANGER_HOME roots a user's, with a client connected to it.
package daemontest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemon"
	"github.com/bangerdev/banger/internal/host/doctor"
)

// Options tune the daemon under test.
type Options struct {
	// Root is the BANGER_HOME to use; "" makes a fresh one.
	Root string
	// Host replaces the real system for doctor.
	Host doctor.Host
	// AgentBin is the banger-agent binary the daemon should use.
	AgentBin string
}

// Daemon is a running in-process bangerd.
type Daemon struct {
	Root   string
	Config *config.Config
	Client *client.Client
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

// Start runs a daemon until the test ends and waits until it answers.
func Start(tb testing.TB, o Options) *Daemon {
	tb.Helper()
	if o.Root == "" {
		o.Root = ShortTempDir(tb)
	}
	cfg := Config(tb, o.Root)
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{Root: o.Root, Config: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- daemon.Run(ctx, daemon.Options{Config: cfg, Host: o.Host, AgentBin: o.AgentBin}) }()
	d.Client = client.New(cfg.Paths.Socket())
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := d.Client.DaemonStatus(context.Background()); err == nil {
			break
		}
		select {
		case err := <-d.done:
			cancel()
			tb.Fatalf("daemon exited during start: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			tb.Fatal("daemon did not answer within 10s")
		}
	}
	tb.Cleanup(func() {
		if err := d.Stop(); err != nil {
			tb.Errorf("daemon stop: %v", err)
		}
	})
	return d
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
