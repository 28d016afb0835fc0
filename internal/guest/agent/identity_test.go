package agent

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// identityServer is a test server whose handler applies identity calls
// to a sandbox below a temporary root (files and the key only).
func identityServer(t *testing.T) (*server, string) {
	s := testServer(t)
	dir := t.TempDir()
	h := newMuxHandler(filepath.Join(dir, "sessions"), testLogger(t))
	root := filepath.Join(dir, "guest-root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.identity = sandboxIdentity(root, &s.keys, testLogger(t))
	s.handler = h
	return s, root
}

// openChannel serves a new agent channel (a pipe) and upgrades it with
// key.
func openChannel(ctx context.Context, t *testing.T, s *server, key []byte) (*agentmux.Session, error) {
	host, guest := net.Pipe()
	go s.serveChannel(ctx, guest)
	t.Cleanup(func() { host.Close(); guest.Close() })
	return agentmux.Upgrade(ctx, host, key)
}

// TestIdentityRekeys: after the identity call answers, a channel opened
// with the old key is refused and one with the new key accepted, while
// the call's own session keeps working.
func TestIdentityRekeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, root := identityServer(t)
	sess, err := openChannel(ctx, t, s, testKey)
	if err != nil {
		t.Fatalf("upgrade with this boot's key: %v", err)
	}
	defer sess.Close()
	newKey := bytes.Repeat([]byte{'n'}, 32)
	var res agentproto.IdentityResult
	call := agentproto.Identity{TimeUnixNano: 1, MachineID: "0123456789abcdef0123456789abcdef", Key: newKey}
	if err := sess.Call(ctx, agentproto.MethodIdentity, call, &res); err != nil {
		t.Fatalf("identity call: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc", "machine-id")); string(b) != call.MachineID+"\n" {
		t.Errorf("machine-id %q (%v), want %s", b, err, call.MachineID)
	}
	if _, err := sess.Health(ctx); err != nil {
		t.Errorf("the call's own session stopped working: %v", err)
	}
	if _, err := openChannel(ctx, t, s, testKey); !errors.Is(err, agentmux.ErrKeyRefused) {
		t.Errorf("a channel opened with the old key: %v, want ErrKeyRefused", err)
	}
	fresh, err := openChannel(ctx, t, s, newKey)
	if err != nil {
		t.Fatalf("a channel opened with the new key: %v", err)
	}
	defer fresh.Close()
	if _, err := fresh.Health(ctx); err != nil {
		t.Errorf("health on the new key's session: %v", err)
	}
}

// TestIdentityBadRequest: a bad field is bad_request naming it, and the
// key stays.
func TestIdentityBadRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, root := identityServer(t)
	sess, err := openChannel(ctx, t, s, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	call := agentproto.Identity{TimeUnixNano: 1, MachineID: "0123456789abcdef0123456789abcdef", Net: &agentproto.IdentityNet{Address: "10.0.0.2/24", MAC: "01:00:5e:00:00:01"}, Key: bytes.Repeat([]byte{'n'}, 32)}
	err = sess.Call(ctx, agentproto.MethodIdentity, call, nil)
	var e *agentmux.Error
	if !errors.As(err, &e) || e.Code != agentmux.CodeBadRequest || !bytes.Contains([]byte(e.Message), []byte("net.mac")) {
		t.Fatalf("identity call with a multicast MAC: %v, want bad_request naming net.mac", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "machine-id")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("machine-id written by a refused call: %v", err)
	}
	if !bytes.Equal(s.keys.get(), testKey) {
		t.Errorf("a refused call changed the key")
	}
}

// TestNewGuestIdentity: the test agent host code uses applies identity
// calls to its sandbox, and its key changes too.
func TestNewGuestIdentity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	g, err := NewGuest(filepath.Join(dir, "sessions"), testKey, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	upgrade := func(key []byte) (*agentmux.Session, error) {
		host, guest := net.Pipe()
		go g.Serve(ctx, guest)
		t.Cleanup(func() { host.Close(); guest.Close() })
		return agentmux.Upgrade(ctx, host, key)
	}
	sess, err := upgrade(testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	newKey := bytes.Repeat([]byte{'k'}, 32)
	call := agentproto.Identity{
		TimeUnixNano: 1, BootID: "01234567-89ab-cdef-0123-456789abcdef", Hostname: "clone-1", HostKeys: true,
		Net: &agentproto.IdentityNet{Address: "10.0.0.2/24", Gateway: "10.0.0.1", MAC: "02:00:00:00:00:02", DNS: []string{"10.0.0.1"}},
		Key: newKey,
	}
	var res agentproto.IdentityResult
	if err := sess.Call(ctx, agentproto.MethodIdentity, call, &res); err != nil {
		t.Fatalf("identity call: %v", err)
	}
	if len(res.HostKeys) != 2 {
		t.Errorf("host keys %q, want ecdsa and ed25519", res.HostKeys)
	}
	root := filepath.Join(dir, "guest-root")
	for p, want := range map[string]string{
		"proc/sys/kernel/random/boot_id": call.BootID + "\n",
		"etc/hostname":                   "clone-1\n",
	} {
		if b, err := os.ReadFile(filepath.Join(root, p)); string(b) != want {
			t.Errorf("%s: %q (%v), want %q", p, b, err, want)
		}
	}
	again, err := upgrade(newKey)
	if err != nil {
		t.Fatalf("upgrade with the new key: %v", err)
	}
	again.Close()
}
