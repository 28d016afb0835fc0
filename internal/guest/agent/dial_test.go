package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// startHTTP serves "hello from NETWORK" on a loopback listener of network
// ("tcp4" on 127.0.0.1, "tcp6" on ::1) and returns its port.
func startHTTP(t *testing.T, network, addr string) int {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("no %s loopback here (%v): the ::1 fallback cannot be checked", network, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", network)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// agentSession runs the agent's server on a vsock stand-in and returns an
// upgraded session to it.
func agentSession(t *testing.T) *agentmux.Session {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vsock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s := testServer(t)
	s.vsock = fakeVsock{unixListener{ln}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	uctx, ucancel := context.WithTimeout(ctx, time.Minute)
	defer ucancel()
	sess, err := agentmux.Upgrade(uctx, conn, testKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// The agent relays a dial stream to a service on the guest's loopback —
// on 127.0.0.1, or on ::1 when nothing listens on 127.0.0.1 — and says
// when nothing listens at all.
func TestAgentServesDial(t *testing.T) {
	sess := agentSession(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tests := []struct {
		name    string
		network string
		addr    string
	}{
		{"ipv4 loopback", "tcp4", "127.0.0.1:0"},
		{"ipv6 loopback only", "tcp6", "[::1]:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := startHTTP(t, tt.network, tt.addr)
			c, err := sess.Dial(ctx, port)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			req, _ := http.NewRequest("GET", "http://guest:"+strconv.Itoa(port)+"/", nil)
			if err := req.Write(c); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), req)
			if err != nil {
				t.Fatalf("reading the answer through the agent: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if want := "hello from " + tt.network; string(body) != want {
				t.Errorf("body %q, want %q", body, want)
			}
		})
	}
	t.Run("nothing listens", func(t *testing.T) {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, err := sess.Dial(ctx, port); !errors.Is(err, agentmux.ErrPortNotListening) {
			t.Fatalf("Dial to a closed port = %v, want ErrPortNotListening", err)
		}
	})
}
