package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/bangerdev/banger/api"
)

// Terminals opens the streams behind the terminal endpoint. The daemon
// gives its guest service (see GuestTerminals); a test gives what it
// likes.
type Terminals interface {
	// Attach joins a session, following its output from offset since
	// (< 0: everything still buffered); the Session is its state as the
	// attach began.
	Attach(ctx context.Context, vm, session string, since int64) (TerminalStream, api.Session, error)
	// Session returns a session's current state, checked (it ends a
	// terminal: the exit message carries it).
	Session(ctx context.Context, vm, session string) (api.Session, error)
}

// TerminalStream is one attachment to a session. Next is called from one
// goroutine; Write and Resize from another, concurrently with it; Close
// from any, and it makes a blocked Next return.
type TerminalStream interface {
	// Next returns the next output chunk; io.EOF once the session ended
	// and all its output was delivered.
	Next() (api.Chunk, error)
	// Write sends bytes to the session's input.
	Write(p []byte) (int, error)
	// Resize sets the session's terminal size.
	Resize(rows, cols uint16) error
	// Close detaches; the session goes on.
	Close() error
}

// Limits of the terminal protocol.
const (
	// MaxMessage is the largest message a browser may send; a larger one
	// closes the connection (status 1009).
	MaxMessage = 256 << 10
	// MaxInput is the most input bytes one input message may carry.
	MaxInput = 64 << 10
	// maxTermSize bounds the rows and columns of a resize.
	maxTermSize = 4096
	// pingInterval is how often a quiet browser is pinged; pingTimeout
	// how long its pong may take before the connection is dropped.
	pingInterval = 30 * time.Second
	pingTimeout  = 20 * time.Second
	// writeTimeout bounds one message to the browser: a browser that
	// stops reading is dropped, and the session's output waits in the
	// guest's buffer for the next attach.
	writeTimeout = 30 * time.Second
)

// clientMessage is a text message from the browser.
type clientMessage struct {
	Type string `json:"type"` // "input", "resize" or "detach"
	Data string `json:"data"`
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// Text messages to the browser.
type (
	sessionMessage struct {
		Type    string      `json:"type"` // "session" (first) or "exit" (last)
		Session api.Session `json:"session"`
	}
	gapMessage struct {
		Type    string `json:"type"` // "gap"
		Offset  int64  `json:"offset"`
		Dropped int64  `json:"dropped"`
	}
	errorMessage struct {
		Type  string     `json:"type"` // "error"
		Error *api.Error `json:"error"`
	}
)

// Why a terminal ended, other than by the session's end.
type endReason int

const (
	endNone     endReason = iota
	endDetached           // the browser sent detach
	endGone               // the browser closed, broke the protocol or missed a pong
)

// terminal serves GET /v1/vms/{name}/sessions/{id}/terminal: a WebSocket
// joined to one attachment of the session (see the package doc).
func (h *Handler) terminal(w http.ResponseWriter, r *http.Request) {
	vm, id := r.PathValue("name"), r.PathValue("id")
	since := int64(-1)
	if s := r.URL.Query().Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			writeAPIError(w, api.FieldErrorf("since", "a byte offset: 0 or more, or -1 for everything buffered",
				"since %q is not an offset: give a byte offset (0 or more), or -1 for everything buffered", s))
			return
		}
		since = n
	}
	if h.terms == nil {
		writeAPIError(w, api.Errorf(api.CodeUnimplemented, "this web listener serves no terminals"))
		return
	}
	if !h.track() {
		writeAPIError(w, api.Errorf(api.CodeUnavailable, "bangerd is shutting down"))
		return
	}
	defer h.conns.Done()
	// The Origin was checked (see guard); the library checks it again
	// against the Host.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return // Accept answered the request
	}
	c.SetReadLimit(MaxMessage)
	t := &termConn{h: h, c: c, vm: vm, id: id}
	t.run(r.Context(), since)
}

// termConn is one browser's terminal.
type termConn struct {
	h      *Handler
	c      *websocket.Conn
	vm, id string

	mu     sync.Mutex
	reason endReason
}

func (t *termConn) end(r endReason) {
	t.mu.Lock()
	if t.reason == endNone {
		t.reason = r
	}
	t.mu.Unlock()
}

func (t *termConn) why() endReason {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reason
}

// send writes one text message. Its context is not the request's: a
// cancelled write context tears the connection down without a close
// message, which only a timeout should do.
func (t *termConn) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return t.c.Write(ctx, websocket.MessageText, b)
}

func (t *termConn) sendError(err error) error {
	return t.send(errorMessage{Type: "error", Error: api.FromError(err)})
}

// run attaches, relays until the session ends, the browser detaches or
// leaves, the web session ends or the handler closes, then closes the
// WebSocket saying which.
func (t *termConn) run(ctx context.Context, since int64) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	st, ses, err := t.h.terms.Attach(ctx, t.vm, t.id, since)
	if err != nil {
		t.sendError(err)
		t.c.Close(websocket.StatusInternalError, string(api.FromError(err).Code))
		return
	}
	defer st.Close()
	context.AfterFunc(ctx, func() { st.Close() }) // unblocks Next
	if t.send(sessionMessage{Type: "session", Session: ses}) != nil {
		t.c.CloseNow()
		return
	}

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		t.read(st, ses.TTY)
		stop()
	}()
	go func() {
		defer wg.Done()
		t.ping(ctx)
	}()

	// Once the WebSocket is closed, the reader returns; the pinger
	// returns with ctx.
	defer func() { stop(); wg.Wait() }()
	for {
		ch, err := st.Next()
		if err != nil {
			t.finish(ctx, err)
			return
		}
		if ch.Stream == "gap" {
			err = t.send(gapMessage{Type: "gap", Offset: ch.Offset, Dropped: ch.Dropped})
		} else {
			wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			err = t.c.Write(wctx, websocket.MessageBinary, ch.Data)
			cancel()
		}
		if err != nil {
			t.end(endGone)
			t.finish(ctx, err)
			return
		}
	}
}

// finish closes the WebSocket after the stream ended with err.
func (t *termConn) finish(ctx context.Context, err error) {
	switch {
	case t.why() == endGone:
		t.c.CloseNow()
	case t.why() == endDetached:
		t.c.Close(websocket.StatusNormalClosure, "detached")
	case t.h.ctx.Err() != nil:
		t.c.Close(websocket.StatusGoingAway, "bangerd is shutting down")
	case ctx.Err() != nil:
		// The web session ended (logout, revoke) or its request did.
		t.c.Close(websocket.StatusPolicyViolation, "the web session ended: run banger web to log in again")
	case errors.Is(err, io.EOF):
		// The session ended: its state now, as the daemon checked it.
		sctx, cancel := context.WithTimeout(ctx, writeTimeout)
		ses, serr := t.h.terms.Session(sctx, t.vm, t.id)
		cancel()
		if serr != nil {
			t.sendError(serr)
			t.c.Close(websocket.StatusInternalError, string(api.FromError(serr).Code))
			return
		}
		t.send(sessionMessage{Type: "exit", Session: ses})
		t.c.Close(websocket.StatusNormalClosure, "session ended")
	default:
		t.sendError(err)
		t.c.Close(websocket.StatusInternalError, string(api.FromError(err).Code))
	}
}

// read hands the browser's messages to the stream until the browser
// detaches or the connection ends. Its context never ends: a cancelled
// read would drop the connection without a close message; the
// connection's close ends the read instead.
func (t *termConn) read(st TerminalStream, tty bool) {
	for {
		typ, data, err := t.c.Read(context.Background())
		if err != nil {
			t.end(endGone)
			return
		}
		if typ != websocket.MessageText {
			t.sendError(api.Errorf(api.CodeInvalidArgument, `send input as a text message {"type":"input","data":"..."}`))
			continue
		}
		var m clientMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.sendError(api.Errorf(api.CodeInvalidArgument, "a terminal message must be a JSON object with a type: %v", err))
			continue
		}
		switch m.Type {
		case "input":
			if len(m.Data) > MaxInput {
				t.sendError(api.FieldErrorf("data", "at most 64KiB", "input of %d bytes is more than one message takes (%d): send it in pieces", len(m.Data), MaxInput))
				continue
			}
			if _, err := st.Write([]byte(m.Data)); err != nil {
				t.sendError(err)
			}
		case "resize":
			if !tty {
				continue // a pipe session has no terminal to size
			}
			if m.Rows == 0 || m.Cols == 0 || m.Rows > maxTermSize || m.Cols > maxTermSize {
				t.sendError(api.Errorf(api.CodeInvalidArgument, "resize to %dx%d: rows and cols must be 1..%d", m.Rows, m.Cols, maxTermSize))
				continue
			}
			st.Resize(m.Rows, m.Cols)
		case "detach":
			t.end(endDetached)
			return
		default:
			t.sendError(api.FieldErrorf("type", "input, resize, detach", "unknown terminal message type %q: send input, resize or detach", m.Type))
		}
	}
}

// ping keeps the connection alive through quiet sessions and drops a
// browser that stopped answering.
func (t *termConn) ping(ctx context.Context) {
	tick := time.NewTicker(pingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		err := t.c.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				t.end(endGone)
				t.c.CloseNow()
			}
			return
		}
	}
}
