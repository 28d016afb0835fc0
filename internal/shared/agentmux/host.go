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
	"time"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/hashicorp/yamux"
)

// Session is the host end of an upgraded agent channel. Its methods are
// safe for concurrent use; each call runs on its own stream.
type Session struct {
	mux *yamux.Session
	cfg Config

	mu     sync.Mutex
	broken error // the limit or violation that made the host close the session
}

// hostConn is what yamux runs on after the upgrade: the bytes the line
// reader already buffered, then the channel.
type hostConn struct {
	lr *lineReader
	io.WriteCloser
}

func (c *hostConn) Read(p []byte) (int, error) { return c.lr.Read(p) }

// Upgrade switches the agent channel rw to protocol 2, authenticating
// with key (the VM's agent key, KeySize bytes), and returns the session;
// closing the session closes rw. It uses the default Config.
func Upgrade(ctx context.Context, rw io.ReadWriteCloser, key []byte) (*Session, error) {
	return Config{}.Upgrade(ctx, rw, key)
}

// Upgrade switches the agent channel rw to protocol 2 with the handshake
// of the package comment: the host and the agent each prove that they
// hold key without sending it, then both run yamux.
//
// It skips garbage and stale lines. An agent without the handshake makes
// it return an error wrapping ErrAgentTooOld, an agent without a key
// ErrAgentNoKey, an agent that refuses the key ErrKeyRefused, and one that
// cannot prove it holds the key ErrGuestUnproven; a guest that sends more
// than c.MaxUpgradeBytes without completing it a *LimitError. When ctx
// (or c.UpgradeTimeout) ends first Upgrade returns an error wrapping
// ctx.Err() or context.DeadlineExceeded: on a stream with deadlines
// (net.Conn, a pollable *os.File) the wait is interrupted and rw stays
// usable, so a caller waiting for a booting guest retries with a short
// timeout per attempt; any other stream is closed.
func (c Config) Upgrade(ctx context.Context, rw io.ReadWriteCloser, key []byte) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("agentmux: the agent key is %d bytes, want %d", len(key), KeySize)
	}
	ctx, cancel := context.WithTimeout(ctx, c.upgradeTimeout())
	defer cancel()
	lr := &lineReader{src: rw, max: c.maxLine(), budget: &readBudget{
		left: c.maxUpgradeBytes(),
		err:  &LimitError{Peer: c.peer(), What: "more line-mode bytes than an upgrade needs", Limit: c.maxUpgradeBytes()},
	}}
	done := make(chan error, 1)
	go func() { done <- c.handshake(rw, lr, key) }()
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
		return nil, fmt.Errorf("agentmux: upgrading the agent channel of %s: %w", c.peer(), ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	lr.budget = nil
	mux, err := yamux.Client(&hostConn{lr: lr, WriteCloser: rw}, c.hostYamuxConfig())
	if err != nil {
		return nil, fmt.Errorf("agentmux: starting the session: %w", err)
	}
	s := &Session{mux: mux, cfg: c}
	go s.refuseStreams()
	return s, nil
}

// refuseStreams ends the session when the guest opens a stream: only the
// host opens streams, and one the host never reads would hold a stream
// window of the guest's bytes.
func (s *Session) refuseStreams() {
	if _, err := s.mux.AcceptStream(); err != nil {
		return // the session ended
	}
	s.abort(fmt.Errorf("agentmux: %s opened a stream, which an agent never does: %w", s.cfg.peer(), errClosing))
}

// fail closes the session when err is a limit the guest broke, and
// returns err naming the session's peer.
func (s *Session) fail(err error) error {
	var le *LimitError
	if !errors.As(err, &le) {
		return err
	}
	named := &LimitError{Peer: s.cfg.peer(), What: le.What, Limit: le.Limit, Items: le.Items}
	s.abort(named)
	return named
}

// errClosing ends the message of a protocol violation that closes the
// session.
var errClosing = errors.New("closing the agent channel")

// abort records why the host gives up on the guest and closes the
// session.
func (s *Session) abort(err error) {
	s.mu.Lock()
	if s.broken == nil {
		s.broken = err
	}
	s.mu.Unlock()
	s.mux.Close()
}

// Err returns the limit the guest broke (or the protocol violation) that
// made the host close the session, or nil.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken
}

// Close ends the session and closes the channel.
func (s *Session) Close() error { return s.mux.Close() }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.mux.CloseChan() }

// Stream is one request stream after the guest's accepting reply line:
// Read continues after that line (bytes already buffered first), Write
// sends to the guest. A daemon can splice it to another connection and
// let the far end run the frame protocol (RunExec, NewAttached).
type Stream struct {
	st   *yamux.Stream
	r    *bufio.Reader
	stop func() bool
	sess *Session
}

// Open starts a request: it opens a stream, writes h as the header line
// and reads the guest's reply line. A refusal (the reply's Error) is
// returned as that *Error, with the reply. Until Close, ctx ending
// interrupts the stream's blocked and later I/O (a past deadline).
//
// The reply line must come within Config.ReplyTimeout (else an error
// wrapping ErrTimeout) and be at most Config.MaxLine bytes
// (MaxCallReply for a call); a longer one closes the session (a
// *LimitError).
func (s *Session) Open(ctx context.Context, h Header) (*Stream, Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, Reply{}, err
	}
	if err := s.Err(); err != nil {
		return nil, Reply{}, err
	}
	st, err := s.mux.OpenStream()
	if err != nil {
		return nil, Reply{}, fmt.Errorf("agentmux: opening a %s stream to %s: %w", h.Type, s.cfg.peer(), err)
	}
	str := &Stream{st: st, r: bufio.NewReader(st), sess: s}
	st.SetReadDeadline(time.Now().Add(s.cfg.replyTimeout())) // before ctx's, which must win
	str.stop = context.AfterFunc(ctx, func() { st.SetDeadline(aLongTimeAgo()) })
	b, err := json.Marshal(h)
	if err != nil {
		str.Close()
		return nil, Reply{}, fmt.Errorf("agentmux: encoding the %s request: %w", h.Type, err)
	}
	if _, err := st.Write(append(b, '\n')); err != nil {
		str.Close()
		return nil, Reply{}, wrapCtx(ctx, "sending the "+h.Type+" request", err)
	}
	max := s.cfg.maxLine()
	if h.Type == TypeCall {
		max = s.cfg.maxCallReply()
	}
	rep, err := readReply(str.r, max, s.cfg.peer())
	st.SetReadDeadline(zeroTime)
	if ctx.Err() != nil {
		st.SetDeadline(aLongTimeAgo()) // the reset above may have undone ctx's
	}
	if err != nil {
		str.Close()
		if errors.Is(err, yamux.ErrTimeout) && ctx.Err() == nil {
			return nil, Reply{}, fmt.Errorf("agentmux: %s did not answer the %s request within %s: %w", s.cfg.peer(), h.Type, s.cfg.replyTimeout(), ErrTimeout)
		}
		return nil, Reply{}, wrapCtx(ctx, "reading the "+h.Type+" reply", s.fail(err))
	}
	if rep.Error != nil {
		str.Close()
		return nil, rep, rep.Error
	}
	return str, rep, nil
}

// Read reads what the guest sent after its reply line.
func (s *Stream) Read(p []byte) (int, error) { return s.r.Read(p) }

// Write sends p to the guest.
func (s *Stream) Write(p []byte) (int, error) { return s.st.Write(p) }

// SetDeadline sets the read and write deadline of the stream.
func (s *Stream) SetDeadline(t time.Time) error { return s.st.SetDeadline(t) }

// Close ends the stream; the guest takes it as the host going away (it
// kills an exec's command, detaches an attach). ctx no longer applies.
func (s *Stream) Close() error {
	s.stop()
	return s.st.Close()
}

// wrapCtx prefers ctx's error over the deadline error it caused.
func wrapCtx(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("agentmux: %s: %w", what, ctx.Err())
	}
	return fmt.Errorf("agentmux: %s: %w", what, err)
}

// interruptOn makes ctx ending interrupt rw's I/O: a past deadline when rw
// has SetDeadline, else closing it when it is an io.Closer. The returned
// stop ends that.
func interruptOn(ctx context.Context, rw any) (stop func() bool) {
	switch c := rw.(type) {
	case deadliner:
		return context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo()) })
	case io.Closer:
		return context.AfterFunc(ctx, func() { c.Close() })
	}
	return func() bool { return true }
}

// Health asks the agent for its health; Protocol is 2.
func (s *Session) Health(ctx context.Context) (agentproto.Health, error) {
	st, rep, err := s.Open(ctx, Header{Type: TypeHealth})
	if err != nil {
		return agentproto.Health{}, err
	}
	st.Close()
	if rep.Health == nil {
		return agentproto.Health{}, errors.New("agentmux: the agent answered health without a report; update banger-agent in the image")
	}
	return *rep.Health, nil
}

// Exec runs a command in the guest and returns how it ended: Open, then
// RunExec on the stream (see RunExec for stdin, stdout, stderr and the
// errors). When ctx ends the stream is closed, which makes the guest kill
// the command.
func (s *Session) Exec(ctx context.Context, req ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (ExitStatus, error) {
	if len(req.Argv) == 0 {
		return ExitStatus{}, errors.New("agentmux: exec needs a command")
	}
	st, _, err := s.Open(ctx, Header{Type: TypeExec, Exec: &req})
	if err != nil {
		return ExitStatus{}, err
	}
	defer st.Close()
	status, err := RunExec(ctx, st, req, stdin, stdout, stderr)
	return status, s.fail(err)
}

// Put sends the bytes of r (a tar stream, say) to the guest, whose Handler
// stores them as req says, and unmarshals the Handler's result into result
// (when both are non-nil). It returns once the guest has answered; if the
// guest fails early, Put stops sending after the chunk it is reading.
func (s *Session) Put(ctx context.Context, req Transfer, r io.Reader, result any) error {
	st, _, err := s.Open(ctx, Header{Type: TypePut, Path: req.Path, Op: req.Op, Params: req.Params})
	if err != nil {
		return err
	}
	defer st.Close()
	fw := &frameWriter{w: st}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, chunkSize)
		for !stop.Load() {
			n, err := r.Read(buf)
			if n > 0 && fw.frame(chData, buf[:n]) != nil {
				return
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				readErr = err
				st.st.Close() // no end frame: the guest sees a truncated put
				return
			}
		}
		if fw.frame(chEnd, nil) == nil && ctx.Err() == nil {
			// All is sent: the guest's answer is due within the
			// reply timeout (ctx's past deadline, if it ends, wins).
			st.st.SetReadDeadline(time.Now().Add(s.cfg.replyTimeout()))
			if ctx.Err() != nil {
				st.st.SetDeadline(aLongTimeAgo())
			}
		}
	}()
	rep, err := readReply(st.r, s.cfg.maxLine(), s.cfg.peer())
	stop.Store(true)
	if err != nil {
		st.Close() // unblocks the sender
		wg.Wait()
		if readErr != nil {
			return fmt.Errorf("agentmux: reading what to put at %s: %w", req.Path, readErr)
		}
		if errors.Is(err, yamux.ErrTimeout) && ctx.Err() == nil {
			return fmt.Errorf("agentmux: %s did not answer the put of %s within %s of its end: %w", s.cfg.peer(), req.Path, s.cfg.replyTimeout(), ErrTimeout)
		}
		return wrapCtx(ctx, "putting "+req.Path, s.fail(err))
	}
	wg.Wait()
	if readErr != nil {
		return fmt.Errorf("agentmux: reading what to put at %s: %w", req.Path, readErr)
	}
	if rep.Error != nil {
		return rep.Error
	}
	return unmarshalResult(rep.Result, result, "put "+req.Path)
}

// unmarshalResult decodes a reply's result into v when both are set.
func unmarshalResult(raw json.RawMessage, v any, what string) error {
	if v == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("agentmux: malformed result of %s %q: %w", what, raw, err)
	}
	return nil
}

// Get copies what the guest's Handler produces for req (a tar stream,
// say) to w. An error from w aborts the transfer.
func (s *Session) Get(ctx context.Context, req Transfer, w io.Writer) error {
	st, _, err := s.Open(ctx, Header{Type: TypeGet, Path: req.Path, Op: req.Op, Params: req.Params})
	if err != nil {
		return err
	}
	defer st.Close()
	for {
		ch, p, err := readFrame(st.r)
		if err != nil {
			return wrapCtx(ctx, "getting "+req.Path, s.fail(noEOF(err)))
		}
		switch ch {
		case chData:
			if _, err := w.Write(p); err != nil {
				return fmt.Errorf("agentmux: writing %s: %w", req.Path, err)
			}
		case chEnd:
			var rep Reply
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
