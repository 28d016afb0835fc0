package agentmux

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/yamux"
)

// AttachRequest joins a long-lived guest session (see Attacher).
type AttachRequest struct {
	// Session names the session.
	Session string `json:"session"`
	// Since is the output offset to replay from; < 0 is from the oldest
	// byte still buffered.
	Since int64 `json:"since"`
	// Follow keeps the attachment open for live output; false ends it at
	// the output that existed at attach time.
	Follow bool `json:"follow"`
}

// Chunk.Stream values.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamTTY    = "tty"
	// StreamGap is output no longer buffered: Dropped bytes from Offset
	// on. Its Data is empty.
	StreamGap = "gap"
)

// Chunk is a piece of a session's output at an absolute offset.
type Chunk struct {
	Stream  string
	Offset  int64
	Data    []byte
	Dropped int64
}

// Attacher is implemented by a Handler that serves attach streams.
type Attacher interface {
	// Attach returns the attachment and a result for the reply line (e.g.
	// session info; nil: none). ctx ends when the host leaves or the
	// session ends; Next receives the same ctx.
	Attach(ctx context.Context, req AttachRequest) (Attachment, any, error)
}

// Attachment is one host attached to a session. Guest calls Next from one
// goroutine and Write, CloseStdin and Resize from another, so they run
// concurrently with Next (and may race with Detach, which should make a
// blocked Write return). Serving ends with exactly one of Final (Next
// returned io.EOF) or Detach (anything else: the host left, ctx ended,
// Next failed, output could not be sent).
type Attachment interface {
	// Next returns the next output chunk, blocking until there is one or
	// ctx ends; io.EOF when the session ended and everything was
	// delivered (or, without Follow, the output at attach time was).
	Next(ctx context.Context) (Chunk, error)
	// Write writes to the session's stdin.
	Write(p []byte) (int, error)
	// CloseStdin closes the session's stdin.
	CloseStdin() error
	// Resize changes the session's terminal size.
	Resize(rows, cols uint16) error
	// Detach ends the attachment; the session goes on.
	Detach() error
	// Final is called after Next returned io.EOF; its value goes into the
	// end frame's Reply.Result.
	Final() any
}

// Output frame payload: stream code, big-endian offset, then the data or,
// for a gap, the big-endian count of dropped bytes.
const (
	outputHeader  = 1 + 8
	maxOutputData = MaxFramePayload - outputHeader
)

var (
	streamCodes = map[string]byte{StreamStdout: 1, StreamStderr: 2, StreamTTY: 3, StreamGap: 4}
	streamNames = map[byte]string{1: StreamStdout, 2: StreamStderr, 3: StreamTTY, 4: StreamGap}
)

// sendChunk writes c as output frames (code is c.Stream's), splitting data
// that does not fit one frame.
func sendChunk(fw *frameWriter, code byte, c Chunk) error {
	var head [outputHeader]byte
	head[0] = code
	if c.Stream == StreamGap {
		var dropped [8]byte
		binary.BigEndian.PutUint64(head[1:], uint64(c.Offset))
		binary.BigEndian.PutUint64(dropped[:], uint64(c.Dropped))
		return fw.send(chOutput, false, head[:], dropped[:])
	}
	off, data := c.Offset, c.Data
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), maxOutputData)
		binary.BigEndian.PutUint64(head[1:], uint64(off))
		if err := fw.send(chOutput, false, head[:], data[:n]); err != nil {
			return err
		}
		off += int64(n)
		data = data[n:]
	}
	return nil
}

func decodeChunk(p []byte) (Chunk, error) {
	if len(p) < outputHeader {
		return Chunk{}, fmt.Errorf("output frame of %d bytes is shorter than its header", len(p))
	}
	name, ok := streamNames[p[0]]
	if !ok {
		return Chunk{}, fmt.Errorf("output frame of unknown stream %d: update banger", p[0])
	}
	c := Chunk{Stream: name, Offset: int64(binary.BigEndian.Uint64(p[1:outputHeader]))}
	if name == StreamGap {
		if len(p) != outputHeader+8 {
			return Chunk{}, fmt.Errorf("gap frame of %d bytes, want %d", len(p), outputHeader+8)
		}
		c.Dropped = int64(binary.BigEndian.Uint64(p[outputHeader:]))
		return c, nil
	}
	c.Data = p[outputHeader:]
	return c, nil
}

// serveAttach answers an attach stream: the reply line, then output frames
// until the end frame, while the host's frames go to the attachment.
func (g *Guest) serveAttach(ctx context.Context, st *yamux.Stream, r *bufio.Reader, h Header) {
	at, ok := g.Handler.(Attacher)
	if !ok {
		writeReply(st, Reply{Error: &Error{Code: CodeUnknownType, Message: "this agent does not serve attach: update banger-agent in the image"}})
		return
	}
	if h.Attach == nil || h.Attach.Session == "" {
		writeReply(st, Reply{Error: &Error{Code: CodeBadRequest, Message: "attach needs a session"}})
		return
	}
	name := h.Attach.Session
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, res, err := at.Attach(ctx, *h.Attach)
	if err != nil {
		writeReply(st, Reply{Error: asError(err, "attaching to session "+name)})
		return
	}
	var rep Reply
	rep.Result, rep.Error = marshalResult(res, "attach "+name)
	if writeReply(st, rep) != nil || rep.Error != nil {
		a.Detach()
		return
	}
	fw := &frameWriter{w: st}
	defer fw.stop()
	hostGone := func() {
		cancel()
		st.SetWriteDeadline(aLongTimeAgo()) // unblock output the host no longer reads
	}
	go attachInput(ctx, r, a, fw, hostGone)
	end := func(rep Reply) {
		b, _ := json.Marshal(rep)
		fw.last(chEnd, b)
	}
	for {
		c, err := a.Next(ctx)
		switch {
		case ctx.Err() != nil:
			a.Detach()
			return
		case errors.Is(err, io.EOF):
			var rep Reply
			rep.Result, rep.Error = marshalResult(a.Final(), "the end of session "+name)
			end(rep)
			return
		case err != nil:
			end(Reply{Error: asError(err, "reading session "+name+"'s output")})
			a.Detach()
			return
		}
		code, ok := streamCodes[c.Stream]
		if !ok {
			end(Reply{Error: &Error{Code: CodeInternal, Message: fmt.Sprintf("session %s produced output of unknown stream %q", name, c.Stream)}})
			a.Detach()
			return
		}
		if sendChunk(fw, code, c) != nil {
			a.Detach()
			return
		}
	}
}

// attachInput hands the host's frames to a until the host closes its end
// (or breaks the framing), then calls hostGone. Once ctx has ended it only
// drains. A stdin failure is reported once per distinct message.
func attachInput(ctx context.Context, r *bufio.Reader, a Attachment, fw *frameWriter, hostGone func()) {
	var last string
	report := func(err error) {
		if err == nil || err.Error() == last {
			return
		}
		last = err.Error()
		fw.frame(chStdinError, []byte(last))
	}
	for {
		ch, p, err := readFrame(r)
		if err != nil {
			hostGone()
			return
		}
		if ctx.Err() != nil {
			continue
		}
		switch ch {
		case chStdin:
			_, err := a.Write(p)
			report(err)
		case chStdinEOF:
			report(a.CloseStdin())
		case chResize:
			if len(p) == 4 {
				a.Resize(binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]))
			}
		}
	}
}

// Attach joins a guest session: Open, the reply's result unmarshalled
// into result (when non-nil), and NewAttached on the stream. Closing the
// Attached closes the stream, which detaches. ctx bounds the whole
// attachment: when it ends, Next fails with an error wrapping ctx.Err().
// A guest that cannot attach returns an *Error.
func (s *Session) Attach(ctx context.Context, req AttachRequest, result any) (*Attached, error) {
	st, rep, err := s.Open(ctx, Header{Type: TypeAttach, Attach: &req})
	if err != nil {
		return nil, err
	}
	if err := unmarshalResult(rep.Result, result, "attach "+req.Session); err != nil {
		st.Close()
		return nil, err
	}
	a := NewAttached(st)
	a.ctx = ctx
	return a, nil
}

// stdinErrorBuffer is how many stdin failures Attached holds for a reader
// of StdinErrors; more are dropped.
const stdinErrorBuffer = 8

var (
	// errAttachEnded is a write to an attachment that ended or was closed.
	errAttachEnded = errors.New("agentmux: the attachment has ended")
	// errAttachClosed is Next after Close.
	errAttachClosed = errors.New("agentmux: the attachment was closed")
)

// Attached is the host end of an attach stream after the guest's
// accepting reply. Next is for one goroutine; Write, CloseStdin and Resize
// are safe for concurrent use with it and with each other.
type Attached struct {
	rw  io.ReadWriter
	r   *bufio.Reader
	fw  *frameWriter
	ctx context.Context // preferred in Next's errors when set

	err   error // sticky: io.EOF after an end frame, or what broke
	final json.RawMessage

	errsMu     sync.Mutex
	errsClosed bool
	stdinErrs  chan string

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// NewAttached runs the host end of the attach protocol on rw, positioned
// after the guest's reply line: a *Stream from Open, or a connection
// spliced to one.
func NewAttached(rw io.ReadWriter) *Attached {
	return &Attached{
		rw:        rw,
		r:         bufio.NewReader(rw),
		fw:        &frameWriter{w: rw},
		stdinErrs: make(chan string, stdinErrorBuffer),
	}
}

// Next returns the next output chunk. After the end frame it returns
// io.EOF (then Final has the result), or the *Error the end frame carried;
// a broken stream is another error. The error is returned again by later
// calls.
func (a *Attached) Next() (Chunk, error) {
	if a.err != nil {
		return Chunk{}, a.err
	}
	for {
		ch, p, err := readFrame(a.r)
		if err != nil {
			if a.closed.Load() {
				return Chunk{}, a.end(errAttachClosed)
			}
			if st, ok := a.rw.(*Stream); ok {
				err = st.sess.fail(err)
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("the agent closed the stream without an end frame")
			}
			if a.ctx != nil {
				return Chunk{}, a.end(wrapCtx(a.ctx, "reading the attachment", err))
			}
			return Chunk{}, a.end(fmt.Errorf("agentmux: reading the attachment: %w", err))
		}
		switch ch {
		case chOutput:
			c, err := decodeChunk(p)
			if err != nil {
				return Chunk{}, a.end(fmt.Errorf("agentmux: %w", err))
			}
			return c, nil
		case chStdinError:
			a.stdinError(string(p[:min(len(p), maxStdinError)]))
		case chEnd:
			var rep Reply
			if err := json.Unmarshal(p, &rep); err != nil {
				return Chunk{}, a.end(fmt.Errorf("agentmux: malformed end of attach %q: %w", p, err))
			}
			if rep.Error != nil {
				return Chunk{}, a.end(rep.Error)
			}
			a.final = rep.Result
			return Chunk{}, a.end(io.EOF)
		}
	}
}

// end makes err Next's last word.
func (a *Attached) end(err error) error {
	a.err = err
	a.fw.stop()
	a.closeStdinErrors()
	return err
}

// Final unmarshals the result of the end frame into v (nothing to do when
// the guest sent none). It needs Next to have returned io.EOF.
func (a *Attached) Final(v any) error {
	if a.err != io.EOF {
		return errors.New("agentmux: the attachment's result is known only after Next returned io.EOF")
	}
	return unmarshalResult(a.final, v, "the attachment's end")
}

// Write sends p to the session's stdin. It returns once the frames are
// sent: a failure to deliver them in the guest arrives on StdinErrors.
func (a *Attached) Write(p []byte) (int, error) {
	n, err := a.fw.data(chStdin, p)
	return n, a.writeErr("sending stdin", err)
}

// CloseStdin closes the session's stdin.
func (a *Attached) CloseStdin() error {
	return a.writeErr("closing stdin", a.fw.frame(chStdinEOF, nil))
}

// Resize changes the session's terminal size.
func (a *Attached) Resize(ws WindowSize) error {
	return a.writeErr("resizing the terminal", a.fw.frame(chResize, resizePayload(ws)))
}

func (a *Attached) writeErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errFramesShut):
		return errAttachEnded
	}
	return fmt.Errorf("agentmux: %s: %w", what, err)
}

// StdinErrors delivers the guest's messages about stdin it could not
// deliver (the session's stdin closed, say), each distinct failure once.
// They arrive while Next reads the stream; when the buffer (8) is full
// more are dropped. The channel is closed when Next has returned its last
// chunk or on Close.
func (a *Attached) StdinErrors() <-chan string { return a.stdinErrs }

func (a *Attached) stdinError(msg string) {
	a.errsMu.Lock()
	defer a.errsMu.Unlock()
	if a.errsClosed {
		return
	}
	select {
	case a.stdinErrs <- msg:
	default:
	}
}

func (a *Attached) closeStdinErrors() {
	a.errsMu.Lock()
	defer a.errsMu.Unlock()
	if !a.errsClosed {
		a.errsClosed = true
		close(a.stdinErrs)
	}
}

// Close detaches: later writes fail, a blocked Next returns (when rw has
// SetDeadline), and rw is closed when it is an io.Closer, which the guest
// takes as the host leaving. The session goes on.
func (a *Attached) Close() error {
	a.closeOnce.Do(func() {
		a.closed.Store(true)
		a.fw.stop()
		a.closeStdinErrors()
		if d, ok := a.rw.(deadliner); ok {
			d.SetDeadline(aLongTimeAgo())
		}
		if c, ok := a.rw.(io.Closer); ok {
			a.closeErr = c.Close()
		}
	})
	return a.closeErr
}
