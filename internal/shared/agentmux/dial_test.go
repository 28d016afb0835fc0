package agentmux

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// listenLoopback starts a TCP server on 127.0.0.1 that runs serve on each
// connection, and returns its port.
func listenLoopback(t testing.TB, serve func(c *net.TCPConn)) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c.(*net.TCPConn))
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// freePort returns a loopback port nothing listens on (it was free a
// moment ago).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// newDialSession upgrades a fresh channel to g (its Key set here).
func newDialSession(t testing.TB, tr transport, g *Guest) *Session {
	t.Helper()
	host, guest := tr.pair(t)
	g.Key = testKey
	serveGuest(t, g, host, guest)
	s, err := Upgrade(context.Background(), host, testKey)
	if err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The host's half-close reaches the service as EOF, after which the
// service's answer still comes back; the service's half-close reaches the
// host as EOF, after which the host's bytes still reach the service.
func TestDialRelaysBothWaysWithHalfClose(t *testing.T) {
	upper := listenLoopback(t, func(c *net.TCPConn) {
		b, _ := io.ReadAll(c) // until the host's half-close
		c.Write(bytes.ToUpper(b))
	})
	greetFirst := listenLoopback(t, func(c *net.TCPConn) {
		c.Write([]byte("hello from the guest"))
		c.CloseWrite()
		b, _ := io.ReadAll(c)
		c.Write(b) // fails: the write side is shut; the test reads b below
		_ = b
	})
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := newDialSession(t, tr, &Guest{})
			ctx := testContext(t)

			c, err := s.Dial(ctx, upper)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			msg := strings.Repeat("echo through the agent ", 20000) // several frames and windows
			go func() {
				c.Write([]byte(msg))
				c.CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			if string(got) != strings.ToUpper(msg) {
				t.Fatalf("answer is %d bytes, want %d upper-cased", len(got), len(msg))
			}

			c2, err := s.Dial(ctx, greetFirst)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c2.Close()
			got, err = io.ReadAll(c2) // EOF: the service shut its write side
			if err != nil || string(got) != "hello from the guest" {
				t.Fatalf("greeting = %q, %v", got, err)
			}
			if _, err := c2.Write([]byte("still open")); err != nil {
				t.Fatalf("writing after the guest's half-close: %v", err)
			}
		})
	}
}

// A guest port nothing listens on, an agent at its bound, a port out of
// range and an agent without dial streams (an old agent answers
// unknown_type) each come back as the error that names the fix.
func TestDialRefusals(t *testing.T) {
	ctx := testContext(t)
	hold := make(chan struct{})
	held := listenLoopback(t, func(c *net.TCPConn) { <-hold })
	t.Cleanup(func() { close(hold) }) // before the listener's cleanup, which waits
	tests := []struct {
		name    string
		guest   *Guest
		port    func() int
		hold    bool // dial once and keep it before the dial under test
		wantErr error
		wantMsg string
	}{
		{name: "nothing listens", guest: &Guest{}, port: func() int { return freePort(t) }, wantErr: ErrPortNotListening, wantMsg: "the service is not up yet"},
		{name: "an old agent", guest: &Guest{Dial: func(context.Context, int) (net.Conn, error) {
			return nil, &Error{Code: CodeUnknownType, Message: `unknown request type "dial"`}
		}}, port: func() int { return 80 }, wantErr: ErrDialUnsupported, wantMsg: "banger vm restart"},
		{name: "the agent's bound", guest: &Guest{MaxDials: 1}, port: func() int { return held }, hold: true, wantErr: ErrDialBusy, wantMsg: "close some"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDialSession(t, transports[1], tt.guest)
			if tt.hold {
				c, err := s.Dial(ctx, tt.port())
				if err != nil {
					t.Fatalf("first Dial: %v", err)
				}
				defer c.Close()
			}
			_, err := s.Dial(ctx, tt.port())
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Dial error = %v, want %v naming %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
	t.Run("port out of range", func(t *testing.T) {
		s := newDialSession(t, transports[0], &Guest{})
		if _, err := s.Dial(ctx, 70000); err == nil || !strings.Contains(err.Error(), "1 to 65535") {
			t.Fatalf("Dial(70000) = %v, want a range error", err)
		}
	})
}

// A connection relayed when the session ends fails on the host instead of
// hanging, and the guest closes its side of the service's connection.
func TestDialEndsWithTheSession(t *testing.T) {
	closed := make(chan struct{})
	port := listenLoopback(t, func(c *net.TCPConn) {
		io.Copy(io.Discard, c) // until the guest closes it
		close(closed)
	})
	s := newDialSession(t, transports[1], &Guest{})
	c, err := s.Dial(testContext(t), port)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := io.ReadAll(c); err == nil {
		// ReadAll returning nil means EOF: acceptable only as an error here
		// when the session is gone, so check a write fails too.
		if _, err := c.Write([]byte("x")); err == nil {
			t.Fatal("the connection still accepts writes after its session closed")
		}
	}
	<-closed
}

// BenchmarkDialThroughput measures how fast a dial stream relays bytes
// through a real session over a socketpair (the shape of a virtio-serial
// port) to a TCP service on loopback, each way.
func BenchmarkDialThroughput(b *testing.B) {
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	b.Run("host-to-guest", func(b *testing.B) {
		done := make(chan int64, 1)
		port := listenLoopback(b, func(c *net.TCPConn) {
			n, _ := io.Copy(io.Discard, c)
			done <- n
		})
		s := newDialSession(b, transports[1], &Guest{})
		c, err := s.Dial(context.Background(), port)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(chunk)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.CloseWrite()
		if n := <-done; n != int64(b.N)*chunk {
			b.Fatalf("the service got %d bytes, want %d", n, int64(b.N)*chunk)
		}
		b.StopTimer()
		c.Close()
	})
	b.Run("guest-to-host", func(b *testing.B) {
		port := listenLoopback(b, func(c *net.TCPConn) {
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		})
		s := newDialSession(b, transports[1], &Guest{})
		c, err := s.Dial(context.Background(), port)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.SetBytes(chunk)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
