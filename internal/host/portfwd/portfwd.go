// Package portfwd owns bangerd's published ports: per published guest
// port, a listener on the host's loopback whose connections are relayed
// to the guest port through the VM's agent channel (a dial stream,
// internal/shared/agentmux), not the network. So a published port works
// for a rootless daemon, with egress "none", and without a route to the
// bridge.
//
// The relay copies bytes and half-closes; it never parses them. Each
// port relays at most MaxConns connections at once (more are closed at
// accept), and a connection whose VM is not running, or whose guest port
// nothing listens on, is closed at once.
package portfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/bangerdev/banger/api"
)

// Address is where published ports listen: the host's loopback only.
const Address = "127.0.0.1"

// DefaultMaxConns bounds the connections one published port relays at
// once.
const DefaultMaxConns = 64

// dialTimeout bounds opening the dial stream for one connection.
const dialTimeout = 40 * time.Second

// ErrVMGone is what a DialFunc wraps when the VM no longer exists: the
// Manager then closes that VM's listeners.
var ErrVMGone = errors.New("the VM no longer exists")

// DialFunc opens a connection to guestPort of the VM vmID through its
// agent (agentmux's Session.Dial). It fails at once when the VM is not
// running.
type DialFunc func(ctx context.Context, vmID string, guestPort int) (net.Conn, error)

// Manager holds the daemon's published ports. Its methods are safe for
// concurrent use.
type Manager struct {
	// Dial reaches a guest port.
	Dial DialFunc
	// MaxConns bounds each port's live connections (DefaultMaxConns when
	// zero).
	MaxConns int
	// Log hears of refused and failed connections; nil discards.
	Log *slog.Logger
	// Allow, when set, decides whether an accepted connection may reach
	// the guest (the daemon lets only its owner and root through: see
	// PeerUID); a refused one is closed at once.
	Allow func(net.Conn) error

	mu     sync.Mutex
	ports  map[key]*forward
	closed bool
}

type key struct {
	vm    string
	guest int
}

func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

func (m *Manager) maxConns() int {
	if m.MaxConns > 0 {
		return m.MaxConns
	}
	return DefaultMaxConns
}

// Publish listens on 127.0.0.1:hostPort (0 picks a free port) and relays
// its connections to guestPort of the VM vmID. A guest port already
// published for that VM, or a host port in use, is an error naming the
// fix.
func (m *Manager) Publish(vmID string, guestPort, hostPort int) (api.PublishedPort, error) {
	if guestPort < 1 || guestPort > 65535 {
		return api.PublishedPort{}, api.FieldErrorf("guest_port", "a TCP port, 1 to 65535", "guest port %d is not a TCP port: give 1 to 65535", guestPort)
	}
	if hostPort < 0 || hostPort > 65535 {
		return api.PublishedPort{}, api.FieldErrorf("host_port", "a TCP port, 1 to 65535, or 0 for a free one", "host port %d is not a TCP port: give 1 to 65535, or leave it out for a free one", hostPort)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return api.PublishedPort{}, errors.New("portfwd: the daemon is shutting down")
	}
	k := key{vmID, guestPort}
	if f, ok := m.ports[k]; ok {
		return api.PublishedPort{}, api.Errorf(api.CodeAlreadyExists, "guest port %d is already published on %s: use that, or remove it first (`banger vm port NAME --rm %d`)", guestPort, f.url(), guestPort)
	}
	l, err := net.Listen("tcp4", net.JoinHostPort(Address, strconv.Itoa(hostPort)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return api.PublishedPort{}, api.Errorf(api.CodeAlreadyExists, "host port %d on %s is in use: pick another HOSTPORT, or leave it out to get a free one", hostPort, Address)
		}
		return api.PublishedPort{}, fmt.Errorf("portfwd: listening on %s:%d: %w", Address, hostPort, err)
	}
	f := &forward{m: m, vm: vmID, guest: guestPort, l: l, sem: make(chan struct{}, m.maxConns()), conns: map[net.Conn]struct{}{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	if m.ports == nil {
		m.ports = map[key]*forward{}
	}
	m.ports[k] = f
	f.wg.Add(1)
	go f.serve()
	return f.published(), nil
}

// Unpublish closes the listener of guestPort of vmID and its live
// connections; it reports whether there was one.
func (m *Manager) Unpublish(vmID string, guestPort int) bool {
	m.mu.Lock()
	f, ok := m.ports[key{vmID, guestPort}]
	delete(m.ports, key{vmID, guestPort})
	m.mu.Unlock()
	if ok {
		f.close()
	}
	return ok
}

// CloseVM closes every listener of vmID (the VM was deleted).
func (m *Manager) CloseVM(vmID string) {
	m.mu.Lock()
	var fs []*forward
	for k, f := range m.ports {
		if k.vm == vmID {
			fs = append(fs, f)
			delete(m.ports, k)
		}
	}
	m.mu.Unlock()
	for _, f := range fs {
		f.close()
	}
}

// Ports lists vmID's published ports by guest port.
func (m *Manager) Ports(vmID string) []api.PublishedPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []api.PublishedPort
	for k, f := range m.ports {
		if k.vm == vmID {
			out = append(out, f.published())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GuestPort < out[j].GuestPort })
	return out
}

// VMs lists the VMs that have listeners (for a check that none lingers
// after its VM).
func (m *Manager) VMs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for k := range m.ports {
		if !seen[k.vm] {
			seen[k.vm] = true
			out = append(out, k.vm)
		}
	}
	sort.Strings(out)
	return out
}

// Close ends every listener and live connection; later Publish calls
// fail.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	fs := m.ports
	m.ports = nil
	m.mu.Unlock()
	for _, f := range fs {
		f.close()
	}
	return nil
}

// forward is one published port.
type forward struct {
	m     *Manager
	vm    string
	guest int
	l     net.Listener
	sem   chan struct{} // one token per live connection
	wg    sync.WaitGroup
	// ctx ends when the forward closes (a dial in progress gives up).
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // live client and guest ends
	closed bool
}

func (f *forward) hostPort() int { return f.l.Addr().(*net.TCPAddr).Port }

func (f *forward) url() string { return net.JoinHostPort(Address, strconv.Itoa(f.hostPort())) }

func (f *forward) published() api.PublishedPort {
	return api.PublishedPort{GuestPort: f.guest, HostPort: f.hostPort(), Address: Address}
}

// serve accepts until the listener closes.
func (f *forward) serve() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.m.log().Warn("published port: accept failed", "vm", f.vm, "guest_port", f.guest, "err", err)
			time.Sleep(50 * time.Millisecond) // out of file descriptors, say: do not spin
			continue
		}
		select {
		case f.sem <- struct{}{}:
		default:
			f.m.log().Warn("published port: too many connections, closing a new one", "vm", f.vm, "guest_port", f.guest, "bound", cap(f.sem))
			c.Close()
			continue
		}
		if allow := f.m.Allow; allow != nil {
			if err := allow(c); err != nil {
				f.m.log().Warn("published port: connection refused", "vm", f.vm, "guest_port", f.guest, "peer", c.RemoteAddr().String(), "reason", err)
				c.Close()
				<-f.sem
				continue
			}
		}
		if !f.track(c) {
			c.Close()
			<-f.sem
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer func() { <-f.sem }()
			f.relay(c)
		}()
	}
}

// track records a live connection end; false when the forward closed.
func (f *forward) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forward) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

// relay connects client to the guest port and copies both ways, each
// half closed when its source ends; an error either way closes both.
func (f *forward) relay(client net.Conn) {
	defer f.untrack(client)
	ctx, cancel := context.WithTimeout(f.ctx, dialTimeout)
	guest, err := f.m.Dial(ctx, f.vm, f.guest)
	cancel()
	if err != nil {
		f.m.log().Info("published port: cannot reach the guest port; closing the connection", "vm", f.vm, "guest_port", f.guest, "err", err)
		if errors.Is(err, ErrVMGone) {
			go f.m.CloseVM(f.vm)
		}
		return
	}
	if !f.track(guest) {
		guest.Close()
		return
	}
	defer f.untrack(guest)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pipe(guest, client)
	}()
	pipe(client, guest)
	wg.Wait()
}

// pipe copies src to dst, then half-closes dst; an error closes both.
func pipe(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	dst.Close()
}

// close ends the listener and every live connection, and waits for the
// relays.
func (f *forward) close() {
	f.l.Close()
	f.cancel()
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
