package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// AF_VSOCK through golang.org/x/sys/unix rather than
// github.com/mdlayher/vsock, as banger-agent does on the guest side: the
// host only dials, which is a socket and a non-blocking connect; wrapping
// the descriptor in *os.File puts it on Go's poller, so the connection
// honours deadlines and Close, which is all agentmux needs. That keeps
// two modules (vsock and its socket package) out for about seventy lines.

// dialVsock connects to port on the guest with context ID cid.
func dialVsock(ctx context.Context, cid, port uint32) (net.Conn, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating an AF_VSOCK socket: %w (load the vhost_vsock module: modprobe vhost_vsock)", err)
	}
	remote := vsockAddr{cid: cid, port: port}
	cerr := unix.Connect(fd, &unix.SockaddrVM{CID: cid, Port: port})
	f := os.NewFile(uintptr(fd), "vsock:"+remote.String())
	if cerr != nil && !errors.Is(cerr, unix.EINPROGRESS) {
		f.Close()
		return nil, fmt.Errorf("connecting to %s: %w", remote, cerr)
	}
	if errors.Is(cerr, unix.EINPROGRESS) {
		if err := waitConnected(ctx, f); err != nil {
			f.Close()
			return nil, fmt.Errorf("connecting to %s: %w", remote, err)
		}
	}
	local := vsockAddr{cid: unix.VMADDR_CID_HOST}
	rc, err := f.SyscallConn()
	if err == nil {
		rc.Control(func(fd uintptr) {
			if sa, err := unix.Getsockname(int(fd)); err == nil {
				if vm, ok := sa.(*unix.SockaddrVM); ok {
					local = vsockAddr{cid: vm.CID, port: vm.Port}
				}
			}
		})
	}
	return &vsockConn{File: f, local: local, remote: remote}, nil
}

// waitConnected waits until a non-blocking connect finishes, as Go's net
// package does: writable, then SO_ERROR.
func waitConnected(ctx context.Context, f *os.File) error {
	if d, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	first := true
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		if first { // not writable yet: wait for the poller
			first = false
			return false
		}
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			serr = err
			return true
		}
		switch e := unix.Errno(v); e {
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		case 0:
			if _, err := unix.Getpeername(int(fd)); err != nil {
				return false // spurious wake-up
			}
			return true
		default:
			serr = e
			return true
		}
	})
	f.SetWriteDeadline(time.Time{})
	if werr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return werr
	}
	return serr
}

// vsockConn is a connected AF_VSOCK stream.
type vsockConn struct {
	*os.File
	local, remote vsockAddr
}

func (c *vsockConn) LocalAddr() net.Addr  { return c.local }
func (c *vsockConn) RemoteAddr() net.Addr { return c.remote }

type vsockAddr struct{ cid, port uint32 }

func (vsockAddr) Network() string  { return "vsock" }
func (a vsockAddr) String() string { return fmt.Sprintf("vsock cid %d port %d", a.cid, a.port) }

var _ net.Conn = (*vsockConn)(nil)
