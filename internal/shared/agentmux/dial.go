package agentmux

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

// DefaultMaxDials bounds the dial streams a Guest relays at once.
const DefaultMaxDials = 256

// dialTimeout bounds the guest's connect to its own loopback.
const dialTimeout = 10 * time.Second

var (
	// ErrDialUnsupported: the agent predates dial streams (it answered
	// unknown_type). Restarting the VM boots it with the current agent.
	ErrDialUnsupported = errors.New("the VM's agent predates port publishing: restart the VM with `banger vm restart` so it runs an agent that relays ports")
	// ErrPortNotListening: nothing listens on the guest port.
	ErrPortNotListening = errors.New("nothing listens on that guest port: the service is not up yet; start it (or wait for it) and connect again")
	// ErrDialBusy: the agent relays as many connections as it allows.
	ErrDialBusy = errors.New("the agent relays as many connections as it allows: close some and connect again")
)

// Dial opens a dial stream: the guest connects to port on its loopback
// (127.0.0.1, then ::1) and relays bytes both ways until each side has
// closed its half. It returns once the guest has connected; ctx bounds
// only that (the reply timeout too). A guest port nothing listens on is
// an error wrapping ErrPortNotListening, an agent without dial streams
// ErrDialUnsupported, an agent at its bound ErrDialBusy.
//
// On the stream, after the accepting reply line, bytes are the TCP
// connection's, unframed: the host's half-close (Conn.CloseWrite, a yamux
// FIN) is the guest's shutdown of its socket's write side, and the
// guest's EOF from the socket is a FIN to the host.
func (s *Session) Dial(ctx context.Context, port int) (*Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("agentmux: guest port %d is out of range: give 1 to 65535", port)
	}
	st, _, err := s.Open(ctx, Header{Type: TypeDial, Port: port})
	if err != nil {
		return nil, dialError(s.cfg.peer(), port, err)
	}
	if !st.stop() { // ctx ended after the reply: its deadline is set
		st.Close()
		return nil, fmt.Errorf("agentmux: dialing guest port %d: %w", port, ctx.Err())
	}
	return &Conn{st: st, port: port}, nil
}

// dialError names what a dial's refusal means and how to fix it.
func dialError(peer string, port int, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return fmt.Errorf("agentmux: dialing guest port %d in %s: %w", port, peer, err)
	}
	switch e.Code {
	case CodeUnknownType:
		return fmt.Errorf("agentmux: %s cannot relay guest port %d: %w", peer, port, ErrDialUnsupported)
	case CodeDialRefused:
		return fmt.Errorf("agentmux: guest port %d in %s: %w (%s)", port, peer, ErrPortNotListening, e.Message)
	case CodeDialBusy:
		return fmt.Errorf("agentmux: guest port %d in %s: %w", port, peer, ErrDialBusy)
	}
	return fmt.Errorf("agentmux: dialing guest port %d in %s: %w", port, peer, err)
}

// Conn is a dial stream seen as a net.Conn: a TCP connection to a guest
// port, relayed by the agent.
type Conn struct {
	st   *Stream
	port int
}

var _ net.Conn = (*Conn)(nil)

// Read reads what the guest's service sent; io.EOF once it closed its
// half.
func (c *Conn) Read(p []byte) (int, error) { return c.st.Read(p) }

// Write sends p to the guest's service.
func (c *Conn) Write(p []byte) (int, error) { return c.st.Write(p) }

// CloseWrite ends what the host sends; the service reads EOF, and its
// answer can still be read.
func (c *Conn) CloseWrite() error { return c.st.st.Close() }

// Close ends both halves: a FIN to the guest, and reads and writes fail
// from now on.
func (c *Conn) Close() error {
	err := c.st.st.Close()
	c.st.st.SetDeadline(aLongTimeAgo())
	return err
}

// LocalAddr and RemoteAddr name the guest port (network "agent").
func (c *Conn) LocalAddr() net.Addr  { return guestAddr(0) }
func (c *Conn) RemoteAddr() net.Addr { return guestAddr(c.port) }

func (c *Conn) SetDeadline(t time.Time) error      { return c.st.st.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.st.st.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.st.st.SetWriteDeadline(t) }

// guestAddr is a guest port reached through the agent channel.
type guestAddr int

func (guestAddr) Network() string  { return "agent" }
func (a guestAddr) String() string { return "guest:" + strconv.Itoa(int(a)) }

// DialLoopback connects to port on the guest's loopback: 127.0.0.1, then
// ::1 when that fails. The IPv4 error is returned when both fail.
func DialLoopback(ctx context.Context, port int) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err == nil {
		return c, nil
	}
	if c6, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); err6 == nil {
		return c6, nil
	}
	return nil, err
}

// dialCounter counts a Guest's dial streams.
type dialCounter struct {
	mu sync.Mutex
	n  int
}

func (d *dialCounter) acquire(max int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n >= max {
		return false
	}
	d.n++
	return true
}

func (d *dialCounter) release() {
	d.mu.Lock()
	d.n--
	d.mu.Unlock()
}

func (g *Guest) maxDials() int {
	if g.MaxDials > 0 {
		return g.MaxDials
	}
	return DefaultMaxDials
}

// serveDial connects to port and relays: the stream's bytes (r holds
// those read after the header) to the connection, the connection's to
// the stream, each half closed when its source ends. Bytes are relayed,
// never parsed.
func (g *Guest) serveDial(ctx context.Context, st *yamux.Stream, r *bufio.Reader, port int) {
	if port < 1 || port > 65535 {
		writeReply(st, Reply{Error: &Error{Code: CodeBadRequest, Message: fmt.Sprintf("guest port %d is out of range: give 1 to 65535", port)}})
		return
	}
	if !g.dials.acquire(g.maxDials()) {
		writeReply(st, Reply{Error: &Error{Code: CodeDialBusy, Message: fmt.Sprintf("the agent relays %d connections already, its bound: close some and connect again", g.maxDials())}})
		return
	}
	defer g.dials.release()
	dial := g.Dial
	if dial == nil {
		dial = DialLoopback
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	c, err := dial(dctx, port)
	cancel()
	if err != nil {
		e := asError(err, fmt.Sprintf("connecting to guest port %d", port))
		if errors.Is(err, syscall.ECONNREFUSED) {
			e = &Error{Code: CodeDialRefused, Message: fmt.Sprintf("nothing listens on port %d on the guest's 127.0.0.1 or ::1", port)}
		}
		writeReply(st, Reply{Error: e})
		return
	}
	defer c.Close()
	if writeReply(st, Reply{}) != nil {
		return
	}
	// The session ending (or Serve's ctx) ends the relay.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := io.Copy(c, r); err != nil {
			// The service is gone: stop relaying to it, but keep reading
			// so the host's writes never block.
			c.Close()
			io.Copy(io.Discard, r)
			return
		}
		closeWrite(c)
	}()
	io.Copy(st, c)
	st.Close() // a FIN: the host reads EOF
	wg.Wait()
}

// closeWrite shuts down c's write side when it has one, else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
