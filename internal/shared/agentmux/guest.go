package agentmux

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/hashicorp/yamux"
)

// Handler is what banger-agent decides for the requests Guest serves;
// exec is generic and Guest runs it itself. A Handler that also
// implements Caller serves call streams, and one that implements Attacher
// serves attach streams. A method may return an *Error to choose the code
// the host sees; other errors are CodeInternal.
type Handler interface {
	// Health reports the guest's health. Guest sets Protocol.
	Health(ctx context.Context) (agentproto.Health, error)
	// Put stores what r yields (until io.EOF; a transfer the host broke
	// off is io.ErrUnexpectedEOF) as req says. Its result (nil: none) is
	// marshalled into the final reply's Result.
	Put(ctx context.Context, req Transfer, r io.Reader) (any, error)
	// Get writes what req names to w.
	Get(ctx context.Context, req Transfer, w io.Writer) error
}

// Guest is the agent end of the channel.
type Guest struct {
	// Handler serves put, get and health; nil refuses them.
	Handler Handler
	// Key is the VM's agent key (KeySize bytes, from the boot payload).
	// Only a host that proves it holds the key gets a session; a Guest
	// without one refuses every request, saying that it has no key.
	Key []byte
	// KeyFunc, when set, is asked for the key at every upgrade instead
	// of reading Key, so the agent can change its key (agentproto's
	// identity call) without ending the channel: a session keeps working
	// with the key it was opened with, and the next upgrade on any
	// channel needs the new one.
	KeyFunc func() []byte
	// AuthFailDelay is how long Serve pauses after a failed
	// authentication (1s when zero).
	AuthFailDelay time.Duration
	// Log receives session starts and ends; nil discards them.
	Log *slog.Logger
	// Dial connects a dial stream to a guest port; nil is DialLoopback
	// (127.0.0.1, then ::1). It may return an *Error to choose the code
	// the host sees; an error wrapping ECONNREFUSED is CodeDialRefused.
	Dial func(ctx context.Context, port int) (net.Conn, error)
	// MaxDials bounds the dial streams relayed at once (DefaultMaxDials
	// when zero); more are refused with CodeDialBusy.
	MaxDials int

	dials dialCounter
}

func (g *Guest) log() *slog.Logger {
	if g.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Log
}

// key is the key the next upgrade must prove.
func (g *Guest) key() []byte {
	if g.KeyFunc != nil {
		return g.KeyFunc()
	}
	return g.Key
}

// errDetached ends the reads and writes of a session Serve abandoned.
var errDetached = errors.New("agentmux: session detached from the channel")

// Serve runs the agent channel rw until it ends or ctx is done: line mode
// (the handshake: answering upgrades with a challenge, and a correct
// proof of the key with upgrade-ok; every other request is refused) and,
// after each authenticated upgrade, a yamux session serving one request
// per stream. When a session fails, Serve returns to line mode (see the
// package comment on resync).
//
// It returns io.EOF (test with errors.Is) when rw ends, ctx.Err() when ctx
// ends (interrupting a blocked read on streams with deadlines; other
// streams must be closed by the caller), and other read errors as they
// come.
func (g *Guest) Serve(ctx context.Context, rw io.ReadWriter) error {
	log := g.log()
	quit := make(chan struct{})
	defer close(quit)
	if d, ok := rw.(deadliner); ok {
		stop := context.AfterFunc(ctx, func() { d.SetDeadline(aLongTimeAgo()) })
		defer stop()
	}
	if problem := keyProblem(g.key()); problem != "" {
		log.Error("the agent channel serves nobody", "reason", problem)
	}
	p := startPump(rw, quit)
	w := &lockedWriter{w: rw}
	// Reset first: a host may still run a session with the agent that had
	// this channel before (the agent restarted under it). This line is not
	// a yamux frame, so that session fails at once instead of at its
	// keepalive timeout; a host in line mode skips it. The write may wait
	// for a host to connect (a virtio-serial port with none blocks), so it
	// runs aside, holding the writer so nothing overtakes it.
	w.mu.Lock()
	go func() {
		defer w.mu.Unlock()
		w.w.Write([]byte("\n" + resetLine + "\n"))
	}()
	lr := &lineReader{src: pumpReader{p, ctx.Done()}}
	var pending *pendingAuth
	for {
		line, err := lr.next()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return err
			}
			return fmt.Errorf("agentmux: reading the agent channel: %w", err)
		}
		var m upgradeMsg
		if len(line) == 0 || !decodeLine(line, &m) || m.ID == "" || m.Type == "" || len(m.ID) > maxIDLen {
			continue // garbage, stale bytes: nothing is answered
		}
		upgraded, err := g.lineMode(ctx, w, m, &pending)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("agentmux: writing a line-mode reply: %w", err)
		}
		if !upgraded {
			continue
		}
		log.Info("agent channel upgraded", "protocol", Protocol)
		err = g.session(ctx, p, lr, w)
		log.Info("agent session ended; back to line mode", "err", err)
		lr.src = pumpReader{p, ctx.Done()}
	}
}

// session serves one yamux session on the channel until it fails or ctx
// ends, then leaves lr holding the bytes to read in line mode.
func (g *Guest) session(ctx context.Context, p *pump, lr *lineReader, w *lockedWriter) error {
	conn := &guestConn{lr: lr, w: w, done: make(chan struct{})}
	lr.src = pumpReader{p, conn.done}
	mux, err := yamux.Server(conn, yamuxConfig())
	if err != nil {
		conn.Close()
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			st, err := mux.AcceptStream()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.serveStream(sctx, st)
			}()
		}
	}()
	select {
	case <-mux.CloseChan():
	case <-ctx.Done():
	}
	mux.Close()
	cancel()
	conn.Close()
	wg.Wait()
	lr.unread(conn.replay())
	return ctx.Err()
}

// guestConn is the channel as one yamux session sees it. Close detaches
// the session: later reads and writes fail, and the channel stays open for
// line mode.
type guestConn struct {
	lr   *lineReader
	w    *lockedWriter
	done chan struct{}
	once sync.Once
	mu   sync.Mutex // held during a read; guards tail
	tail []byte     // the last bytes read, for replay
}

// tailBytes is how much of what a session read Serve keeps for replay:
// more than yamux's read buffer (4 KiB) holds.
const tailBytes = 16 << 10

func (c *guestConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return 0, errDetached
	default:
	}
	n, err := c.lr.Read(p)
	c.tail = append(c.tail, p[:n]...)
	if len(c.tail) > 2*tailBytes {
		c.tail = append([]byte(nil), c.tail[len(c.tail)-tailBytes:]...)
	}
	return n, err
}

func (c *guestConn) Write(p []byte) (int, error) {
	select {
	case <-c.done:
		return 0, errDetached
	default:
	}
	return c.w.Write(p)
}

func (c *guestConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// replay returns what line mode should reread after the session: the
// recorded tail from the first line-mode message start on. It waits for a
// read in progress to end (Close has made it return).
func (c *guestConn) replay() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	tail := c.tail
	if len(tail) > tailBytes {
		tail = tail[len(tail)-tailBytes:]
	}
	if i := bytes.Index(tail, []byte("\n"+messageStart)); i >= 0 {
		return tail[i:]
	}
	return nil
}

// pump reads the channel in one goroutine for the whole of Serve, so line
// mode and each session can take turns without a read left blocked in the
// wrong one.
type pump struct {
	ch      chan []byte
	err     error // set before ch is closed
	pending []byte
}

func startPump(r io.Reader, quit <-chan struct{}) *pump {
	p := &pump{ch: make(chan []byte)}
	go func() {
		for {
			buf := make([]byte, 32<<10)
			n, err := r.Read(buf)
			if n > 0 {
				select {
				case p.ch <- buf[:n]:
				case <-quit:
					return
				}
			}
			if err != nil {
				p.err = err
				close(p.ch)
				return
			}
		}
	}()
	return p
}

// pumpReader reads the pump until done is closed.
type pumpReader struct {
	p    *pump
	done <-chan struct{}
}

func (r pumpReader) Read(b []byte) (int, error) {
	p := r.p
	if len(p.pending) == 0 {
		select {
		case c, ok := <-p.ch:
			if !ok {
				return 0, p.err
			}
			p.pending = c
		case <-r.done:
			return 0, errDetached
		}
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	return n, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// serveStream answers one request stream.
func (g *Guest) serveStream(ctx context.Context, st *yamux.Stream) {
	defer st.Close()
	r := bufio.NewReader(st)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	var h Header
	if err := json.Unmarshal(line, &h); err != nil || h.Type == "" {
		writeReply(st, Reply{Error: &Error{Code: CodeBadRequest, Message: `not a stream header: want one JSON object with "type" (one of ` + servedTypes + `)`}})
		return
	}
	switch h.Type {
	case TypeHealth, TypePut, TypeGet:
		if g.Handler == nil {
			writeReply(st, Reply{Error: &Error{Code: CodeUnknownType, Message: fmt.Sprintf("this agent does not serve %q: update banger-agent in the image", h.Type)}})
			return
		}
	}
	switch h.Type {
	case TypeHealth:
		health, err := g.Handler.Health(ctx)
		if err != nil {
			writeReply(st, Reply{Error: asError(err, "reading the guest's health")})
			return
		}
		health.Protocol = Protocol
		writeReply(st, Reply{Health: &health})
	case TypeExec:
		if h.Exec == nil || len(h.Exec.Argv) == 0 {
			writeReply(st, Reply{Error: &Error{Code: CodeBadRequest, Message: "exec needs a command (argv)"}})
			return
		}
		serveExec(ctx, st, r, *h.Exec)
	case TypePut:
		g.servePut(ctx, st, r, Transfer{Path: h.Path, Op: h.Op, Params: h.Params})
	case TypeGet:
		g.serveGet(ctx, st, r, Transfer{Path: h.Path, Op: h.Op, Params: h.Params})
	case TypeCall:
		g.serveCall(ctx, st, h)
	case TypeAttach:
		g.serveAttach(ctx, st, r, h)
	case TypeDial:
		g.serveDial(ctx, st, r, h.Port)
	default:
		writeReply(st, Reply{Error: &Error{Code: CodeUnknownType, Message: fmt.Sprintf("unknown request type %q: this agent (protocol %d) serves %s; update banger-agent in the image", h.Type, Protocol, servedTypes)}})
	}
}

// servedTypes lists the stream types, for error messages.
const servedTypes = "exec, put, get, health, call, attach, dial"

func writeReply(w io.Writer, rep Reply) error {
	b, err := json.Marshal(rep)
	if err != nil {
		b, _ = json.Marshal(Reply{Error: &Error{Code: CodeInternal, Message: "encoding the reply: " + err.Error()}})
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// marshalResult is a handler's result as a Reply.Result: nil (and a
// value that marshals to null) is no result.
func marshalResult(v any, what string) (json.RawMessage, *Error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "encoding the result of " + what + ": " + err.Error()}
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}

// asError turns a handler error into what the host sees.
func asError(err error, what string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: what + ": " + err.Error()}
}

func (g *Guest) servePut(ctx context.Context, st io.Writer, r *bufio.Reader, req Transfer) {
	if writeReply(st, Reply{}) != nil {
		return
	}
	pr, pw := io.Pipe()
	result := make(chan error, 1)
	go func() {
		res, err := g.Handler.Put(ctx, req, pr)
		pr.CloseWithError(errors.New("the put handler returned"))
		rep := Reply{}
		if err != nil {
			rep.Error = asError(err, "putting "+req.Path)
		} else {
			rep.Result, rep.Error = marshalResult(res, "put "+req.Path)
		}
		result <- writeReply(st, rep)
	}()
	// Feed the handler; after it returns, drain until the host's end so
	// the host's writes never block.
	for {
		ch, p, err := readFrame(r)
		if err != nil {
			pw.CloseWithError(noEOF(err))
			break
		}
		if ch == chEnd {
			pw.Close()
			break
		}
		if ch == chData {
			pw.Write(p) // fails once the handler returned: drain
		}
	}
	<-result
}

func (g *Guest) serveGet(ctx context.Context, st io.Writer, r *bufio.Reader, req Transfer) {
	if writeReply(st, Reply{}) != nil {
		return
	}
	// The host closing its end means it gave up: stop the handler.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, r)
		cancel()
	}()
	fw := &frameWriter{w: st}
	err := g.Handler.Get(ctx, req, ctxWriter{ctx, channelWriter{fw, chData}})
	rep := Reply{}
	if err != nil {
		rep.Error = asError(err, "getting "+req.Path)
	}
	b, _ := json.Marshal(rep)
	fw.frame(chEnd, b)
}

// ctxWriter fails once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
