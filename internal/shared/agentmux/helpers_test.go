package agentmux

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// testKey is the agent key of the tests' guests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// fakeHandler keeps put files in memory and records what it served.
type fakeHandler struct {
	mu    sync.Mutex
	files map[string][]byte
	puts  []Transfer
}

var sampleHealth = agentproto.Health{Hostname: "quiet-otter", Kernel: "6.1.0", Root: "ext4"}

func (f *fakeHandler) Health(context.Context) (agentproto.Health, error) { return sampleHealth, nil }

// putResult is what fakeHandler.Put answers.
type putResult struct {
	Bytes int    `json:"bytes"`
	Op    string `json:"op"`
}

func (f *fakeHandler) Put(ctx context.Context, req Transfer, r io.Reader) (any, error) {
	if req.Path == "/readonly" {
		return nil, &Error{Code: "read_only", Message: "/readonly is read-only"}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files == nil {
		f.files = map[string][]byte{}
	}
	f.files[req.Path] = b
	f.puts = append(f.puts, req)
	return putResult{Bytes: len(b), Op: req.Op}, nil
}

func (f *fakeHandler) Get(ctx context.Context, req Transfer, w io.Writer) error {
	f.mu.Lock()
	b, ok := f.files[req.Path]
	f.mu.Unlock()
	if !ok {
		return errors.New("no such file: " + req.Path)
	}
	_, err := w.Write(b)
	return err
}

// transport makes a connected host and guest end.
type transport struct {
	name string
	pair func(t testing.TB) (host, guest io.ReadWriteCloser)
}

var transports = []transport{
	{"net.Pipe", func(t testing.TB) (io.ReadWriteCloser, io.ReadWriteCloser) {
		h, g := net.Pipe()
		return h, g
	}},
	{"socketpair", func(t testing.TB) (io.ReadWriteCloser, io.ReadWriteCloser) {
		h, g := socketPair(t)
		return h, g
	}},
}

// socketPair returns the two ends of a stream socket as pollable files: a
// byte stream without message boundaries, with deadlines, like a
// virtio-serial port.
func socketPair(t testing.TB) (*os.File, *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if err := syscall.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
	}
	a, b := os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "guest")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// serveGuest runs g.Serve on guest until the test ends.
func serveGuest(t testing.TB, g *Guest, host, guest io.ReadWriteCloser) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- g.Serve(ctx, guest)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		host.Close()
		guest.Close()
		<-finished
	})
	return done
}

// newSession upgrades a fresh channel to a guest serving h.
func newSession(t *testing.T, tr transport, h Handler) *Session {
	t.Helper()
	host, guest := tr.pair(t)
	serveGuest(t, &Guest{Handler: h, Key: testKey}, host, guest)
	s, err := Upgrade(testContext(t), host, testKey)
	if err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testContext bounds a test that hangs on a protocol bug; nothing asserts
// on time.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// hostLink is one host connection onto a long-lived byte stream: Close
// ends this connection's reads and writes but keeps the stream, as a host
// process that dies leaves a virtio-serial port behind.
type hostLink struct {
	f      *os.File
	mu     sync.Mutex // held during a read
	closed atomic.Bool
}

func (l *hostLink) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, io.EOF
	}
	return l.f.Read(p)
}

func (l *hostLink) Write(p []byte) (int, error) {
	if l.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	return l.f.Write(p)
}

func (l *hostLink) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.f.SetReadDeadline(aLongTimeAgo())
	l.mu.Lock()
	l.f.SetReadDeadline(time.Time{})
	l.mu.Unlock()
	return nil
}

// signalWriter collects output and closes seen once it contains want.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func newSignalWriter(want string) *signalWriter {
	return &signalWriter{want: want, seen: make(chan struct{})}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), []byte(w.want)) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
