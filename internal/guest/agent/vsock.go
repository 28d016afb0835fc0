package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// AF_VSOCK through golang.org/x/sys/unix rather than
// github.com/mdlayher/vsock: the agent only listens and accepts, which is
// a socket, bind, listen and accept4 call; wrapping the non-blocking
// descriptors in *os.File puts them on Go's poller, so Close interrupts
// Accept and connections get deadlines, which is all agentmux needs.
// That keeps the agent free of two more modules (vsock and its socket
// package) for about sixty lines.

// streamListener accepts byte streams: the vsock listener here, a Unix
// socket in tests.
type streamListener interface {
	Accept() (io.ReadWriteCloser, error)
	Close() error
}

// vsockProvider is the kernel's AF_VSOCK, as the agent uses it.
type vsockProvider interface {
	// LocalCID reports this guest's context ID; an error means the
	// kernel offers no vsock transport to a host.
	LocalCID() (uint32, error)
	Listen(port uint32) (streamListener, error)
}

// kernelVsock is the real AF_VSOCK. device is /dev/vsock, which the vsock
// module creates.
type kernelVsock struct {
	device string
}

func (k kernelVsock) LocalCID() (uint32, error) {
	f, err := os.Open(k.device)
	if err != nil {
		return 0, fmt.Errorf("%s: %w (is vmw_vsock_virtio_transport loaded?)", k.device, err)
	}
	defer f.Close()
	cid, err := unix.IoctlGetUint32(int(f.Fd()), unix.IOCTL_VM_SOCKETS_GET_LOCAL_CID)
	if err != nil {
		return 0, fmt.Errorf("asking %s for the local CID: %w", k.device, err)
	}
	if cid == unix.VMADDR_CID_ANY {
		return 0, errors.New("the kernel has vsock but no transport to a host (no vsock device, or vmw_vsock_virtio_transport not loaded)")
	}
	return cid, nil
}

func (kernelVsock) Listen(port uint32) (streamListener, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating an AF_VSOCK socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding vsock port %d: %w (is another banger-agent running?)", port, err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listening on vsock port %d: %w", port, err)
	}
	return &vsockListener{f: os.NewFile(uintptr(fd), fmt.Sprintf("vsock:%d", port))}, nil
}

// vsockListener accepts through Go's poller.
type vsockListener struct {
	f      *os.File
	closed atomic.Bool
}

func (l *vsockListener) Accept() (io.ReadWriteCloser, error) {
	conn, err := l.accept()
	if err != nil && l.closed.Load() {
		return nil, net.ErrClosed
	}
	return conn, err
}

func (l *vsockListener) accept() (io.ReadWriteCloser, error) {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return !errors.Is(aerr, unix.EAGAIN)
	})
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, aerr
	}
	return os.NewFile(uintptr(nfd), "vsock-conn"), nil
}

func (l *vsockListener) Close() error {
	l.closed.Store(true)
	return l.f.Close()
}

// serveVsock listens on agentproto.VsockPort once the kernel offers vsock
// and serves every connection, until ctx ends.
func (s *server) serveVsock(ctx context.Context) {
	waiting := false
	for ctx.Err() == nil {
		cid, err := s.vsock.LocalCID()
		if err != nil {
			if !waiting {
				s.log.Info("no vsock yet; still looking", "reason", err)
				waiting = true
			}
			if s.sleep(ctx, s.discoverEvery) != nil {
				return
			}
			continue
		}
		ln, err := s.vsock.Listen(s.vsockPort)
		if err != nil {
			s.log.Error("cannot listen on vsock; retrying", "port", s.vsockPort, "err", err)
			if s.sleep(ctx, s.discoverEvery) != nil {
				return
			}
			continue
		}
		waiting = false
		s.found("vsock", fmt.Sprintf("cid %d port %d", cid, s.vsockPort))
		err = s.acceptLoop(ctx, ln)
		if ctx.Err() != nil {
			return
		}
		s.log.Error("vsock listener failed; listening again", "err", err)
		if s.sleep(ctx, s.discoverEvery) != nil {
			return
		}
	}
}

// maxVsockConns bounds the connections served at once. Any local user
// of the host can dial a vhost-vsock guest; each connection is served
// nothing before it proves the VM's key (internal/shared/agentmux), and this
// bounds what a flood of them costs the guest.
const maxVsockConns = 16

// acceptLoop serves each connection of ln in its own goroutine until ctx
// ends or Accept fails; it waits for the connections it started. Past
// maxVsockConns a new connection is closed at once.
func (s *server) acceptLoop(ctx context.Context, ln streamListener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxVsockConns)
	for {
		conn, err := ln.Accept()
		if errors.Is(err, unix.ECONNABORTED) || errors.Is(err, unix.EINTR) {
			continue // the peer gave up before we accepted
		}
		if err != nil {
			ln.Close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		select {
		case slots <- struct{}{}:
		default:
			s.log.Warn("too many vsock connections; closing a new one", "limit", maxVsockConns)
			conn.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer conn.Close()
			// The connection is closed when ctx ends, which ends Serve.
			stopConn := context.AfterFunc(ctx, func() { conn.Close() })
			defer stopConn()
			if err := s.serveChannel(ctx, conn); err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Warn("vsock connection failed", "err", err)
			}
		}()
	}
}
