package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// fakeDaemon speaks bangerd's session API on a Unix socket. Attach goes
// through a real agentmux guest (the agent's protocol: frames, offsets,
// gaps, the end reply) to fakeSessions that record what they were sent:
// stdin, its closing, window sizes, signals, detaches.
type fakeDaemon struct {
	t    *testing.T
	sock string
	mux  *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*fakeSession // by id
	hijacked []net.Conn
	agent    *agentmux.Session
}

// testKey is the fake guest's agent key.
var testKey = []byte("0123456789abcdef0123456789abcdef")

func startFakeDaemon(t *testing.T) (*fakeDaemon, *client.Client) {
	t.Helper()
	d := &fakeDaemon{t: t, sock: daemontest.ShortTempDir(t) + "/bangerd.sock", mux: http.NewServeMux(), sessions: map[string]*fakeSession{}}
	// The guest end: a real agentmux guest serving the fake sessions.
	ctx, cancel := context.WithCancel(context.Background())
	host, guest := net.Pipe()
	g := &agentmux.Guest{Handler: fakeAgent{d}, Key: testKey}
	served := make(chan struct{})
	go func() { g.Serve(ctx, guest); close(served) }()
	agent, err := agentmux.Upgrade(ctx, host, testKey)
	if err != nil {
		t.Fatal(err)
	}
	d.agent = agent
	t.Cleanup(func() {
		cancel()
		agent.Close()
		host.Close()
		guest.Close()
		<-served
	})

	v := "/" + api.Version
	d.mux.HandleFunc("GET "+v+"/vms/{vm}/sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		s, ok := d.find(r)
		if !ok {
			notFound(w, r)
			return
		}
		writeJSON(w, http.StatusOK, s.snapshot())
	})
	d.mux.HandleFunc("DELETE "+v+"/vms/{vm}/sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		s, ok := d.find(r)
		if !ok {
			notFound(w, r)
			return
		}
		if s.snapshot().State == api.SessionRunning {
			writeJSON(w, http.StatusConflict, api.ErrorBody{Error: api.Errorf(api.CodeFailedPrecondition, "session %s is running: stop it first", s.info.ID)})
			return
		}
		d.mu.Lock()
		delete(d.sessions, s.info.ID)
		d.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	d.mux.HandleFunc("POST "+v+"/vms/{vm}/sessions/{id}/signal", func(w http.ResponseWriter, r *http.Request) {
		s, ok := d.find(r)
		if !ok {
			notFound(w, r)
			return
		}
		var req api.SignalSessionRequest
		json.NewDecoder(r.Body).Decode(&req)
		writeJSON(w, http.StatusOK, s.signal(req.Signal))
	})
	d.mux.HandleFunc("POST "+v+"/vms/{vm}/sessions/{id}/attach", d.attach)

	l, err := net.Listen("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: d.mux}
	go srv.Serve(l)
	t.Cleanup(func() {
		srv.Close()
		d.dropAttaches()
	})
	cl := client.New(d.sock)
	t.Cleanup(cl.Close)
	return d, cl
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, api.ErrorBody{Error: api.Errorf(api.CodeNotFound, "no session %q in %s", r.PathValue("id"), r.PathValue("vm"))})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// add registers a session (VM "demo"); its state is what the test set.
func (d *fakeDaemon) add(info api.Session) *fakeSession {
	info.VM = "demo"
	if info.State == "" {
		info.State = api.SessionRunning
	}
	s := &fakeSession{info: info, changed: make(chan struct{}), onSignal: map[string]func(*fakeSession){}}
	d.mu.Lock()
	d.sessions[info.ID] = s
	d.mu.Unlock()
	return s
}

func (d *fakeDaemon) lookup(ref string) (*fakeSession, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.sessions[ref]; ok {
		return s, true
	}
	for _, s := range d.sessions {
		if s.info.Name == ref {
			return s, true
		}
	}
	return nil, false
}

func (d *fakeDaemon) find(r *http.Request) (*fakeSession, bool) {
	if r.PathValue("vm") != "demo" {
		return nil, false
	}
	return d.lookup(r.PathValue("id"))
}

// attach is the daemon's attach: the guest's attach stream spliced to
// the caller's upgraded connection, with the session in a header.
func (d *fakeDaemon) attach(w http.ResponseWriter, r *http.Request) {
	s, ok := d.find(r)
	if !ok {
		notFound(w, r)
		return
	}
	since := int64(-1)
	if q := r.URL.Query().Get("since"); q != "" {
		since, _ = strconv.ParseInt(q, 10, 64)
	}
	s.mu.Lock()
	s.sinces = append(s.sinces, since)
	s.mu.Unlock()
	st, _, err := d.agent.Open(r.Context(), agentmux.Header{Type: agentmux.TypeAttach,
		Attach: &agentmux.AttachRequest{Session: s.info.ID, Since: since, Follow: r.URL.Query().Get("follow") != "false"}})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, api.ErrorBody{Error: api.Errorf(api.CodeInternal, "attach: %v", err)})
		return
	}
	defer st.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	d.mu.Lock()
	d.hijacked = append(d.hijacked, conn)
	d.mu.Unlock()
	b, _ := json.Marshal(s.snapshot())
	io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+api.UpgradeStream+"\r\n"+api.HeaderSession+": "+string(b)+"\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() {
		var in io.Reader = conn
		if n := brw.Reader.Buffered(); n > 0 {
			p, _ := brw.Reader.Peek(n)
			in = io.MultiReader(bytes.NewReader(bytes.Clone(p)), conn)
		}
		io.Copy(st, in)
		done <- struct{}{}
	}()
	go func() { io.Copy(conn, st); done <- struct{}{} }()
	<-done
}

// dropAttaches cuts every attach connection, as a daemon that dies does.
func (d *fakeDaemon) dropAttaches() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.hijacked {
		c.Close()
	}
}

// fakeAgent is the guest's handler: it serves attach to the fake
// sessions and nothing else.
type fakeAgent struct{ d *fakeDaemon }

func (fakeAgent) Health(context.Context) (agentproto.Health, error) {
	return agentproto.Health{Hostname: "demo"}, nil
}

func (fakeAgent) Put(context.Context, agentmux.Transfer, io.Reader) (any, error) {
	return nil, errors.New("the fake agent serves attach only")
}

func (fakeAgent) Get(context.Context, agentmux.Transfer, io.Writer) error {
	return errors.New("the fake agent serves attach only")
}

func (a fakeAgent) Attach(ctx context.Context, req agentmux.AttachRequest) (agentmux.Attachment, any, error) {
	s, ok := a.d.lookup(req.Session)
	if !ok {
		return nil, nil, &agentmux.Error{Code: "not_found", Message: "no session " + req.Session}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := req.Since
	if cur < 0 {
		cur = s.info.BufferedFrom
	}
	at := &fakeAttachment{s: s, cur: cur, follow: req.Follow, end: s.info.OutputBytes, detached: make(chan struct{})}
	s.info.AttachCount++
	return at, s.info, nil
}

// segment is output at an offset.
type segment struct {
	stream string
	off    int64
	data   []byte
}

// fakeSession is a session's state, output buffer and what it received.
type fakeSession struct {
	mu          sync.Mutex
	info        api.Session
	out         []segment
	changed     chan struct{} // closed and replaced on every change
	stdin       bytes.Buffer
	stdinClosed bool
	resizes     []string
	signals     []string
	sinces      []int64
	detaches    int
	// order is what the attachers sent, in order: "stdin" and "resize".
	order []string
	// onSignal is what a signal does (none: nothing, the process ignores
	// it); it runs with mu held.
	onSignal map[string]func(*fakeSession)
	// onStdinEOF runs (mu held) when its stdin is closed.
	onStdinEOF func(*fakeSession)
}

func (s *fakeSession) snapshot() api.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

func (s *fakeSession) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// emit appends output.
func (s *fakeSession) emit(stream, data string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emitLocked(stream, data)
}

func (s *fakeSession) emitLocked(stream, data string) {
	s.out = append(s.out, segment{stream: stream, off: s.info.OutputBytes, data: []byte(data)})
	s.info.OutputBytes += int64(len(data))
	s.notify()
}

// drop forgets output before off, as the guest's bounded buffer does.
func (s *fakeSession) drop(off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info.BufferedFrom = off
}

// exitLocked ends the process.
func (s *fakeSession) exitLocked(code int, signal string) {
	s.info.State = api.SessionExited
	if signal != "" {
		s.info.Signal = signal
	} else {
		s.info.ExitCode = &code
	}
	s.info.ExitedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.notify()
}

func (s *fakeSession) exit(code int, signal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exitLocked(code, signal)
}

func (s *fakeSession) signal(sig string) api.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signals = append(s.signals, sig)
	if f := s.onSignal[sig]; f != nil && s.info.State == api.SessionRunning {
		f(s)
	}
	return s.info
}

// waitFor blocks until cond holds (checked with mu held) or the test's
// patience runs out.
func (s *fakeSession) waitFor(t *testing.T, what string, cond func(*fakeSession) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		ok, ch := cond(s), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("session never got to: %s", what)
		}
	}
}

// fakeAttachment is one attacher's cursor into a fakeSession.
type fakeAttachment struct {
	s        *fakeSession
	cur      int64
	follow   bool
	end      int64
	once     sync.Once
	detached chan struct{}
}

func (a *fakeAttachment) Next(ctx context.Context) (agentmux.Chunk, error) {
	s := a.s
	for {
		s.mu.Lock()
		if a.cur < s.info.BufferedFrom {
			c := agentmux.Chunk{Stream: agentmux.StreamGap, Offset: a.cur, Dropped: s.info.BufferedFrom - a.cur}
			a.cur = s.info.BufferedFrom
			s.mu.Unlock()
			return c, nil
		}
		for _, seg := range s.out {
			if a.cur >= seg.off && a.cur < seg.off+int64(len(seg.data)) {
				c := agentmux.Chunk{Stream: seg.stream, Offset: a.cur, Data: bytes.Clone(seg.data[a.cur-seg.off:])}
				a.cur = seg.off + int64(len(seg.data))
				s.mu.Unlock()
				return c, nil
			}
		}
		if s.info.State != api.SessionRunning || (!a.follow && a.cur >= a.end) {
			s.mu.Unlock()
			return agentmux.Chunk{}, io.EOF
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-a.detached:
			return agentmux.Chunk{}, errors.New("detached")
		case <-ctx.Done():
			return agentmux.Chunk{}, ctx.Err()
		}
	}
}

func (a *fakeAttachment) Write(p []byte) (int, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stdinClosed {
		return 0, errors.New("stdin is closed")
	}
	s.stdin.Write(p)
	s.order = append(s.order, "stdin")
	s.notify()
	return len(p), nil
}

func (a *fakeAttachment) CloseStdin() error {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stdinClosed = true
	if s.onStdinEOF != nil {
		s.onStdinEOF(s)
	}
	s.notify()
	return nil
}

func (a *fakeAttachment) Resize(rows, cols uint16) error {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resizes = append(s.resizes, strconv.Itoa(int(rows))+"x"+strconv.Itoa(int(cols)))
	s.order = append(s.order, "resize")
	s.notify()
	return nil
}

func (a *fakeAttachment) Detach() error {
	a.once.Do(func() {
		close(a.detached)
		s := a.s
		s.mu.Lock()
		s.detaches++
		s.info.AttachCount--
		s.notify()
		s.mu.Unlock()
	})
	return nil
}

func (a *fakeAttachment) Final() any { return a.s.snapshot() }

// lineReader hands a test each line written to it.
type lineWriter struct {
	mu    sync.Mutex
	buf   strings.Builder
	wrote chan struct{}
}

func newLineWriter() *lineWriter { return &lineWriter{wrote: make(chan struct{}, 1000)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitContains blocks until the writer holds s.
func (w *lineWriter) waitContains(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(w.String(), s) {
		select {
		case <-w.wrote:
		case <-deadline:
			t.Fatalf("output %q never contained %q", w.String(), s)
		}
	}
}

// testCursors is a fresh cursor directory.
func testCursors(t *testing.T) *Cursors {
	return &Cursors{Dir: filepath.Join(t.TempDir(), "attach")}
}
