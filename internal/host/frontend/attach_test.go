package frontend

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/term"

	"github.com/bangerdev/banger/api"
)

// endedSession is a session that printed "hello\n" then "world\n" on
// stdout and "oops\n" on stderr (offsets 0, 6, 12; 17 bytes) and exited.
func endedSession(d *fakeDaemon, code int) *fakeSession {
	s := d.add(api.Session{ID: "ses-1", Name: "echo"})
	s.emit("stdout", "hello\n")
	s.emit("stdout", "world\n")
	s.emit("stderr", "oops\n")
	s.exit(code, "")
	return s
}

// TestAttachReplay: where an attach starts (resume from the cursor, all,
// now, an offset), what it delivers, and the cursor it leaves.
func TestAttachReplay(t *testing.T) {
	tests := []struct {
		name       string
		cursor     int64 // saved before; -1: none
		since      string
		wantSince  int64 // what the daemon was asked for
		wantOut    string
		wantErr    string
		wantOffset int64
	}{
		{"first attach replays everything", -1, "resume", -1, "hello\nworld\n", "oops\n", 17},
		{"resume from the cursor", 6, "resume", 6, "world\n", "oops\n", 17},
		{"empty since is resume", 12, "", 12, "", "oops\n", 17},
		{"a cursor at the end resumes there", 17, "resume", 17, "", "", 17},
		{"a cursor past the output replays everything", 100, "resume", -1, "hello\nworld\n", "oops\n", 17},
		{"all ignores the cursor", 12, "all", -1, "hello\nworld\n", "oops\n", 17},
		{"now starts at the end", -1, "now", 17, "", "", 17},
		{"an offset", 12, "3", 3, "lo\nworld\n", "oops\n", 17},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, cl := startFakeDaemon(t)
			s := endedSession(d, 0)
			cur := testCursors(t)
			if tt.cursor >= 0 {
				if err := cur.Save("demo", "ses-1", tt.cursor); err != nil {
					t.Fatal(err)
				}
			}
			var out, errb strings.Builder
			res, err := Attach(context.Background(), cl, "demo", "echo", AttachOptions{Since: tt.since, Stdout: &out, Stderr: &errb, Cursors: cur})
			if err != nil {
				t.Fatal(err)
			}
			if res.Detached || res.Offset != tt.wantOffset || res.ExitCode != 0 || res.Session.State != api.SessionExited {
				t.Errorf("result %+v, want ended with code 0 at offset %d", res, tt.wantOffset)
			}
			if out.String() != tt.wantOut || errb.String() != tt.wantErr {
				t.Errorf("stdout %q stderr %q, want %q and %q", out.String(), errb.String(), tt.wantOut, tt.wantErr)
			}
			if diff := cmp.Diff([]int64{tt.wantSince}, s.sinces); diff != "" {
				t.Errorf("since asked of the daemon (-want +got):\n%s", diff)
			}
			if got, ok := cur.Load("demo", "ses-1"); tt.since != "now" && (!ok || got != tt.wantOffset) {
				t.Errorf("cursor %d (%v), want %d", got, ok, tt.wantOffset)
			}
		})
	}
}

// TestAttachGap: output the cursor points at that is no longer buffered
// is reported as a gap, and the attach goes on after it.
func TestAttachGap(t *testing.T) {
	d, cl := startFakeDaemon(t)
	endedSession(d, 0).drop(6)
	cur := testCursors(t)
	cur.Save("demo", "ses-1", 2)
	type gap struct{ Offset, Dropped int64 }
	var gaps []gap
	var out strings.Builder
	res, err := Attach(context.Background(), cl, "demo", "ses-1", AttachOptions{Stdout: &out, Cursors: cur,
		OnGap: func(off, dropped int64) { gaps = append(gaps, gap{off, dropped}) }})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]gap{{2, 4}}, gaps); diff != "" {
		t.Errorf("gaps (-want +got):\n%s", diff)
	}
	if out.String() != "world\n" || res.Offset != 17 {
		t.Errorf("stdout %q at offset %d, want %q at 17", out.String(), res.Offset, "world\n")
	}
}

// TestAttachExitCode: an ended session's exit code, 128+N for signal N.
func TestAttachExitCode(t *testing.T) {
	code := func(n int) *int { return &n }
	tests := []struct {
		name string
		s    api.Session
		want int
	}{
		{"success", api.Session{State: api.SessionExited, ExitCode: code(0)}, 0},
		{"failure", api.Session{State: api.SessionExited, ExitCode: code(3)}, 3},
		{"out of range", api.Session{State: api.SessionExited, ExitCode: code(300)}, 255},
		{"killed", api.Session{State: api.SessionExited, Signal: "SIGKILL"}, 137},
		{"terminated, short name", api.Session{State: api.SessionExited, Signal: "TERM"}, 143},
		{"unknown signal", api.Session{State: api.SessionExited, Signal: "SIGWHAT"}, 128},
		{"lost with no status", api.Session{State: api.SessionLost}, 1},
		{"exited with no status", api.Session{State: api.SessionExited}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.s); got != tt.want {
				t.Errorf("ExitCode = %d, want %d", got, tt.want)
			}
		})
	}
	// And through an attach.
	d, cl := startFakeDaemon(t)
	endedSession(d, 7)
	res, err := Attach(context.Background(), cl, "demo", "echo", AttachOptions{})
	if err != nil || res.ExitCode != 7 {
		t.Fatalf("attach to a session that exited 7: %+v, %v", res, err)
	}
}

// TestAttachOptionErrors: bad options are refused before the daemon is
// asked anything, naming the option.
func TestAttachOptionErrors(t *testing.T) {
	tests := []struct {
		o    AttachOptions
		want OptionError
	}{
		{AttachOptions{Since: "yesterday"}, OptionError{Option: "Since", Value: "yesterday", Want: "resume, all, now or a byte offset (0 or more)"}},
		{AttachOptions{Since: "-5"}, OptionError{Option: "Since", Value: "-5", Want: "resume, all, now or a byte offset (0 or more)"}},
		{AttachOptions{StdinEOF: "eat"}, OptionError{Option: "StdinEOF", Value: "eat", Want: "keep, close or detach"}},
	}
	d, cl := startFakeDaemon(t)
	s := endedSession(d, 0)
	for _, tt := range tests {
		for _, check := range []func() error{
			tt.o.Validate,
			func() error { _, err := Attach(context.Background(), cl, "demo", "echo", tt.o); return err },
		} {
			var oe *OptionError
			if err := check(); !errors.As(err, &oe) || *oe != tt.want {
				t.Errorf("%+v: got %v, want %+v", tt.o, err, tt.want)
			}
		}
	}
	if len(s.sinces) != 0 {
		t.Errorf("the daemon was asked to attach: %v", s.sinces)
	}
}

// TestAttachStdinEOF: what the end of stdin does to a running session.
func TestAttachStdinEOF(t *testing.T) {
	t.Run("keep", func(t *testing.T) {
		d, cl := startFakeDaemon(t)
		s := d.add(api.Session{ID: "ses-1"})
		done := make(chan AttachResult)
		go func() {
			res, err := Attach(context.Background(), cl, "demo", "ses-1", AttachOptions{StdinEOF: "keep", Stdin: strings.NewReader("abc")})
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		s.waitFor(t, "stdin abc", func(s *fakeSession) bool { return s.stdin.String() == "abc" })
		// stdin ended; the attach stays and still delivers output.
		s.emit("stdout", "late\n")
		s.exit(0, "")
		res := <-done
		if res.Detached || res.Offset != 5 || s.stdinClosed {
			t.Errorf("result %+v, stdin closed %v: want the session's end at 5, stdin open", res, s.stdinClosed)
		}
	})
	t.Run("close", func(t *testing.T) {
		d, cl := startFakeDaemon(t)
		s := d.add(api.Session{ID: "ses-1"})
		// A filter: it answers what it read once its stdin ends.
		s.onStdinEOF = func(s *fakeSession) {
			s.emitLocked("stdout", strings.ToUpper(s.stdin.String()))
			s.exitLocked(0, "")
		}
		var out strings.Builder
		res, err := Attach(context.Background(), cl, "demo", "ses-1", AttachOptions{StdinEOF: "close", Stdin: strings.NewReader("abc"), Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if res.Detached || out.String() != "ABC" || !s.stdinClosed {
			t.Errorf("result %+v, stdout %q, stdin closed %v: want ABC and the end", res, out.String(), s.stdinClosed)
		}
	})
	t.Run("detach", func(t *testing.T) {
		d, cl := startFakeDaemon(t)
		s := d.add(api.Session{ID: "ses-1"})
		s.emit("stdout", "hi\n")
		var out strings.Builder
		res, err := Attach(context.Background(), cl, "demo", "ses-1", AttachOptions{StdinEOF: "detach", Stdin: strings.NewReader(""), Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Detached || s.snapshot().State != api.SessionRunning || s.stdinClosed {
			t.Errorf("result %+v: want detached, the session running with its stdin open", res)
		}
		s.waitFor(t, "the attacher leaving", func(s *fakeSession) bool { return s.detaches == 1 })
	})
}

// TestAttachDetachByContext: cancelling ctx detaches, leaves the session
// running, and the cursor where output stopped, so the next attach
// resumes there.
func TestAttachDetachByContext(t *testing.T) {
	d, cl := startFakeDaemon(t)
	s := d.add(api.Session{ID: "ses-1", Name: "echo"})
	s.emit("stdout", "one\n")
	cur := testCursors(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := newLineWriter()
	done := make(chan AttachResult)
	go func() {
		res, err := Attach(ctx, cl, "demo", "echo", AttachOptions{Stdout: out, Cursors: cur})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	out.waitContains(t, "one\n")
	cancel()
	res := <-done
	if !res.Detached || res.Offset != 4 {
		t.Fatalf("result %+v, want detached at 4", res)
	}
	s.waitFor(t, "the attacher leaving", func(s *fakeSession) bool { return s.detaches == 1 })
	if got, _ := cur.Load("demo", "ses-1"); got != 4 {
		t.Errorf("cursor %d, want 4", got)
	}
	// Output while detached is what the next attach replays.
	s.emit("stdout", "two\n")
	s.exit(0, "")
	var again strings.Builder
	if res, err := Attach(context.Background(), cl, "demo", "echo", AttachOptions{Stdout: &again, Cursors: cur}); err != nil || res.Offset != 8 {
		t.Fatalf("second attach: %+v, %v", res, err)
	}
	if again.String() != "two\n" {
		t.Errorf("second attach printed %q, want only what came after the detach", again.String())
	}
}

// TestAttachTerminal: a TTY session on a terminal: raw mode for the
// attach (restored after), the window size sent and followed, typed input
// forwarded up to the detach key, which detaches; no reader of the
// terminal is left behind to swallow what is typed next.
func TestAttachTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal on this host: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100})
	before, err := term.GetState(int(tty.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	d, cl := startFakeDaemon(t)
	s := d.add(api.Session{ID: "ses-1", TTY: true})
	done := make(chan AttachResult)
	go func() {
		res, err := Attach(context.Background(), cl, "demo", "ses-1", AttachOptions{Stdin: tty, Stdout: io.Discard, Terminal: tty})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	s.waitFor(t, "the first window size", func(s *fakeSession) bool { return len(s.resizes) == 1 })
	pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120})
	syscall.Kill(os.Getpid(), syscall.SIGWINCH)
	s.waitFor(t, "the new window size", func(s *fakeSession) bool { return len(s.resizes) == 2 })
	ptmx.Write([]byte("ls"))
	s.waitFor(t, "typed input", func(s *fakeSession) bool { return s.stdin.String() == "ls" })
	ptmx.Write([]byte("\x1dnot sent"))
	res := <-done
	if !res.Detached {
		t.Fatalf("result %+v, want detached by the key", res)
	}
	s.mu.Lock()
	stdin, resizes := s.stdin.String(), s.resizes
	s.mu.Unlock()
	if stdin != "ls" {
		t.Errorf("session stdin %q, want what was typed before the detach key", stdin)
	}
	if diff := cmp.Diff([]string{"30x100", "40x120"}, resizes); diff != "" {
		t.Errorf("window sizes (-want +got):\n%s", diff)
	}
	after, _ := term.GetState(int(tty.Fd()))
	if after == nil || *after != *before {
		t.Errorf("terminal state not restored after the attach")
	}
	// Attach again and detach by ctx this time, with no input pending:
	// what is typed next reaches us, not a reader Attach left behind.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		res, err := Attach(ctx, cl, "demo", "ses-1", AttachOptions{Stdin: tty, Stdout: io.Discard, Terminal: tty})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	s.waitFor(t, "the second attach", func(s *fakeSession) bool { return len(s.resizes) == 3 })
	cancel()
	if res := <-done; !res.Detached {
		t.Fatalf("second attach: %+v, want detached", res)
	}
	ptmx.Write([]byte("next\n"))
	got := make(chan string)
	go func() {
		b := make([]byte, 64)
		n, _ := tty.Read(b)
		got <- string(b[:n])
	}()
	select {
	case line := <-got:
		if !strings.Contains(line, "next") {
			t.Errorf("read %q from the terminal after the attach, want the line typed after it", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("what was typed after the attach never reached the terminal's reader: Attach left a reader behind")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stdin.String() != "ls" {
		t.Errorf("session stdin %q after the second attach, want still %q", s.stdin.String(), "ls")
	}
}

// TestAttachSizeBeforeInput: input already typed when the attach begins
// reaches the session after the window size, so the first line it reads
// finds its terminal at the window's size.
func TestAttachSizeBeforeInput(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal on this host: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100})
	ptmx.Write([]byte("stty size\r"))
	d, cl := startFakeDaemon(t)
	s := d.add(api.Session{ID: "ses-1", TTY: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := Attach(ctx, cl, "demo", "ses-1", AttachOptions{Stdin: tty, Stdout: io.Discard, Terminal: tty}); err != nil {
			t.Error(err)
		}
	}()
	s.waitFor(t, "the typed line", func(s *fakeSession) bool { return strings.Contains(s.stdin.String(), "stty size") })
	cancel()
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) < 2 || s.order[0] != "resize" {
		t.Errorf("the session got %v, want the window size before any input", s.order)
	}
}

// TestAttachOutputGone: when the output cannot be written, the attach
// detaches and says why; the session runs on.
func TestAttachOutputGone(t *testing.T) {
	d, cl := startFakeDaemon(t)
	s := d.add(api.Session{ID: "ses-1"})
	s.emit("stdout", "hi\n")
	broken := errors.New("broken pipe")
	res, err := Attach(context.Background(), cl, "demo", "ses-1", AttachOptions{Stdout: failingWriter{broken}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Detached || !errors.Is(res.OutputErr, broken) || res.Offset != 0 {
		t.Errorf("result %+v, want detached at 0 with the write error", res)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// TestAttachLostStream: a stream that breaks while the session runs is a
// *LostError with the offset to resume from.
func TestAttachLostStream(t *testing.T) {
	d, cl := startFakeDaemon(t)
	s := d.add(api.Session{ID: "ses-1", Name: "echo"})
	s.emit("stdout", "abc")
	out := newLineWriter()
	done := make(chan error)
	go func() {
		_, err := Attach(context.Background(), cl, "demo", "echo", AttachOptions{Stdout: out})
		done <- err
	}()
	out.waitContains(t, "abc")
	d.dropAttaches()
	err := <-done
	var lost *LostError
	if !errors.As(err, &lost) || lost.Offset != 3 || lost.Session != "echo" {
		t.Fatalf("got %v, want a LostError for echo at offset 3", err)
	}
}

// TestAttachUnknownSession: the daemon's refusal comes back as its
// *api.Error.
func TestAttachUnknownSession(t *testing.T) {
	_, cl := startFakeDaemon(t)
	_, err := Attach(context.Background(), cl, "demo", "nope", AttachOptions{})
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("got %v, want not found", err)
	}
}
