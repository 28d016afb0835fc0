package firecracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// Hybrid vsock (docs/vsock.md): Firecracker listens on the unix socket
// given as the vsock device's uds_path. The host connects to it and
// writes "CONNECT <port>\n"; Firecracker forwards the connection to the
// guest's AF_VSOCK port and, once the guest accepted it, answers
// "OK <host port>\n", after which the stream is the guest's. When no one in
// the guest listens on the port, Firecracker closes the connection without
// a reply.
//
// Firecracker reads the CONNECT line from a non-blocking socket: a line
// split over several writes may reach it in pieces and be dropped, so it
// goes out in one write. The acknowledgement is read a byte at a time:
// the guest may write the moment it accepted, and a buffered read would
// take those bytes along with the "OK" line.

// handshakeTimeout bounds one CONNECT attempt. Firecracker itself gives
// up on a connection the guest does not answer within about two seconds.
const handshakeTimeout = 5 * time.Second

// maxAckLen bounds the "OK <port>\n" line.
const maxAckLen = 32

// errNoReply is Firecracker closing the connection without "OK": nothing
// listens on the port in the guest (yet).
var errNoReply = errors.New("Firecracker closed the connection without a reply: nothing listens on the port in the guest yet")

// DialHybridVsock connects to port in the guest behind the hybrid vsock
// socket at path. While the guest does not listen on the port (it is
// still booting) it tries again, until ctx ends. The connection it
// returns starts with the first byte the guest sent after the handshake.
func DialHybridVsock(ctx context.Context, path string, port uint32) (net.Conn, error) {
	return dialHybridVsock(ctx, path, port, nil)
}

// dialHybridVsock is DialHybridVsock; gone, when not nil, reports an error
// that ends the retries (the VM is no longer running).
func dialHybridVsock(ctx context.Context, path string, port uint32, gone func() error) (net.Conn, error) {
	wait := 20 * time.Millisecond
	lastErr := errors.New("none")
	ended := func() error {
		return fmt.Errorf("connecting to port %d in the guest through %s: %w (last attempt: %v)", port, path, ctx.Err(), lastErr)
	}
	for {
		conn, err := connectOnce(ctx, path, port)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ended()
		}
		if !retryable(err) {
			return nil, err
		}
		lastErr = err
		if gone != nil {
			if gerr := gone(); gerr != nil {
				return nil, fmt.Errorf("%w (last attempt: %v)", gerr, lastErr)
			}
		}
		select {
		case <-ctx.Done():
			return nil, ended()
		case <-time.After(wait):
		}
		if wait < 250*time.Millisecond {
			wait *= 2
		}
	}
}

// connectOnce makes one connection and handshake.
func connectOnce(ctx context.Context, path string, port uint32) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(actx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", path, err)
	}
	deadline, _ := actx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(actx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	ok := false
	defer func() {
		stop()
		if !ok {
			conn.Close()
		}
	}()
	if _, err := io.WriteString(conn, "CONNECT "+strconv.FormatUint(uint64(port), 10)+"\n"); err != nil {
		return nil, fmt.Errorf("sending CONNECT %d: %w", port, err)
	}
	line, err := readLine(conn, maxAckLen)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, errNoReply
		}
		if actx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("no reply to CONNECT %d within %v: %w", port, handshakeTimeout, os.ErrDeadlineExceeded)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("reading the reply to CONNECT %d: %w", port, err)
	}
	hostPort, found := strings.CutPrefix(line, "OK ")
	if !found {
		return nil, &badReplyError{line}
	}
	if _, err := strconv.ParseUint(hostPort, 10, 32); err != nil {
		return nil, &badReplyError{line}
	}
	if !stop() {
		// The attempt's time ran out just after the reply: the deadline
		// may already be in the past.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("the reply to CONNECT %d came at the deadline: %w", port, os.ErrDeadlineExceeded)
	}
	conn.SetDeadline(time.Time{})
	ok = true
	return conn, nil
}

type badReplyError struct{ line string }

func (e *badReplyError) Error() string {
	return fmt.Sprintf("Firecracker answered CONNECT with %q, not \"OK <port>\": is this a Firecracker vsock socket?", e.line)
}

// retryable reports whether a failed attempt may succeed later: the guest
// does not listen yet, Firecracker did not bind its socket yet or is
// restarting, or the handshake timed out.
func retryable(err error) bool {
	var bad *badReplyError
	switch {
	case errors.As(err, &bad):
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded):
		return false
	}
	return true
}

// readLine reads up to and without '\n', one byte at a time.
func readLine(r io.Reader, max int) (string, error) {
	var b [1]byte
	line := make([]byte, 0, max)
	for {
		n, err := r.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				return string(line), nil
			}
			if len(line) == max {
				return "", &badReplyError{string(line) + "..."}
			}
			line = append(line, b[0])
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return "", &badReplyError{string(line)}
			}
			return "", err
		}
	}
}

// DialAgent connects to the guest agent's vsock port (agentproto.VsockPort)
// through the VM's hybrid vsock socket, trying again while the agent does
// not listen yet, until ctx ends or the VM's process is gone.
func (d *Driver) DialAgent(ctx context.Context, h hypervisor.Handle) (net.Conn, error) {
	if h.Agent != hypervisor.AgentHybridVsock || h.AgentSocket == "" {
		return nil, fmt.Errorf("firecracker: the handle's agent transport is %q, not Firecracker's %q with a socket: was it made by another driver?", h.Agent, hypervisor.AgentHybridVsock)
	}
	conn, err := dialHybridVsock(ctx, h.AgentSocket, agentproto.VsockPort, func() error {
		if !hypervisor.Alive(h) {
			return fmt.Errorf("the VM's Firecracker (pid %d) is not running", h.PID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("firecracker: dialing the agent: %w", err)
	}
	return conn, nil
}
