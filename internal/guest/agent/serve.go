package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/bangerdev/banger/internal/guest/guestsession"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
)

// server is `banger-agent serve`: it answers the host on every channel
// the VM offers, AF_VSOCK and the virtio-serial port, at the same time.
type server struct {
	log     *slog.Logger
	handler agentproto.Handler
	keys    agentKey // this boot's agent key (internal/shared/bootpayload) or the identity call's; nil refuses every host

	sysDir     string // "/sys": where virtio-serial ports are named
	devDir     string // "/dev": their device nodes
	openSerial func(path string) (io.ReadWriteCloser, error)
	vsock      vsockProvider
	vsockPort  uint32

	sleep         func(context.Context, time.Duration) error
	discoverEvery time.Duration // how often to look for a channel not found yet
	giveUpAfter   time.Duration // exit when no channel has appeared by then
	idle          backoff       // polls of a serial port with no host
	reopenAfter   time.Duration // reopen a serial port after this long without a host

	mu       sync.Mutex
	channels []string // what found reported, for the give-up check
}

func newServer(log *slog.Logger) *server {
	return &server{
		log:           log,
		handler:       fullHandler{newHealthReporter(), guestOps{sshDir: "/etc/ssh"}},
		sysDir:        "/sys",
		devDir:        "/dev",
		openSerial:    openSerialPort,
		vsock:         kernelVsock{device: "/dev/vsock"},
		vsockPort:     agentproto.VsockPort,
		sleep:         sleepCtx,
		discoverEvery: 500 * time.Millisecond,
		giveUpAfter:   time.Minute,
		idle:          backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		reopenAfter:   time.Minute,
	}
}

// newMuxHandler is the handler of a real guest: it owns the sessions kept
// in dir. When that state cannot be opened the agent still serves
// everything else, and session calls say why they fail.
func newMuxHandler(dir string, log *slog.Logger) *muxHandler {
	h := &muxHandler{fullHandler: fullHandler{newHealthReporter(), guestOps{sshDir: "/etc/ssh"}}}
	h.sessions, h.sessionsErr = guestsession.NewManager(dir, log.With("part", "sessions"))
	if h.sessionsErr != nil {
		log.Error("sessions unavailable", "err", h.sessionsErr)
	}
	return h
}

// NewGuest is banger-agent's protocol 2 end with its sessions kept in
// sessionDir, serving the host that holds key, for host code's tests to
// talk to a real agent over a pipe. Its identity call changes files
// below sessionDir's parent's guest-root (etc, run, proc, home) and its
// key, it keeps full_copy bases in sessionDir's parent's workspaces, and
// it changes nothing else of the machine it runs on.
func NewGuest(sessionDir string, key []byte, log *slog.Logger) (*agentmux.Guest, error) {
	h := newMuxHandler(sessionDir, log)
	if h.sessionsErr != nil {
		return nil, h.sessionsErr
	}
	keys := &agentKey{key: key}
	root := filepath.Join(filepath.Dir(sessionDir), "guest-root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		return nil, err
	}
	h.identity = sandboxIdentity(root, keys, log)
	h.workspaceState = filepath.Join(filepath.Dir(sessionDir), "workspaces")
	return &agentmux.Guest{Handler: h, KeyFunc: keys.get, Log: log}, nil
}

// serveChannel serves one agent channel: the authenticated upgrade and
// protocol 2 sessions (internal/shared/agentmux); nothing before the host proved
// it holds the agent key. Each upgrade checks the key s.keys holds then,
// so a key the identity call installs holds for every session opened
// after it, on this channel and the others.
func (s *server) serveChannel(ctx context.Context, rw io.ReadWriter) error {
	g := &agentmux.Guest{KeyFunc: s.keys.get, Log: s.log, Handler: agentmux.Basic(s.handler)}
	if h, ok := s.handler.(agentmux.Handler); ok {
		g.Handler = h
	}
	return g.Serve(ctx, rw)
}

// found records that a channel is being served.
func (s *server) found(kind, where string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels = append(s.channels, kind)
	s.log.Info("agent channel found", "channel", kind, "at", where)
}

func (s *server) anyFound() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.channels) > 0
}

// errNoChannel: neither vsock nor the virtio-serial port appeared.
var errNoChannel = errors.New("no agent channel")

// run serves vsock and the serial port until ctx ends. It returns
// errNoChannel, wrapped with what is missing, when neither appears within
// giveUpAfter (modules may load late, so it keeps looking until then);
// systemd then restarts the agent.
func (s *server) run(ctx context.Context) error {
	s.log.Info("banger-agent serving", "protocol", agentmux.Protocol, "vsock_port", s.vsockPort, "serial_port", agentproto.SerialPortName)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() { s.serveVsock(ctx) })
	wg.Go(func() { s.serveSerial(ctx) })
	wg.Go(func() {
		if s.sleep(ctx, s.giveUpAfter) != nil || s.anyFound() {
			return
		}
		_, vsockErr := s.vsock.LocalCID()
		err := fmt.Errorf("%w after %v: no vsock (%v) and no virtio-serial port named %s under %s/class/virtio-ports; give the VM a vsock device or a virtserialport named %s, and load vmw_vsock_virtio_transport or virtio_console",
			errNoChannel, s.giveUpAfter, vsockErr, agentproto.SerialPortName, s.sysDir, agentproto.SerialPortName)
		s.log.Error("giving up", "err", err)
		cancel(err)
	})
	wg.Wait()
	if err := context.Cause(ctx); err != nil && errors.Is(err, errNoChannel) {
		return err
	}
	return nil
}

// cmdServe is `banger-agent serve`.
func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: banger-agent serve\n\nAnswer bangerd on vsock port %d and on the virtio-serial port %q (systemd runs this as banger-agent.service).\n", agentproto.VsockPort, agentproto.SerialPortName)
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	s := newServer(log)
	key, boot := loadBoot(bootpayload.StageDir, bootpayload.GuestHome, 2*time.Minute, log)
	s.keys.set(key)
	h := newMuxHandler(SessionStateDir, log)
	h.payload = boot.Status
	h.identity = guestIdentity(&s.keys, log)
	s.handler = h
	if err := s.run(ctx); err != nil {
		fmt.Fprintf(stderr, "banger-agent serve: %v\n", err)
		return 1
	}
	return 0
}
