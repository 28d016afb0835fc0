package portfwd

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// realSession runs a real agentmux guest on one end of a socketpair (the
// shape of a virtio-serial port) and returns the host's session on the
// other: the whole agent channel, without a VM.
func realSession(b *testing.B) *agentmux.Session {
	b.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, fd := range fds {
		syscall.SetNonblock(fd, true)
	}
	host, guest := os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "guest")
	key := make([]byte, agentmux.KeySize)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&agentmux.Guest{Key: key}).Serve(ctx, guest)
		close(done)
	}()
	sess, err := agentmux.Upgrade(ctx, host, key)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sess.Close(); cancel(); host.Close(); guest.Close(); <-done })
	return sess
}

// BenchmarkForward measures a published port end to end: a TCP client on
// the host's loopback, the Manager's listener, a dial stream through a
// real agent session over a socketpair, and a TCP service on loopback
// standing in for the guest's, each way.
func BenchmarkForward(b *testing.B) {
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	for _, dir := range []string{"host-to-guest", "guest-to-host"} {
		b.Run(dir, func(b *testing.B) {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			got := make(chan int64, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				if dir == "host-to-guest" {
					n, _ := io.Copy(io.Discard, c)
					got <- n
					return
				}
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
			sess := realSession(b)
			service := l.Addr().(*net.TCPAddr).Port
			m := &Manager{Dial: func(ctx context.Context, _ string, _ int) (net.Conn, error) { return sess.Dial(ctx, service) }}
			defer m.Close()
			p, err := m.Publish("bench", 80, 0)
			if err != nil {
				b.Fatal(err)
			}
			c, err := net.Dial("tcp", net.JoinHostPort(p.Address, strconv.Itoa(p.HostPort)))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(chunk)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if dir == "host-to-guest" {
					_, err = c.Write(buf)
				} else {
					_, err = io.ReadFull(c, buf)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if dir == "host-to-guest" {
				c.(*net.TCPConn).CloseWrite()
				if n := <-got; n != int64(b.N)*chunk {
					b.Fatalf("the service got %d bytes, want %d", n, int64(b.N)*chunk)
				}
			}
		})
	}
}
