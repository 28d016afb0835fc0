package agentmux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// attachHandler serves attach streams with a scripted attachment and
// records the requests.
type attachHandler struct {
	fakeHandler
	att       *fakeAttachment
	attachErr error

	amu  sync.Mutex
	reqs []AttachRequest
}

// sessionInfo is the attach result the fakes use.
type sessionInfo struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Code  int    `json:"code,omitempty"`
}

func (h *attachHandler) Attach(ctx context.Context, req AttachRequest) (Attachment, any, error) {
	h.amu.Lock()
	h.reqs = append(h.reqs, req)
	h.amu.Unlock()
	if h.attachErr != nil {
		return nil, nil, h.attachErr
	}
	return h.att, sessionInfo{ID: req.Session, State: "running"}, nil
}

// fakeAttachment yields the chunks a test feeds it and records, in order,
// what the host made happen on events.
type fakeAttachment struct {
	chunks chan Chunk // closed: the end of output
	endErr error      // Next's error after chunks is closed; nil is io.EOF
	final  any
	events chan string

	mu          sync.Mutex
	stdinClosed bool
}

func newFakeAttachment() *fakeAttachment {
	return &fakeAttachment{chunks: make(chan Chunk), events: make(chan string, 64)}
}

func (f *fakeAttachment) Next(ctx context.Context) (Chunk, error) {
	select {
	case c, ok := <-f.chunks:
		if !ok {
			if f.endErr != nil {
				return Chunk{}, f.endErr
			}
			return Chunk{}, io.EOF
		}
		return c, nil
	case <-ctx.Done():
		return Chunk{}, ctx.Err()
	}
}

func (f *fakeAttachment) Write(p []byte) (int, error) {
	f.mu.Lock()
	closed := f.stdinClosed
	f.mu.Unlock()
	if closed {
		f.events <- "stdin refused"
		return 0, errors.New("stdin of session web is closed")
	}
	f.events <- "stdin " + string(p)
	return len(p), nil
}

func (f *fakeAttachment) CloseStdin() error {
	f.mu.Lock()
	f.stdinClosed = true
	f.mu.Unlock()
	f.events <- "close stdin"
	return nil
}

func (f *fakeAttachment) Resize(rows, cols uint16) error {
	f.events <- fmt.Sprintf("resize %dx%d", rows, cols)
	return nil
}

func (f *fakeAttachment) Detach() error {
	f.events <- "detach"
	return nil
}

func (f *fakeAttachment) Final() any {
	f.events <- "final"
	return f.final
}

// expectEvent waits for the attachment's next event and checks it.
func expectEvent(t *testing.T, f *fakeAttachment, want string) {
	t.Helper()
	select {
	case got := <-f.events:
		if got != want {
			t.Fatalf("attachment event %q, want %q", got, want)
		}
	case <-testContext(t).Done():
		t.Fatalf("no attachment event, want %q", want)
	}
}

// noMoreEvents checks that nothing else happened to the attachment.
func noMoreEvents(t *testing.T, f *fakeAttachment) {
	t.Helper()
	select {
	case got := <-f.events:
		t.Errorf("unexpected attachment event %q", got)
	default:
	}
}

type nextResult struct {
	chunks []Chunk
	err    error
}

// collect calls Next until it fails.
func collect(a *Attached) <-chan nextResult {
	done := make(chan nextResult, 1)
	go func() {
		var r nextResult
		for {
			c, err := a.Next()
			if err != nil {
				r.err = err
				done <- r
				return
			}
			r.chunks = append(r.chunks, c)
		}
	}()
	return done
}

// wait returns what collect found, failing a test that hangs.
func wait(t *testing.T, done <-chan nextResult) nextResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-testContext(t).Done():
		t.Fatal("Next did not return")
		return nextResult{}
	}
}

// chunkMeta is a chunk without its bytes, for readable diffs.
type chunkMeta struct {
	Stream          string
	Offset, Dropped int64
	Len             int
}

func metas(cs []Chunk) []chunkMeta {
	var m []chunkMeta
	for _, c := range cs {
		m = append(m, chunkMeta{c.Stream, c.Offset, c.Dropped, len(c.Data)})
	}
	return m
}

// TestAttach replays output with offsets, forwards the host's stdin,
// stdin end and resizes, reports stdin failures, and ends with Final.
func TestAttach(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			f := newFakeAttachment()
			f.final = sessionInfo{ID: "web", State: "exited", Code: 3}
			h := &attachHandler{att: f}
			s := newSession(t, tr, h)
			ctx := testContext(t)

			req := AttachRequest{Session: "web", Since: -1, Follow: true}
			var info sessionInfo
			a, err := s.Attach(ctx, req, &info)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if diff := cmp.Diff(sessionInfo{ID: "web", State: "running"}, info); diff != "" {
				t.Errorf("attach result (-want +got):\n%s", diff)
			}
			h.amu.Lock()
			reqs := h.reqs
			h.amu.Unlock()
			if diff := cmp.Diff([]AttachRequest{req}, reqs); diff != "" {
				t.Errorf("attach requests (-want +got):\n%s", diff)
			}
			done := collect(a)

			big := bytes.Repeat([]byte("0123456789abcdef"), (MaxFramePayload+1000)/16)
			for _, c := range []Chunk{
				{Stream: StreamStdout, Offset: 0, Data: []byte("hello")},
				{Stream: StreamGap, Offset: 5, Dropped: 100},
				{Stream: StreamStderr, Offset: 105, Data: []byte("oops")},
				{Stream: StreamTTY, Offset: 109, Data: big},
			} {
				f.chunks <- c
			}

			if _, err := a.Write([]byte("ls\n")); err != nil {
				t.Fatal(err)
			}
			expectEvent(t, f, "stdin ls\n")
			if err := a.Resize(WindowSize{Rows: 40, Cols: 120}); err != nil {
				t.Fatal(err)
			}
			expectEvent(t, f, "resize 40x120")
			if err := a.CloseStdin(); err != nil {
				t.Fatal(err)
			}
			expectEvent(t, f, "close stdin")

			// Stdin the session refuses comes back once per distinct failure.
			a.Write([]byte("late"))
			expectEvent(t, f, "stdin refused")
			select {
			case msg := <-a.StdinErrors():
				if msg != "stdin of session web is closed" {
					t.Errorf("stdin error %q", msg)
				}
			case <-ctx.Done():
				t.Fatal("no stdin error arrived")
			}
			a.Write([]byte("later"))
			expectEvent(t, f, "stdin refused")
			// The guest handles frames in order: once the resize is
			// through, any report of the refusal before it has been sent.
			a.Resize(WindowSize{Rows: 1, Cols: 2})
			expectEvent(t, f, "resize 1x2")

			close(f.chunks)
			r := wait(t, done)
			if r.err != io.EOF {
				t.Fatalf("Next = %v, want io.EOF", r.err)
			}
			expectEvent(t, f, "final")
			noMoreEvents(t, f)
			for msg := range a.StdinErrors() {
				t.Errorf("stdin error reported again: %q", msg)
			}

			split := MaxFramePayload - 9 // a frame holds a 9-byte header and data
			want := []chunkMeta{
				{StreamStdout, 0, 0, 5},
				{StreamGap, 5, 100, 0},
				{StreamStderr, 105, 0, 4},
				{StreamTTY, 109, 0, split},
				{StreamTTY, 109 + int64(split), 0, len(big) - split},
			}
			if diff := cmp.Diff(want, metas(r.chunks)); diff != "" {
				t.Fatalf("chunks (-want +got):\n%s", diff)
			}
			if string(r.chunks[0].Data) != "hello" || string(r.chunks[2].Data) != "oops" {
				t.Errorf("stdout %q, stderr %q", r.chunks[0].Data, r.chunks[2].Data)
			}
			if tty := append(bytes.Clone(r.chunks[3].Data), r.chunks[4].Data...); !bytes.Equal(tty, big) {
				t.Error("the split terminal chunk does not join to the original")
			}

			var final sessionInfo
			if err := a.Final(&final); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(f.final, final); diff != "" {
				t.Errorf("final (-want +got):\n%s", diff)
			}
			if _, err := a.Write([]byte("after the end")); err == nil {
				t.Error("Write after the end succeeded")
			}
		})
	}
}

func TestAttachEnd(t *testing.T) {
	tests := []struct {
		name      string
		endErr    error
		wantErr   *Error // nil: io.EOF
		wantEvent string
	}{
		{
			name:      "the session ended",
			wantEvent: "final",
		},
		{
			name:      "a handler's *Error keeps its code",
			endErr:    &Error{Code: "session_lost", Message: "session web's output was lost: restart it"},
			wantErr:   &Error{Code: "session_lost", Message: "session web's output was lost: restart it"},
			wantEvent: "detach",
		},
		{
			name:      "other errors are internal",
			endErr:    errors.New("ring corrupted"),
			wantErr:   &Error{Code: CodeInternal, Message: "reading session web's output: ring corrupted"},
			wantEvent: "detach",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAttachment()
			f.endErr = tt.endErr
			s := newSession(t, transports[1], &attachHandler{att: f})
			a, err := s.Attach(testContext(t), AttachRequest{Session: "web"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			done := collect(a)
			f.chunks <- Chunk{Stream: StreamStdout, Offset: 7, Data: []byte("x")}
			close(f.chunks)
			r := wait(t, done)
			if diff := cmp.Diff([]chunkMeta{{StreamStdout, 7, 0, 1}}, metas(r.chunks)); diff != "" {
				t.Errorf("chunks (-want +got):\n%s", diff)
			}
			if tt.wantErr == nil {
				if r.err != io.EOF {
					t.Errorf("Next = %v, want io.EOF", r.err)
				}
			} else {
				var e *Error
				if !errors.As(r.err, &e) {
					t.Fatalf("Next = %v, want an *Error", r.err)
				}
				if diff := cmp.Diff(tt.wantErr, e); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				if a.Final(nil) == nil {
					t.Error("Final after a failed attachment returned no error")
				}
			}
			expectEvent(t, f, tt.wantEvent)
			noMoreEvents(t, f)
		})
	}
}

// TestAttachDetach leaves an attachment while the session goes on: the
// guest detaches, and the session serves further requests.
func TestAttachDetach(t *testing.T) {
	tests := []struct {
		name    string
		leave   func(a *Attached, cancel context.CancelFunc)
		wantErr error // what Next returns
	}{
		{
			name:    "Close",
			leave:   func(a *Attached, _ context.CancelFunc) { a.Close() },
			wantErr: errAttachClosed,
		},
		{
			name:    "the context ends",
			leave:   func(_ *Attached, cancel context.CancelFunc) { cancel() },
			wantErr: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAttachment()
			s := newSession(t, transports[1], &attachHandler{att: f})
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			a, err := s.Attach(ctx, AttachRequest{Session: "web", Follow: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			done := collect(a)
			f.chunks <- Chunk{Stream: StreamTTY, Data: []byte("$ ")}
			tt.leave(a, cancel)
			r := wait(t, done)
			if r.err == nil || r.err == io.EOF {
				t.Errorf("Next = %v after leaving, want an error", r.err)
			}
			if tt.wantErr != nil && !errors.Is(r.err, tt.wantErr) {
				t.Errorf("Next = %v, want %v", r.err, tt.wantErr)
			}
			a.Close()
			expectEvent(t, f, "detach")
			noMoreEvents(t, f)
			if _, err := s.Health(testContext(t)); err != nil {
				t.Errorf("health after detaching: %v", err)
			}
		})
	}
}

func TestAttachRefused(t *testing.T) {
	tests := []struct {
		name    string
		handler Handler
		req     AttachRequest
		want    *Error
	}{
		{
			name:    "a handler without Attacher",
			handler: &fakeHandler{},
			req:     AttachRequest{Session: "web"},
			want:    &Error{Code: CodeUnknownType, Message: "this agent does not serve attach: update banger-agent in the image"},
		},
		{
			name:    "no session",
			handler: &attachHandler{att: newFakeAttachment()},
			want:    &Error{Code: CodeBadRequest, Message: "attach needs a session"},
		},
		{
			name:    "the handler's *Error",
			handler: &attachHandler{attachErr: &Error{Code: "no_such_session", Message: "no session ghost"}},
			req:     AttachRequest{Session: "ghost"},
			want:    &Error{Code: "no_such_session", Message: "no session ghost"},
		},
		{
			name:    "another handler error",
			handler: &attachHandler{attachErr: errors.New("state file unreadable")},
			req:     AttachRequest{Session: "ghost"},
			want:    &Error{Code: CodeInternal, Message: "attaching to session ghost: state file unreadable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, transports[0], tt.handler)
			a, err := s.Attach(testContext(t), tt.req, nil)
			if err == nil {
				a.Close()
				t.Fatal("Attach succeeded")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Attach = %v, want an *Error", err)
			}
			if diff := cmp.Diff(tt.want, e); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
