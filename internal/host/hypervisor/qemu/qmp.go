package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// A small QMP client (QEMU Machine Protocol, docs/interop/qmp-spec): JSON
// objects over a unix socket. The server greets with {"QMP": {...}}; the
// client must send qmp_capabilities before any other command; each command
// {"execute": name, "arguments": {...}} gets {"return": ...} or {"error":
// {"class", "desc"}}; asynchronous {"event": ...} messages may arrive in
// between and are skipped. One command at a time per connection.
//
// QEMU serves one QMP client per socket at a time; a second connection
// waits in the listen backlog until the first closes. So every exchange
// dials, does its commands and closes, and is bounded by qmpTimeout when
// the caller's context has no earlier deadline.

// qmpTimeout bounds one QMP exchange whose context has no deadline.
const qmpTimeout = 5 * time.Second

// qmpConn is one QMP session after the capabilities negotiation.
type qmpConn struct {
	conn net.Conn
	dec  *json.Decoder
	stop func() bool // unregisters the context watch
}

// qmpError is an error QEMU returned for a command.
type qmpError struct {
	Command string `json:"-"`
	Class   string `json:"class"`
	Desc    string `json:"desc"`
}

func (e *qmpError) Error() string {
	return fmt.Sprintf("qmp %s: %s (%s)", e.Command, e.Desc, e.Class)
}

type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *qmpError       `json:"error"`
	Event  string          `json:"event"`
}

// dialQMP connects to the QMP socket at path, reads the greeting and
// negotiates capabilities. The session ends at ctx's deadline or after
// qmpTimeout, whichever comes first; a cancelled ctx interrupts it.
func dialQMP(ctx context.Context, path string) (*qmpConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connecting to QMP socket %s: %w", path, err)
	}
	// A healthy QEMU answers at once; never wait on QMP longer than
	// qmpTimeout, even when the caller's deadline is further away.
	deadline := time.Now().Add(qmpTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	q := &qmpConn{conn: conn, dec: json.NewDecoder(bufio.NewReader(conn)), stop: stop}
	fail := func(err error) (*qmpConn, error) {
		q.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("QMP socket %s: no answer: %w", path, ctx.Err())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(deadline) {
			return nil, fmt.Errorf("QMP socket %s: no answer: %w", path, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("QMP socket %s: %w", path, err)
	}
	var greeting qmpMessage
	if err := q.dec.Decode(&greeting); err != nil {
		return fail(fmt.Errorf("reading the greeting: %w", err))
	}
	if greeting.QMP == nil {
		return fail(errors.New("the first message is not a QMP greeting: is this a QMP socket?"))
	}
	if err := q.execute("qmp_capabilities", nil, nil); err != nil {
		return fail(err)
	}
	return q, nil
}

// execute runs one command and decodes its return value into out (if not
// nil). Events are skipped.
func (q *qmpConn) execute(cmd string, args any, out any) error {
	return q.executeWithFile(cmd, args, nil, out)
}

// executeWithFile is execute with f's descriptor passed along the command
// (SCM_RIGHTS), as getfd wants it.
func (q *qmpConn) executeWithFile(cmd string, args any, f *os.File, out any) error {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if f != nil {
		uc, ok := q.conn.(*net.UnixConn)
		if !ok {
			return fmt.Errorf("qmp %s: passing a descriptor needs a unix socket", cmd)
		}
		_, _, err = uc.WriteMsgUnix(b, unix.UnixRights(int(f.Fd())), nil)
	} else {
		_, err = q.conn.Write(b)
	}
	if err != nil {
		return fmt.Errorf("qmp %s: sending: %w", cmd, err)
	}
	for {
		var m qmpMessage
		if err := q.dec.Decode(&m); err != nil {
			return fmt.Errorf("qmp %s: reading the reply: %w", cmd, err)
		}
		switch {
		case m.Event != "":
			continue
		case m.Error != nil:
			m.Error.Command = cmd
			return m.Error
		case m.Return != nil:
			if out != nil {
				if err := json.Unmarshal(m.Return, out); err != nil {
					return fmt.Errorf("qmp %s: decoding the reply: %w", cmd, err)
				}
			}
			return nil
		}
		// Anything else (a second greeting?) is skipped like an event.
	}
}

// status runs query-status and returns QEMU's run state ("running",
// "paused", "prelaunch", ...).
func (q *qmpConn) status() (string, error) {
	var r struct {
		Status  string `json:"status"`
		Running bool   `json:"running"`
	}
	if err := q.execute("query-status", nil, &r); err != nil {
		return "", err
	}
	return r.Status, nil
}

// powerdown presses the ACPI power button.
func (q *qmpConn) powerdown() error { return q.execute("system_powerdown", nil, nil) }

// quit ends QEMU at once. QEMU may close the connection before its reply
// arrives, which counts as success.
func (q *qmpConn) quit() error {
	err := q.execute("quit", nil, nil)
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET)) {
		return nil
	}
	return err
}

// peerPID is the PID of the process serving the socket (SO_PEERCRED).
func (q *qmpConn) peerPID() (int, error) { return hypervisor.PeerPID(q.conn) }

// Close ends the session.
func (q *qmpConn) Close() error {
	q.stop()
	return q.conn.Close()
}
