package agentmux

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/bangerdev/banger/internal/agentproto"
	"github.com/hashicorp/yamux"
)

// Session is the host end of an upgraded agent channel. Its methods are
// safe for concurrent use; each call runs on its own stream.
type Session struct {
	mux *yamux.Session
}

// hostConn is what yamux runs on after the upgrade: the bytes the line
// reader already buffered, then the channel.
type hostConn struct {
	lr *lineReader
	io.WriteCloser
}

func (c *hostConn) Read(p []byte) (int, error) { return c.lr.Read(p) }

// Upgrade switches the agent channel rw to protocol 2 and returns the
// session; closing the session closes rw.
//
// It writes an upgrade request and reads lines until the reply with its ID
// and nonce arrives, skipping garbage and stale replies. An agent that only
// speaks protocol 1 makes it return an error wrapping
// ErrUpgradeUnsupported; rw is then still in line mode and usable for v1
// requests. When ctx ends first Upgrade returns ctx.Err(): on a stream with
// deadlines (net.Conn, a pollable *os.File) the wait is interrupted and rw
// stays usable, so a caller waiting for a booting guest retries with a
// short timeout per attempt; any other stream is closed.
func Upgrade(ctx context.Context, rw io.ReadWriteCloser) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := upgradeMsg{ID: newID(), Type: TypeUpgrade, Protocol: Protocol, Nonce: newID()}
	lr := &lineReader{src: rw}
	done := make(chan error, 1)
	go func() { done <- awaitUpgrade(rw, lr, req) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		if d, ok := rw.(deadliner); ok {
			d.SetDeadline(aLongTimeAgo())
			<-done
			d.SetDeadline(zeroTime)
		} else {
			rw.Close()
		}
		return nil, fmt.Errorf("agentmux: upgrading the agent channel: %w", ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	mux, err := yamux.Client(&hostConn{lr: lr, WriteCloser: rw}, yamuxConfig())
	if err != nil {
		return nil, fmt.Errorf("agentmux: starting the session: %w", err)
	}
	return &Session{mux: mux}, nil
}

func awaitUpgrade(w io.Writer, lr *lineReader, req upgradeMsg) error {
	if err := writeLine(w, req); err != nil {
		return fmt.Errorf("agentmux: sending the upgrade request: %w", err)
	}
	for {
		line, err := lr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("agentmux: the agent channel closed before the upgrade reply arrived: %w", err)
			}
			return fmt.Errorf("agentmux: reading the upgrade reply: %w", err)
		}
		var rep upgradeMsg
		if !decodeLine(line, &rep) || rep.ID != req.ID {
			continue // garbage, a stale reply, an earlier session's frames
		}
		if rep.Error != nil {
			if rep.Error.Code == agentproto.CodeUnknownType {
				return fmt.Errorf("agentmux: %w (agent said: %s)", ErrUpgradeUnsupported, rep.Error.Message)
			}
			return fmt.Errorf("agentmux: the agent refused the upgrade: %w", rep.Error)
		}
		if rep.Nonce != req.Nonce || rep.Type != TypeUpgrade {
			continue
		}
		if rep.Protocol != Protocol {
			return fmt.Errorf("agentmux: the agent offered protocol %d, want %d: update banger-agent in the image", rep.Protocol, Protocol)
		}
		return nil
	}
}

// Close ends the session and closes the channel.
func (s *Session) Close() error { return s.mux.Close() }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.mux.CloseChan() }

// call is one request stream.
type call struct {
	st   *yamux.Stream
	r    *bufio.Reader
	fw   *frameWriter
	stop func() bool
}

// open starts a request: it opens a stream, writes the header, reads the
// guest's reply line and returns the stream positioned after it. Until
// call.close, ctx ending interrupts the stream's I/O.
func (s *Session) open(ctx context.Context, h streamHeader) (*call, streamReply, error) {
	if err := ctx.Err(); err != nil {
		return nil, streamReply{}, err
	}
	st, err := s.mux.OpenStream()
	if err != nil {
		return nil, streamReply{}, fmt.Errorf("agentmux: opening a %s stream: %w", h.Type, err)
	}
	c := &call{st: st, r: bufio.NewReader(st), fw: &frameWriter{w: st}}
	c.stop = context.AfterFunc(ctx, func() { st.SetDeadline(aLongTimeAgo()) })
	b, _ := json.Marshal(h)
	if _, err := st.Write(append(b, '\n')); err != nil {
		c.close()
		return nil, streamReply{}, c.wrap(ctx, "sending the "+h.Type+" request", err)
	}
	rep, err := readReply(c.r)
	if err != nil {
		c.close()
		return nil, streamReply{}, c.wrap(ctx, "reading the "+h.Type+" reply", err)
	}
	if rep.Error != nil {
		c.close()
		return nil, rep, rep.Error
	}
	return c, rep, nil
}

func (c *call) close() {
	c.stop()
	c.st.Close()
}

// wrap prefers ctx's error over the deadline error it caused.
func (c *call) wrap(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("agentmux: %s: %w", what, ctx.Err())
	}
	return fmt.Errorf("agentmux: %s: %w", what, err)
}

// Health asks the agent for its health; Protocol is 2.
func (s *Session) Health(ctx context.Context) (agentproto.Health, error) {
	c, rep, err := s.open(ctx, streamHeader{Type: TypeHealth})
	if err != nil {
		return agentproto.Health{}, err
	}
	c.close()
	if rep.Health == nil {
		return agentproto.Health{}, errors.New("agentmux: the agent answered health without a report; update banger-agent in the image")
	}
	return *rep.Health, nil
}

// Exec runs a command in the guest and returns how it ended. stdin (may be
// nil: empty) is copied to the command, and its end closes the command's
// stdin (in pipe mode); stdout and stderr receive its output (in TTY mode
// only stdout, with the terminal's bytes). The returned error is about the
// channel or the request (an *Error with CodeExecFailed when the command
// could not start); a command that fails is an ExitStatus with a non-zero
// Code or a Signal. When ctx ends the stream is closed, which makes the
// guest kill the command. Exec may return before it has finished reading
// stdin; reading goes on in the background until stdin returns.
func (s *Session) Exec(ctx context.Context, req ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (ExitStatus, error) {
	if len(req.Argv) == 0 {
		return ExitStatus{}, errors.New("agentmux: exec needs a command")
	}
	c, _, err := s.open(ctx, streamHeader{Type: TypeExec, Exec: &req})
	if err != nil {
		return ExitStatus{}, err
	}
	defer c.close()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		if stdin != nil {
			buf := make([]byte, chunkSize)
			for {
				n, err := stdin.Read(buf)
				if n > 0 {
					if c.fw.frame(chStdin, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					break
				}
			}
		}
		c.fw.frame(chStdinEOF, nil)
	}()
	if req.Resize != nil {
		go func() {
			for {
				select {
				case ws, ok := <-req.Resize:
					if !ok {
						return
					}
					c.fw.frame(chResize, resizePayload(ws))
				case <-finished:
					return
				}
			}
		}()
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	for {
		ch, p, err := readFrame(c.r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the agent closed the stream without an exit status")
			}
			return ExitStatus{}, c.wrap(ctx, "running "+req.Argv[0], err)
		}
		switch ch {
		case chStdout:
			if _, err := stdout.Write(p); err != nil {
				return ExitStatus{}, fmt.Errorf("agentmux: writing %s's stdout: %w", req.Argv[0], err)
			}
		case chStderr:
			if _, err := stderr.Write(p); err != nil {
				return ExitStatus{}, fmt.Errorf("agentmux: writing %s's stderr: %w", req.Argv[0], err)
			}
		case chExit:
			var st ExitStatus
			if err := json.Unmarshal(p, &st); err != nil {
				return ExitStatus{}, fmt.Errorf("agentmux: malformed exit status %q: %w", p, err)
			}
			return st, nil
		}
	}
}

// Put sends the bytes of r (a tar stream, say) to the guest, whose Handler
// stores them at dest. It returns once the guest has answered; if the
// guest fails early, Put stops sending after the chunk it is reading.
func (s *Session) Put(ctx context.Context, dest string, r io.Reader) error {
	c, _, err := s.open(ctx, streamHeader{Type: TypePut, Path: dest})
	if err != nil {
		return err
	}
	defer c.close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, chunkSize)
		for !stop.Load() {
			n, err := r.Read(buf)
			if n > 0 && c.fw.frame(chData, buf[:n]) != nil {
				return
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				readErr = err
				c.st.Close() // no end frame: the guest sees a truncated put
				return
			}
		}
		c.fw.frame(chEnd, nil)
	}()
	rep, err := readReply(c.r)
	stop.Store(true)
	if err != nil {
		c.close() // unblocks the sender
		wg.Wait()
		if readErr != nil {
			return fmt.Errorf("agentmux: reading what to put at %s: %w", dest, readErr)
		}
		return c.wrap(ctx, "putting "+dest, err)
	}
	wg.Wait()
	if readErr != nil {
		return fmt.Errorf("agentmux: reading what to put at %s: %w", dest, readErr)
	}
	if rep.Error != nil {
		return rep.Error
	}
	return nil
}

// Get copies what the guest's Handler produces for src (a tar stream,
// say) to w. An error from w aborts the transfer.
func (s *Session) Get(ctx context.Context, src string, w io.Writer) error {
	c, _, err := s.open(ctx, streamHeader{Type: TypeGet, Path: src})
	if err != nil {
		return err
	}
	defer c.close()
	for {
		ch, p, err := readFrame(c.r)
		if err != nil {
			return c.wrap(ctx, "getting "+src, noEOF(err))
		}
		switch ch {
		case chData:
			if _, err := w.Write(p); err != nil {
				return fmt.Errorf("agentmux: writing %s: %w", src, err)
			}
		case chEnd:
			var rep streamReply
			if err := json.Unmarshal(p, &rep); err != nil {
				return fmt.Errorf("agentmux: malformed end of get %q: %w", p, err)
			}
			if rep.Error != nil {
				return rep.Error
			}
			return nil
		}
	}
}
