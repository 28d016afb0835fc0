package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// fixedHealth answers health with a fixed hostname.
type fixedHealth struct{ hostname string }

func (f fixedHealth) Health(context.Context) (agentproto.Health, error) {
	return agentproto.Health{Hostname: f.hostname}, nil
}

// noVsock is a kernel without vsock.
type noVsock struct{}

func (noVsock) LocalCID() (uint32, error) { return 0, errors.New("no /dev/vsock in this test") }
func (noVsock) Listen(uint32) (streamListener, error) {
	return nil, errors.New("no vsock in this test")
}

// sleepRecorder is a sleep that returns at once and records each delay.
type sleepRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (r *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.delays = append(r.delays, d)
	r.mu.Unlock()
	return ctx.Err()
}

func (r *sleepRecorder) take() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.delays
	r.delays = nil
	return d
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// testKey is the agent key of the test servers.
var testKey = []byte("this boot's agent key: 32 bytes!")

// health asks the agent at the other end of rw for its health over an
// authenticated protocol 2 session with key, which it then closes (and
// rw). A timed-out upgrade leaves rw open, to retry on it.
func health(ctx context.Context, rw io.ReadWriteCloser, key []byte) (agentproto.Health, error) {
	sess, err := agentmux.Upgrade(ctx, rw, key)
	if err != nil {
		return agentproto.Health{}, err
	}
	defer sess.Close()
	return sess.Health(ctx)
}

func testServer(t *testing.T) *server {
	s := newServer(testLogger(t))
	s.keys.set(testKey)
	s.handler = fixedHealth{"guest"}
	s.vsock = noVsock{}
	s.sysDir, s.devDir = t.TempDir(), t.TempDir()
	return s
}

// scriptedReader returns its reads in order, then EOF forever.
type scriptedReader struct {
	reads []any // string (data) or error
}

func (r *scriptedReader) Read(p []byte) (int, error) {
	if len(r.reads) == 0 {
		return 0, io.EOF
	}
	next := r.reads[0]
	r.reads = r.reads[1:]
	switch v := next.(type) {
	case string:
		return copy(p, v), nil
	case error:
		return 0, v
	}
	panic("bad script")
}

func TestPatientReader(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name       string
		reads      []any
		wantData   string
		wantErr    error
		wantDelays []time.Duration
	}{
		{
			name:       "data at once",
			reads:      []any{"req\n"},
			wantData:   "req\n",
			wantDelays: nil,
		},
		{
			name:       "EOF and EAGAIN while no host is connected: back off, no spinning",
			reads:      []any{io.EOF, io.EOF, syscall.EAGAIN, io.EOF, io.EOF, "req\n"},
			wantData:   "req\n",
			wantDelays: []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 80 * ms},
		},
		{
			name:       "idle for reopenAfter: reopen",
			reads:      nil, // EOF forever
			wantErr:    errIdle,
			wantDelays: []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 80 * ms, 80 * ms}, // 310ms >= 300ms
		},
		{
			name:       "a real error ends the read",
			reads:      []any{io.EOF, syscall.EIO},
			wantErr:    syscall.EIO,
			wantDelays: []time.Duration{10 * ms},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &sleepRecorder{}
			pr := &patientReader{
				ctx: context.Background(), r: &scriptedReader{reads: tt.reads}, sleep: rec.sleep,
				backoff: backoff{Min: 10 * ms, Max: 80 * ms}, reopenAfter: 300 * ms,
			}
			buf := make([]byte, 64)
			n, err := pr.Read(buf)
			if !errors.Is(err, tt.wantErr) || string(buf[:n]) != tt.wantData {
				t.Errorf("Read = %q, %v; want %q, %v", buf[:n], err, tt.wantData, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantDelays, rec.take()); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
			if err == nil && (pr.delay != 0 || pr.waited != 0) {
				t.Errorf("data did not reset the backoff: delay %v waited %v", pr.delay, pr.waited)
			}
		})
	}
}

func TestFindSerialPort(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	port := func(name, portName string, node bool) {
		dir := filepath.Join(sys, "class", "virtio-ports", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "name"), []byte(portName+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
		if node {
			if err := os.WriteFile(filepath.Join(dev, name), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p, ok := findSerialPort(sys, dev, agentproto.SerialPortName); ok {
		t.Errorf("found %s in an empty tree", p)
	}
	port("vport1p1", "org.qemu.guest_agent.0", true)
	port("vport2p1", agentproto.SerialPortName, false) // no device node yet
	if p, ok := findSerialPort(sys, dev, agentproto.SerialPortName); ok {
		t.Errorf("found %s before its device node exists", p)
	}
	port("vport2p1", agentproto.SerialPortName, true)
	if p, ok := findSerialPort(sys, dev, agentproto.SerialPortName); !ok || p != filepath.Join(dev, "vport2p1") {
		t.Errorf("findSerialPort = %q, %v; want %s", p, ok, filepath.Join(dev, "vport2p1"))
	}
}

// socketPair returns both ends of a Unix stream socket pair as pollable
// files (so deadlines work, as on a virtio-serial port).
func socketPair(t *testing.T) (host, guest *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "guest")
}

// TestServePortReopens serves a socket pair standing in for the
// virtio-serial port: when the host end closes, the agent polls with
// backoff (never spinning), reopens the port and answers the next host.
func TestServePortReopens(t *testing.T) {
	ms := time.Millisecond
	s := testServer(t)
	rec := &sleepRecorder{}
	s.sleep = rec.sleep
	s.idle = backoff{Min: 10 * ms, Max: 40 * ms}
	s.reopenAfter = 200 * ms

	hosts := make(chan *os.File, 1)
	var opens []string
	s.openSerial = func(path string) (io.ReadWriteCloser, error) {
		opens = append(opens, path)
		host, guest := socketPair(t)
		hosts <- host
		return guest, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.servePort(ctx, "/dev/vport9p1")
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// check asks twice on one session; closing the session closes host
	// (the host program disconnects: the guest end reads EOF from then on).
	check := func(host *os.File) {
		t.Helper()
		hctx, hcancel := context.WithTimeout(ctx, time.Minute)
		defer hcancel()
		sess, err := agentmux.Upgrade(hctx, host, testKey)
		if err != nil {
			t.Fatalf("Upgrade: %v", err)
		}
		defer sess.Close()
		for range 2 {
			if h, err := sess.Health(hctx); err != nil || h.Hostname != "guest" {
				t.Fatalf("Health = %+v, %v", h, err)
			}
		}
	}
	check(<-hosts)
	check(<-hosts)
	want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 40 * ms, 40 * ms, 40 * ms, 40 * ms} // 230ms >= 200ms
	if diff := cmp.Diff(want, rec.take()); diff != "" {
		t.Errorf("delays before reopening (-want +got):\n%s", diff)
	}
	cancel()
	<-done
	if diff := cmp.Diff([]string{"/dev/vport9p1", "/dev/vport9p1"}, opens); diff != "" {
		t.Errorf("opens (-want +got):\n%s", diff)
	}
}

func TestServePortOpenErrors(t *testing.T) {
	tests := []struct {
		name      string
		errs      []error // what successive opens return
		wantOpens int
	}{
		{"gone: back to discovery at once", []error{&os.PathError{Op: "open", Path: "/dev/vport9p1", Err: syscall.ENOENT}}, 1},
		{"busy: retried with backoff until gone", []error{syscall.EBUSY, syscall.EBUSY, syscall.ENODEV}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(t)
			rec := &sleepRecorder{}
			s.sleep = rec.sleep
			s.idle = backoff{Min: time.Millisecond, Max: 4 * time.Millisecond}
			opens := 0
			s.openSerial = func(string) (io.ReadWriteCloser, error) {
				err := tt.errs[opens]
				opens++
				return nil, err
			}
			s.servePort(context.Background(), "/dev/vport9p1")
			if opens != tt.wantOpens {
				t.Errorf("opened %d times, want %d", opens, tt.wantOpens)
			}
			if got := len(rec.take()); got != tt.wantOpens-1 {
				t.Errorf("slept %d times, want %d", got, tt.wantOpens-1)
			}
		})
	}
}

// openPTY returns a pseudo-terminal in raw mode: the master and the
// slave's path. It stands in for a virtio-serial port that the agent opens
// by path.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	// A raw descriptor, made a pollable *os.File at the end: File.Fd
	// would leave it blocking, and a host session's read on it could
	// then not be interrupted by Close.
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	// Raw mode (cfmakeraw): no echo, no line editing, no \n -> \r\n.
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	return master, fmt.Sprintf("/dev/pts/%d", n)
}

// TestServeSerialPTY runs the whole serve loop (discovery through
// /sys/class/virtio-ports, open by path, serve) against a pseudo-terminal
// standing in for the port, then replaces the port under the agent.
func TestServeSerialPTY(t *testing.T) {
	s := testServer(t)
	s.handler = newHealthReporter()
	s.discoverEvery = 10 * time.Millisecond
	s.idle = backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}
	s.reopenAfter = 100 * time.Millisecond

	portDir := filepath.Join(s.sysDir, "class", "virtio-ports", "vport3p1")
	if err := os.MkdirAll(portDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(portDir, "name"), []byte(agentproto.SerialPortName+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(s.devDir, "vport3p1")
	plug := func(slave string) {
		tmp := node + ".new"
		if err := os.Symlink(slave, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, node); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	release, _ := kernelRelease()
	for i := range 2 {
		master, slave := openPTY(t)
		plug(slave)
		hctx, hcancel := context.WithTimeout(ctx, time.Minute)
		h, err := health(hctx, master, testKey)
		hcancel()
		if err != nil {
			t.Fatalf("round %d: health: %v", i, err)
		}
		if h.Kernel != release || h.Protocol != agentmux.Protocol || h.Root == "" {
			t.Errorf("round %d: health = %+v", i, h)
		}
		master.Close() // the port goes away under the agent
	}
}

// TestRunGivesUp: with neither vsock nor the serial port, serve looks for
// a while, then fails with a message naming what is missing.
func TestRunGivesUp(t *testing.T) {
	var logs bytes.Buffer
	s := testServer(t)
	s.log = slog.New(slog.NewTextHandler(&logs, nil))
	s.discoverEvery = 5 * time.Millisecond
	s.giveUpAfter = 50 * time.Millisecond
	err := s.run(context.Background())
	if !errors.Is(err, errNoChannel) {
		t.Fatalf("run = %v, want errNoChannel", err)
	}
	for _, want := range []string{"no vsock (no /dev/vsock in this test)", "no virtio-serial port named banger.agent", "load vmw_vsock_virtio_transport or virtio_console"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Each transport logs that it is looking once, not on every poll.
	if n := strings.Count(logs.String(), "still looking"); n != 2 {
		t.Errorf("logged %d 'still looking' lines, want 2:\n%s", n, logs.String())
	}
}

// unixListener adapts a Unix socket listener to streamListener, standing
// in for vsock.
type unixListener struct{ *net.UnixListener }

func (l unixListener) Accept() (io.ReadWriteCloser, error) { return l.UnixListener.Accept() }

// fakeVsock offers a Unix socket as its "vsock".
type fakeVsock struct{ ln streamListener }

func (f fakeVsock) LocalCID() (uint32, error)             { return 42, nil }
func (f fakeVsock) Listen(uint32) (streamListener, error) { return f.ln, nil }

func TestServeVsockConnections(t *testing.T) {
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

	// Several hosts at once, each on its own connection.
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			conn, err := net.Dial("unix", sock)
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			defer conn.Close()
			if h, err := health(ctx, conn, testKey); err != nil || h.Hostname != "guest" {
				t.Errorf("connection %d: %+v, %v", i, h, err)
			}
		})
	}
	wg.Wait()
	// A connection left open does not keep serve from stopping.
	idle, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// TestKernelVsock listens on this machine's AF_VSOCK when it has a vsock
// transport (a VM host usually does not; a guest does). Nothing can
// connect without a loopback transport, so this checks listen, accept's
// interruption and the CID probe.
func TestKernelVsock(t *testing.T) {
	k := kernelVsock{device: "/dev/vsock"}
	cid, err := k.LocalCID()
	if err != nil {
		t.Skipf("this machine offers no vsock: %v", err)
	}
	t.Logf("local CID %d", cid)
	ln, err := k.Listen(unix.VMADDR_PORT_ANY)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		accepted <- err
	}()
	ln.Close()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	if _, err := (kernelVsock{device: filepath.Join(t.TempDir(), "vsock")}).LocalCID(); err == nil || !strings.Contains(err.Error(), "is vmw_vsock_virtio_transport loaded?") {
		t.Errorf("missing device: %v", err)
	}
}

// Any local user can dial a vhost-vsock guest: past maxVsockConns idle,
// unauthenticated connections, a new one is closed at once, and a slot
// frees when one of them goes.
func TestVsockConnectionsAreBounded(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vsock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s := testServer(t)
	s.keys.set(bytes.Repeat([]byte{1}, 32))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.acceptLoop(ctx, unixListener{ln}) }()
	defer func() { cancel(); <-done }()

	var held []net.Conn
	for range maxVsockConns {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// Each held connection is served: it gets the guest's reset line.
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatalf("a connection within the limit: %v", err)
		}
	}
	over, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, over); err != nil || n != 0 {
		t.Fatalf("the connection past the limit: read %d bytes, %v; want closed at once", n, err)
	}
	held[0].Close()
	for range 100 { // the slot frees once the agent notices
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("no slot freed after a connection closed")
}
