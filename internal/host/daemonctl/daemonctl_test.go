package daemonctl

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/config"
)

// Starting the daemon is serialised: a second starter waits until the
// first is done (and then finds the daemon it started).
func TestStartLockSerialises(t *testing.T) {
	c := &Controller{Paths: config.Paths{RuntimeDir: t.TempDir()}}
	ctx := context.Background()
	unlock, err := c.startLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := c.startLock(ctx)
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a second starter got the lock while the first held it (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("second starter: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the second starter never got the lock")
	}

	// A starter gives up when its context ends.
	unlock, _ = c.startLock(ctx)
	defer unlock()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.startLock(short); err == nil {
		t.Error("startLock succeeded while the lock was held")
	}
}

// Starting on demand checks the runtime directory before it creates its
// lock there: a symbolic link planted at the runtime directory's path is
// refused and nothing is created where it points.
func TestStartLockRefusesPlantedRuntimeDir(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "elsewhere")
	os.Mkdir(target, 0o700)
	runtimeDir := filepath.Join(base, "run")
	os.Symlink(target, runtimeDir)
	c := &Controller{Paths: config.Paths{RuntimeDir: runtimeDir}}
	_, err := c.startLock(context.Background())
	if err == nil || !strings.Contains(err.Error(), runtimeDir+" is a symbolic link") {
		t.Fatalf("startLock: %v, want a refusal naming the link", err)
	}
	if des, _ := os.ReadDir(target); len(des) != 0 {
		t.Errorf("startLock created %v through the link", des)
	}
}
