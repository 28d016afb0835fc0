package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/web"
)

// fakeTerminals is a recording stand-in for the daemon's sessions: each
// Attach makes a fakeStream the test feeds and inspects.
type fakeTerminals struct {
	mu       sync.Mutex
	sessions map[string]api.Session // by id
	streams  []*fakeStream
	attached chan *fakeStream
}

func newFakeTerminals() *fakeTerminals {
	return &fakeTerminals{sessions: map[string]api.Session{}, attached: make(chan *fakeStream, 16)}
}

func (f *fakeTerminals) add(s api.Session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions[s.ID] = s
}

func (f *fakeTerminals) Attach(_ context.Context, vm, id string, since int64) (web.TerminalStream, api.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok || s.VM != vm {
		return nil, api.Session{}, api.Errorf(api.CodeNotFound, "no session %q in VM %s", id, vm)
	}
	st := &fakeStream{vm: vm, id: id, since: since, out: make(chan api.Chunk, 16), input: make(chan string, 16), closed: make(chan struct{})}
	f.streams = append(f.streams, st)
	f.attached <- st
	return st, s, nil
}

func (f *fakeTerminals) Session(_ context.Context, vm, id string) (api.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return s, api.Errorf(api.CodeNotFound, "no session %q", id)
	}
	return s, nil
}

// next waits for the next Attach.
func (f *fakeTerminals) next(t *testing.T) *fakeStream {
	t.Helper()
	select {
	case st := <-f.attached:
		return st
	case <-time.After(10 * time.Second):
		t.Fatal("no attach within 10s")
		return nil
	}
}

// fakeStream is one attachment: the test sends output on out (closing it
// ends the session), and reads what the browser typed on input.
type fakeStream struct {
	vm, id string
	since  int64
	out    chan api.Chunk
	input  chan string

	mu      sync.Mutex
	resizes []api.WindowSize

	closeOnce sync.Once
	closed    chan struct{}
}

var errDetached = errors.New("fake: detached")

func (s *fakeStream) Next() (api.Chunk, error) {
	select {
	case c, ok := <-s.out:
		if !ok {
			return api.Chunk{}, io.EOF
		}
		return c, nil
	case <-s.closed:
		return api.Chunk{}, errDetached
	}
}

func (s *fakeStream) Write(p []byte) (int, error) {
	s.input <- string(p)
	return len(p), nil
}

func (s *fakeStream) Resize(rows, cols uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resizes = append(s.resizes, api.WindowSize{Rows: rows, Cols: cols})
	return nil
}

func (s *fakeStream) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

func (s *fakeStream) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-s.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the attachment was not closed within 10s")
	}
}

func (s *fakeStream) typed(t *testing.T) string {
	t.Helper()
	select {
	case in := <-s.input:
		return in
	case <-time.After(10 * time.Second):
		t.Fatal("no input within 10s")
		return ""
	}
}

// dial opens a terminal WebSocket as the UI's page would: same origin,
// with the session cookie.
func (f *fixture) dial(t *testing.T, c *http.Cookie, path string) *websocket.Conn {
	t.Helper()
	h := http.Header{"Origin": {f.origin}}
	if c != nil {
		h.Set("Cookie", c.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+path, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// read returns the next message: binary output as "bytes:…", text as
// its JSON decoded into a map.
func read(t *testing.T, c *websocket.Conn) (websocket.MessageType, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("reading the terminal: %v", err)
	}
	return typ, b
}

func readText(t *testing.T, c *websocket.Conn, into any) {
	t.Helper()
	typ, b := read(t, c)
	if typ != websocket.MessageText {
		t.Fatalf("got a binary message %q, want a text one", b)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("text message %q: %v", b, err)
	}
}

func readBinary(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	typ, b := read(t, c)
	if typ != websocket.MessageBinary {
		t.Fatalf("got a text message %s, want output bytes", b)
	}
	return string(b)
}

func sendJSON(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// closed reads until the server closes and returns its close status and
// reason.
func closed(t *testing.T, c *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		typ, b, err := c.Read(ctx)
		if err == nil {
			t.Logf("message before the close: %d %q", typ, b)
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		t.Fatalf("the connection ended without a close message: %v", err)
	}
}

type message struct {
	Type    string      `json:"type"`
	Session api.Session `json:"session"`
	Offset  int64       `json:"offset"`
	Dropped int64       `json:"dropped"`
	Error   *api.Error  `json:"error"`
}

// TestTerminalRelays: the session's state first, then output bytes in
// order as binary messages and gaps as text; input and resizes reach
// the attachment; the session's end sends its checked state and closes
// normally.
func TestTerminalRelays(t *testing.T) {
	f := newFixture(t)
	cookie := f.login(t)
	f.terms.add(api.Session{ID: "s1", VM: "dev", TTY: true, State: api.SessionRunning, OutputBytes: 100, BufferedFrom: 5})
	c := f.dial(t, cookie, "/v1/vms/dev/sessions/s1/terminal?since=5")
	st := f.terms.next(t)
	if st.vm != "dev" || st.id != "s1" || st.since != 5 {
		t.Errorf("attached %s/%s since %d, want dev/s1 since 5", st.vm, st.id, st.since)
	}
	var m message
	readText(t, c, &m)
	if m.Type != "session" || m.Session.ID != "s1" || !m.Session.TTY || m.Session.BufferedFrom != 5 {
		t.Errorf("first message %+v, want the session", m)
	}

	st.out <- api.Chunk{Stream: "tty", Offset: 5, Data: []byte("hello ")}
	st.out <- api.Chunk{Stream: "gap", Offset: 11, Dropped: 7}
	st.out <- api.Chunk{Stream: "tty", Offset: 18, Data: []byte("world\r\n")}
	if got := readBinary(t, c); got != "hello " {
		t.Errorf("output %q", got)
	}
	readText(t, c, &m)
	if m.Type != "gap" || m.Offset != 11 || m.Dropped != 7 {
		t.Errorf("gap message %+v", m)
	}
	if got := readBinary(t, c); got != "world\r\n" {
		t.Errorf("output %q", got)
	}

	sendJSON(t, c, map[string]any{"type": "input", "data": "echo hi\r"})
	if got := st.typed(t); got != "echo hi\r" {
		t.Errorf("typed %q", got)
	}
	sendJSON(t, c, map[string]any{"type": "resize", "rows": 40, "cols": 120})
	sendJSON(t, c, map[string]any{"type": "input", "data": "x"}) // after the resize, in order
	st.typed(t)
	st.mu.Lock()
	resizes := st.resizes
	st.mu.Unlock()
	if diff := cmp.Diff([]api.WindowSize{{Rows: 40, Cols: 120}}, resizes); diff != "" {
		t.Errorf("resizes (-want +got):\n%s", diff)
	}

	code := 0
	f.terms.add(api.Session{ID: "s1", VM: "dev", TTY: true, State: api.SessionExited, ExitCode: &code})
	close(st.out)
	readText(t, c, &m)
	if m.Type != "exit" || m.Session.State != api.SessionExited || m.Session.ExitCode == nil || *m.Session.ExitCode != 0 {
		t.Errorf("last message %+v, want the exited session", m)
	}
	if status, reason := closed(t, c); status != websocket.StatusNormalClosure || reason != "session ended" {
		t.Errorf("closed with %d %q, want 1000 \"session ended\"", status, reason)
	}
	st.waitClosed(t)
}

// TestTerminalRefusals: a pipe session ignores resizes; a binary
// message, an unknown type, oversized input or a bad size get an error
// message and the terminal goes on; detach closes it normally and leaves
// the session.
func TestTerminalRefusals(t *testing.T) {
	f := newFixture(t)
	cookie := f.login(t)
	f.terms.add(api.Session{ID: "p", VM: "dev", State: api.SessionRunning})
	f.terms.add(api.Session{ID: "t", VM: "dev", TTY: true, State: api.SessionRunning})
	c := f.dial(t, cookie, "/v1/vms/dev/sessions/p/terminal")
	st := f.terms.next(t)
	if st.since != -1 {
		t.Errorf("no since attached from %d, want -1 (everything buffered)", st.since)
	}
	var m message
	readText(t, c, &m)

	ctx := context.Background()
	c.Write(ctx, websocket.MessageBinary, []byte("raw"))
	readText(t, c, &m)
	if m.Type != "error" || m.Error.Code != api.CodeInvalidArgument || !strings.Contains(m.Error.Message, `"input"`) {
		t.Errorf("binary message answered %+v", m)
	}
	sendJSON(t, c, map[string]any{"type": "launch"})
	readText(t, c, &m)
	if m.Type != "error" || m.Error.Field != "type" {
		t.Errorf("unknown type answered %+v", m)
	}
	sendJSON(t, c, map[string]any{"type": "input", "data": strings.Repeat("a", web.MaxInput+1)})
	readText(t, c, &m)
	if m.Type != "error" || m.Error.Field != "data" {
		t.Errorf("oversized input answered %+v", m)
	}
	c.Write(ctx, websocket.MessageText, []byte("not json"))
	readText(t, c, &m)
	if m.Type != "error" || m.Error.Code != api.CodeInvalidArgument {
		t.Errorf("malformed message answered %+v", m)
	}
	sendJSON(t, c, map[string]any{"type": "resize", "rows": 40, "cols": 120}) // pipe: ignored
	sendJSON(t, c, map[string]any{"type": "input", "data": strings.Repeat("b", web.MaxInput)})
	if got := st.typed(t); len(got) != web.MaxInput {
		t.Errorf("input of MaxInput bytes arrived as %d", len(got))
	}
	if len(st.resizes) != 0 {
		t.Errorf("a pipe session was resized: %v", st.resizes)
	}

	// A TTY session refuses a nonsense size.
	ct := f.dial(t, cookie, "/v1/vms/dev/sessions/t/terminal")
	stt := f.terms.next(t)
	readText(t, ct, &m)
	sendJSON(t, ct, map[string]any{"type": "resize", "rows": 0, "cols": 80})
	readText(t, ct, &m)
	if m.Type != "error" || !strings.Contains(m.Error.Message, "rows and cols") {
		t.Errorf("resize to 0 rows answered %+v", m)
	}
	sendJSON(t, ct, map[string]any{"type": "detach"})
	if status, reason := closed(t, ct); status != websocket.StatusNormalClosure || reason != "detached" {
		t.Errorf("detach closed with %d %q, want 1000 \"detached\"", status, reason)
	}
	stt.waitClosed(t)

	sendJSON(t, c, map[string]any{"type": "detach"})
	if status, reason := closed(t, c); status != websocket.StatusNormalClosure || reason != "detached" {
		t.Errorf("detach closed with %d %q, want 1000 \"detached\"", status, reason)
	}
	st.waitClosed(t)
}

// TestTerminalAttachRefused: a session the daemon refuses to attach
// gets the API error as a message, then a 1011 close; a bad since is
// refused before the upgrade.
func TestTerminalAttachRefused(t *testing.T) {
	f := newFixture(t)
	cookie := f.login(t)
	c := f.dial(t, cookie, "/v1/vms/dev/sessions/nope/terminal")
	var m message
	readText(t, c, &m)
	if m.Type != "error" || m.Error.Code != api.CodeNotFound {
		t.Errorf("message %+v, want a not_found error", m)
	}
	if status, reason := closed(t, c); status != websocket.StatusInternalError || reason != "not_found" {
		t.Errorf("closed with %d %q, want 1011 not_found", status, reason)
	}

	resp, body := f.do(t, req{path: "/v1/vms/dev/sessions/s/terminal?since=ten", cookie: cookie})
	if e := apiError(t, body); resp.StatusCode != 400 || e.Field != "since" {
		t.Errorf("bad since = %d %+v, want 400 on field since", resp.StatusCode, e)
	}
}

// TestTerminalSeveralViewers: two browsers on one session are two
// attachments, each with its own output.
func TestTerminalSeveralViewers(t *testing.T) {
	f := newFixture(t)
	c1, c2 := f.login(t), f.login(t)
	f.terms.add(api.Session{ID: "s", VM: "dev", TTY: true})
	a := f.dial(t, c1, "/v1/vms/dev/sessions/s/terminal")
	sa := f.terms.next(t)
	b := f.dial(t, c2, "/v1/vms/dev/sessions/s/terminal?since=0")
	sb := f.terms.next(t)
	var m message
	readText(t, a, &m)
	readText(t, b, &m)
	sa.out <- api.Chunk{Stream: "tty", Data: []byte("to a")}
	sb.out <- api.Chunk{Stream: "tty", Data: []byte("to b")}
	if got := readBinary(t, a); got != "to a" {
		t.Errorf("a got %q", got)
	}
	if got := readBinary(t, b); got != "to b" {
		t.Errorf("b got %q", got)
	}
	sendJSON(t, a, map[string]any{"type": "input", "data": "from a"})
	sendJSON(t, b, map[string]any{"type": "input", "data": "from b"})
	if sa.typed(t) != "from a" || sb.typed(t) != "from b" {
		t.Error("input reached the wrong attachment")
	}
	// One leaving does not end the other.
	a.CloseNow()
	sa.waitClosed(t)
	sb.out <- api.Chunk{Stream: "tty", Data: []byte("still")}
	if got := readBinary(t, b); got != "still" {
		t.Errorf("b got %q after a left", got)
	}
}

// TestTerminalEnds: revoking the web session closes its terminals with
// 1008; closing the handler (bangerd shutting down) closes them with
// 1001 and waits for them; a message over MaxMessage closes with 1009.
func TestTerminalEnds(t *testing.T) {
	t.Run("revoke", func(t *testing.T) {
		f := newFixture(t)
		f.terms.add(api.Session{ID: "s", VM: "dev"})
		c := f.dial(t, f.login(t), "/v1/vms/dev/sessions/s/terminal")
		st := f.terms.next(t)
		f.h.Revoke()
		if status, _ := closed(t, c); status != websocket.StatusPolicyViolation {
			t.Errorf("closed with %d, want 1008", status)
		}
		st.waitClosed(t)
	})
	t.Run("shutdown", func(t *testing.T) {
		f := newFixture(t)
		f.terms.add(api.Session{ID: "s", VM: "dev"})
		cookie := f.login(t)
		c := f.dial(t, cookie, "/v1/vms/dev/sessions/s/terminal")
		st := f.terms.next(t)
		var m message
		readText(t, c, &m)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			done <- f.h.Close(ctx)
		}()
		if status, reason := closed(t, c); status != websocket.StatusGoingAway || !strings.Contains(reason, "shutting down") {
			t.Errorf("closed with %d %q, want 1001", status, reason)
		}
		if err := <-done; err != nil {
			t.Errorf("Close: %v", err)
		}
		st.waitClosed(t)
		// No terminal after Close.
		resp, body := f.do(t, req{path: "/v1/vms/dev/sessions/s/terminal", cookie: cookie})
		if resp.StatusCode != 401 && resp.StatusCode != 503 {
			t.Errorf("terminal after Close = %d %s", resp.StatusCode, body)
		}
	})
	t.Run("message too big", func(t *testing.T) {
		f := newFixture(t)
		f.terms.add(api.Session{ID: "s", VM: "dev"})
		c := f.dial(t, f.login(t), "/v1/vms/dev/sessions/s/terminal")
		st := f.terms.next(t)
		var m message
		readText(t, c, &m)
		c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"input","data":"`+strings.Repeat("a", web.MaxMessage)+`"}`))
		if status, _ := closed(t, c); status != websocket.StatusMessageTooBig {
			t.Errorf("closed with %d, want 1009", status)
		}
		st.waitClosed(t)
	})
}
