package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemon"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// The instance lock guards the state directory: a second daemon on the
// same store is refused even with a runtime directory (socket) of its own,
// and the refusal names the first's pid and socket.
func TestSecondDaemonOnOneStoreRefused(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	cfg := daemontest.Config(t, d.Root)
	cfg.Paths.RuntimeDir = filepath.Join(daemontest.ShortTempDir(t), "run2")
	err := runUntilServing(t, cfg)
	want := fmt.Sprintf("another bangerd is already running (pid %d, serving %s) with the state directory %s",
		os.Getpid(), d.Config.Paths.Socket(), d.Config.Paths.StateDir)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second daemon: %v\nwant an error containing %q", err, want)
	}
	if _, err := os.Stat(cfg.Paths.Socket()); !os.IsNotExist(err) {
		t.Errorf("the refused daemon left %s (%v)", cfg.Paths.Socket(), err)
	}
	if _, err := d.Client.DaemonStatus(context.Background()); err != nil {
		t.Errorf("first daemon hurt by the second: %v", err)
	}
}

// The daemon refuses to start rather than write its pid through a link
// planted in its runtime directory, or use a runtime directory that is a
// link.
func TestDaemonRefusesPlantedLinks(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, root, victim string) (path string)
	}{
		{"pid file", func(t *testing.T, root, victim string) string {
			run := filepath.Join(root, "run")
			os.Mkdir(run, 0o700)
			path := filepath.Join(run, "bangerd.pid")
			os.Symlink(victim, path)
			return path
		}},
		{"runtime directory", func(t *testing.T, root, victim string) string {
			path := filepath.Join(root, "run")
			os.Symlink(filepath.Dir(victim), path)
			return path
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := daemontest.ShortTempDir(t)
			victimDir := daemontest.ShortTempDir(t)
			victim := filepath.Join(victimDir, "victim")
			os.WriteFile(victim, []byte("precious\n"), 0o600)
			path := tt.plant(t, root, victim)
			err := runUntilServing(t, daemontest.Config(t, root))
			if err == nil || !strings.Contains(err.Error(), path+" is a symbolic link") {
				t.Fatalf("daemon.Run: %v\nwant a refusal naming %s", err, path)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
				t.Errorf("the daemon wrote %q through the link", b)
			}
			if des, _ := os.ReadDir(victimDir); len(des) != 1 {
				t.Errorf("the daemon created files beside the victim: %v", des)
			}
		})
	}
}

// runUntilServing runs a daemon with cfg and returns what Run returned; a
// daemon that starts serving instead of refusing is stopped and reported.
func runUntilServing(t *testing.T, cfg *config.Config) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, daemon.Options{Config: cfg}) }()
	cl := client.New(cfg.Paths.Socket())
	defer cl.Close()
	for {
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := cl.DaemonStatus(ctx); err == nil {
			cancel()
			<-done
			t.Fatalf("the daemon started serving on %s instead of refusing", cfg.Paths.Socket())
		}
	}
}

// One directory may serve as both the state and the runtime directory: the
// daemon's two locks do not collide there.
func TestStateAndRuntimeDirMayBeOne(t *testing.T) {
	root := daemontest.ShortTempDir(t)
	cfg := daemontest.Config(t, root)
	cfg.Paths.RuntimeDir = cfg.Paths.StateDir
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, daemon.Options{Config: cfg}) }()
	cl := client.New(cfg.Paths.Socket())
	defer cl.Close()
	for {
		if _, err := cl.DaemonStatus(ctx); err == nil {
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("daemon with one state and runtime directory: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("daemon stop: %v", err)
	}
}
