package localsock

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "ls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestListenIsPrivateAndCarriesPeerCreds(t *testing.T) {
	path := filepath.Join(shortDir(t), "run", "d.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(path))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
	}
	got := make(chan Cred, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		cred, _ := PeerCred(c)
		got <- cred
		c.Close()
	}()
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cred := <-got
	if cred.UID != os.Getuid() || cred.PID != os.Getpid() {
		t.Errorf("peer cred %+v, want uid %d pid %d", cred, os.Getuid(), os.Getpid())
	}
}

func TestListenRefusesLiveSocketReplacesStale(t *testing.T) {
	path := filepath.Join(shortDir(t), "d.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another bangerd is answering") {
		t.Fatalf("second listen: %v", err)
	}
	// A socket file nobody listens on (a crashed daemon's) is replaced.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket should remain for this test: %v", err)
	}
	l2, err := Listen(path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	l2.Close()

	// A regular file in the way is not deleted.
	os.WriteFile(path, []byte("x"), 0o600)
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listen over a file: %v", err)
	}
}

func TestDialNotRunning(t *testing.T) {
	dir := shortDir(t)
	if _, err := Dial(context.Background(), filepath.Join(dir, "none.sock")); !errors.Is(err, ErrNotRunning) {
		t.Errorf("missing socket: %v", err)
	}
	path := filepath.Join(dir, "stale.sock")
	l, _ := net.Listen("unix", path)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := Dial(context.Background(), path); !errors.Is(err, ErrNotRunning) {
		t.Errorf("stale socket: %v", err)
	}
}
