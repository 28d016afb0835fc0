package portfwd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
)

// fakeAgents is a recording fake of the daemon's dial: each VM it knows
// runs an uppercasing echo service on every guest port, relayed over an
// in-memory pipe; a stopped VM refuses, a gone VM is ErrVMGone.
type fakeAgents struct {
	mu      sync.Mutex
	running map[string]bool // vm → running; absent: gone
	dials   []string        // "vm:port", in order
	live    int             // guest-side connections open now
	maxLive int
	block   chan struct{} // when set, the service waits for it before answering
}

func (f *fakeAgents) dial(ctx context.Context, vm string, port int) (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dials = append(f.dials, fmt.Sprintf("%s:%d", vm, port))
	running, ok := f.running[vm]
	if !ok {
		return nil, fmt.Errorf("no vm %s: %w", vm, ErrVMGone)
	}
	if !running {
		return nil, errors.New("VM " + vm + " is not running: start it")
	}
	host, guest := net.Pipe()
	f.live++
	f.maxLive = max(f.maxLive, f.live)
	block := f.block
	go func() {
		defer func() {
			guest.Close()
			f.mu.Lock()
			f.live--
			f.mu.Unlock()
		}()
		if block != nil {
			<-block
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := guest.Read(buf)
			if n > 0 {
				if _, werr := guest.Write(bytes.ToUpper(buf[:n])); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return host, nil
}

func (f *fakeAgents) maxLiveSeen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxLive
}

func newManager(t *testing.T, f *fakeAgents, maxConns int) *Manager {
	t.Helper()
	m := &Manager{Dial: f.dial, MaxConns: maxConns}
	t.Cleanup(func() { m.Close() })
	return m
}

func connect(t *testing.T, p api.PublishedPort) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort(p.Address, strconv.Itoa(p.HostPort)))
	if err != nil {
		t.Fatalf("connecting to the published port: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute)) // a hang fails, nothing asserts on time
	return c
}

// roundTrip sends msg and reads back as many bytes.
func roundTrip(c net.Conn, msg string) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

// Many connections at once each get their own relay to the guest port,
// on a listener bound to the loopback only.
func TestManyConcurrentConnections(t *testing.T) {
	f := &fakeAgents{running: map[string]bool{"vm1": true}}
	m := newManager(t, f, 0)
	p, err := m.Publish("vm1", 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Address != "127.0.0.1" || p.HostPort == 0 || p.GuestPort != 4096 {
		t.Fatalf("published %+v, want 127.0.0.1, a picked host port, guest 4096", p)
	}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := connect(t, p)
			msg := fmt.Sprintf("connection %d says hello %s", i, strings.Repeat("z", i*1000))
			got, err := roundTrip(c, msg)
			if err != nil || got != strings.ToUpper(msg) {
				errs <- fmt.Errorf("connection %d: got %d bytes, %v", i, len(got), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(f.dials); got != n {
		t.Errorf("%d dials, want %d", got, n)
	}
}

// Past MaxConns live connections, a new one is closed at once; the live
// ones go on, and a slot freed is usable again.
func TestConnectionBound(t *testing.T) {
	f := &fakeAgents{running: map[string]bool{"vm1": true}, block: make(chan struct{})}
	m := newManager(t, f, 2)
	p, err := m.Publish("vm1", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := connect(t, p), connect(t, p)
	a.Write([]byte("a"))
	b.Write([]byte("b"))
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.live == 2 })
	over := connect(t, p)
	if _, err := over.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("third connection read = %v, want it closed", err)
	}
	close(f.block)
	for _, c := range []net.Conn{a, b} {
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("a live connection failed: %v", err)
		}
	}
	a.Close()
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.live < 2 })
	waitFor(t, func() bool { return len(f.sem(m, "vm1", 80)) < 2 })
	if got, err := roundTrip(connect(t, p), "again"); err != nil || got != "AGAIN" {
		t.Fatalf("after a slot freed: %q, %v", got, err)
	}
	if f.maxLiveSeen() > 2 {
		t.Errorf("%d guest connections at once, want at most 2", f.maxLiveSeen())
	}
}

// sem is the forward's token channel (for waiting on a freed slot).
func (f *fakeAgents) sem(m *Manager, vm string, port int) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ports[key{vm, port}].sem
}

// A stopped VM's port still listens, but its connections are closed at
// once; a deleted VM's listeners close on the first connection.
func TestVMNotRunningOrGone(t *testing.T) {
	f := &fakeAgents{running: map[string]bool{"stopped": false}}
	m := newManager(t, f, 0)
	ps, err := m.Publish("stopped", 22, 0)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := m.Publish("gone", 22, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []api.PublishedPort{ps, pg} {
		if _, err := connect(t, p).Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("read on %+v = %v, want the connection closed", p, err)
		}
	}
	if got := m.Ports("stopped"); len(got) != 1 {
		t.Errorf("the stopped VM's ports = %+v, want its one listener kept", got)
	}
	waitFor(t, func() bool { return len(m.Ports("gone")) == 0 })
	if _, err := net.Dial("tcp", net.JoinHostPort(pg.Address, strconv.Itoa(pg.HostPort))); err == nil {
		t.Error("the gone VM's listener still accepts")
	}
}

// Close ends listeners and live connections; Unpublish and CloseVM end
// theirs only.
func TestCloseEndsListenersAndConnections(t *testing.T) {
	f := &fakeAgents{running: map[string]bool{"a": true, "b": true}}
	m := &Manager{Dial: f.dial}
	pa, _ := m.Publish("a", 1, 0)
	pa2, _ := m.Publish("a", 2, 0)
	pb, err := m.Publish("b", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	live := connect(t, pb)
	if got, err := roundTrip(live, "x"); err != nil || got != "X" {
		t.Fatalf("round trip: %q %v", got, err)
	}
	if !m.Unpublish("a", 1) || m.Unpublish("a", 1) {
		t.Error("Unpublish should report the port once")
	}
	m.CloseVM("a")
	for _, p := range []api.PublishedPort{pa, pa2} {
		if c, err := net.Dial("tcp", net.JoinHostPort(p.Address, strconv.Itoa(p.HostPort))); err == nil {
			c.Close()
			t.Errorf("port %+v still listens", p)
		}
	}
	if got := m.VMs(); len(got) != 1 || got[0] != "b" {
		t.Errorf("VMs with listeners = %v, want [b]", got)
	}
	m.Close()
	if _, err := live.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Errorf("a live connection after Close: read = %v, want closed", err)
	}
	if _, err := m.Publish("b", 3, 0); err == nil {
		t.Error("Publish after Close succeeded")
	}
}

// Publish refuses what it cannot do with an error that names the fix.
func TestPublishErrors(t *testing.T) {
	f := &fakeAgents{running: map[string]bool{"vm1": true}}
	m := newManager(t, f, 0)
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := m.Publish("vm1", 8080, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		guest     int
		host      int
		wantCode  api.Code
		wantWords string
	}{
		{"host port in use", 9000, taken.Addr().(*net.TCPAddr).Port, api.CodeAlreadyExists, "pick another HOSTPORT, or leave it out"},
		{"guest port published twice", 8080, 0, api.CodeAlreadyExists, "--rm 8080"},
		{"guest port out of range", 0, 0, api.CodeInvalidArgument, "1 to 65535"},
		{"host port out of range", 80, 70000, api.CodeInvalidArgument, "leave it out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Publish("vm1", tt.guest, tt.host)
			var e *api.Error
			if !errors.As(err, &e) || e.Code != tt.wantCode || !strings.Contains(err.Error(), tt.wantWords) {
				t.Fatalf("Publish error = %v, want %s naming %q", err, tt.wantCode, tt.wantWords)
			}
		})
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe"))
}

// waitFor polls cond: the relays run in their own goroutines.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}
