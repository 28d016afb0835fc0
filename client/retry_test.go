package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/api"
)

// flakyDaemon is a daemon socket whose first connections break the way a
// daemon going away breaks them, and whose later ones answer every request
// with the same JSON. It records what each connection saw.
type flakyDaemon struct {
	mu    sync.Mutex
	conns []string // per connection: "reset", "eof" or the request line answered
	seen  chan struct{}
}

// breakHow is what the daemon does to a connection it breaks.
type breakHow string

const (
	// breakReset reads one byte of the request and closes: the rest is
	// unread, so the kernel resets the client's end (ECONNRESET), as when
	// a daemon exits with a request in its socket.
	breakReset breakHow = "reset"
	// breakEOF reads the whole request and closes without answering.
	breakEOF breakHow = "eof"
)

// startFlaky serves on a fresh socket; the first failures connections
// are broken as how says.
func startFlaky(t *testing.T, failures int, how breakHow, answer string) (*flakyDaemon, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bgr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return startFlakyOn(t, filepath.Join(dir, "bangerd.sock"), failures, how, answer)
}

// startFlakyAt serves answer, breaking nothing, on sock.
func startFlakyAt(t *testing.T, sock, answer string) (*flakyDaemon, string) {
	return startFlakyOn(t, sock, 0, breakReset, answer)
}

func startFlakyOn(t *testing.T, sock string, failures int, how breakHow, answer string) (*flakyDaemon, string) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	d := &flakyDaemon{seen: make(chan struct{}, 100)}
	go func() {
		for n := 1; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			d.serve(c, n <= failures, how, answer)
		}
	}()
	return d, sock
}

func (d *flakyDaemon) serve(c net.Conn, fail bool, how breakHow, answer string) {
	defer c.Close()
	defer func() { d.seen <- struct{}{} }()
	if fail && how == breakReset {
		c.Read(make([]byte, 1)) // not buffered: the rest must stay unread
		d.record("reset")
		return
	}
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		d.record("unreadable: " + err.Error())
		return
	}
	io.Copy(io.Discard, req.Body)
	if fail {
		d.record("eof")
		return
	}
	d.record(req.Method + " " + req.URL.Path)
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(answer), answer)
}

func (d *flakyDaemon) record(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conns = append(d.conns, s)
}

func (d *flakyDaemon) connections() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.conns...)
}

// quickRetry is the default policy's shape with short waits.
var quickRetry = retryPolicy{attempts: 5, first: time.Millisecond}

// TestRetryWhileTheDaemonIsReplaced: a GET rides out connections reset or
// closed before an answer (a daemon exiting with the request unread, the
// socket being taken over by a new one) within its attempts; a request
// that may change something, and a stream, are sent once.
func TestRetryWhileTheDaemonIsReplaced(t *testing.T) {
	status := `{"pid":42}`
	tests := []struct {
		name      string
		failures  int
		how       breakHow
		call      func(context.Context, *Client) error
		wantErr   error // nil: success
		wantConns []string
	}{
		{"GET after two resets", 2, breakReset, getStatus, nil,
			[]string{"reset", "reset", "GET /v1/daemon"}},
		{"GET after two closes without an answer", 2, breakEOF, getStatus, nil,
			[]string{"eof", "eof", "GET /v1/daemon"}},
		{"GET gives up after its attempts", 100, breakReset, getStatus, syscall.ECONNRESET,
			[]string{"reset", "reset", "reset", "reset", "reset"}},
		{"POST is sent once", 1, breakReset, func(ctx context.Context, c *Client) error {
			return c.Shutdown(ctx, "test")
		}, syscall.ECONNRESET, []string{"reset"}},
		{"DELETE is sent once", 1, breakEOF, func(ctx context.Context, c *Client) error {
			return c.DeleteVM(ctx, "demo")
		}, io.EOF, []string{"eof"}},
		{"a stream is opened once", 1, breakReset, func(ctx context.Context, c *Client) error {
			_, err := c.WatchOperation(ctx, "op-1", nil)
			return err
		}, syscall.ECONNRESET, []string{"reset"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, sock := startFlaky(t, tt.failures, tt.how, status)
			c := New(sock)
			c.retry = quickRetry
			defer c.Close()
			err := tt.call(context.Background(), c)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("got %v, want success", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			// The daemon records a connection before it closes it; wait
			// for the last one to be recorded.
			for range tt.wantConns {
				<-d.seen
			}
			if got := d.connections(); fmt.Sprint(got) != fmt.Sprint(tt.wantConns) {
				t.Errorf("connections %q, want %q", got, tt.wantConns)
			}
		})
	}
}

func getStatus(ctx context.Context, c *Client) error {
	st, err := c.DaemonStatus(ctx)
	if err == nil && st.PID != 42 {
		return fmt.Errorf("status %+v, want pid 42", st)
	}
	return err
}

// TestRetryStopsWithTheContext: a cancelled context ends the waiting
// between attempts with the last failure.
func TestRetryStopsWithTheContext(t *testing.T) {
	d, sock := startFlaky(t, 100, breakReset, "{}")
	c := New(sock)
	c.retry = retryPolicy{attempts: 5, first: time.Hour}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-d.seen // the first attempt failed; the client now waits an hour
		cancel()
	}()
	_, err := c.DaemonStatus(ctx)
	// The daemon records the reset before the client reads it, so the
	// cancel may also land on the first attempt itself.
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the reset or the cancel", err)
	}
	if got := d.connections(); len(got) != 1 {
		t.Errorf("connections %q, want one", got)
	}
}

// TestNoRetryWhenNoDaemonListens: a socket nobody listens on (a daemon
// that died) is reported at once as not running, which is what daemonctl
// starts a daemon on.
func TestNoRetryWhenNoDaemonListens(t *testing.T) {
	dir, err := os.MkdirTemp("", "bgr")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "bangerd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the socket file stays, as a SIGKILLed daemon leaves it
	c := New(sock)
	c.retry = retryPolicy{attempts: 5, first: time.Hour} // a retry would hang the test
	defer c.Close()
	_, err = c.DaemonStatus(context.Background())
	if !IsNotRunning(err) {
		t.Fatalf("got %v, want not running", err)
	}
}

// TestRetryWhenTheListenerDies is the daemon-kill race end to end: the
// request is queued on a daemon's socket that never accepts it, that
// daemon goes away (its listener closes with our connection still queued,
// so the kernel resets it), and a new daemon listens on the same path.
// The GET lands on the new one.
func TestRetryWhenTheListenerDies(t *testing.T) {
	dir, err := os.MkdirTemp("", "bgr")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "bangerd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	dying := l.(*net.UnixListener)
	c := New(sock)
	c.retry = quickRetry
	defer c.Close()
	done := make(chan error, 1)
	var st api.DaemonStatus
	go func() {
		var err error
		st, err = c.DaemonStatus(context.Background())
		done <- err
	}()
	// Wait until the connection is queued: the listener polls readable.
	rc, err := dying.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var pollErr error
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 10_000)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || n == 0 {
				pollErr = fmt.Errorf("no connection was queued: %v", err)
			}
			return
		}
	})
	if pollErr != nil {
		t.Fatal(pollErr)
	}
	dying.Close() // unlinks the socket too
	// The new daemon.
	_, sock2 := startFlakyAt(t, sock, `{"pid":43}`)
	if err := <-done; err != nil {
		t.Fatalf("GET after the daemon was replaced: %v", err)
	}
	if st.PID != 43 || sock2 != sock {
		t.Errorf("status %+v from %s, want the new daemon's", st, sock2)
	}
}
