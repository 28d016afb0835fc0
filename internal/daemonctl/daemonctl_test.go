package daemonctl

import (
	"context"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/config"
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
