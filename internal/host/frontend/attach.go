package frontend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
)

// DefaultDetachKey detaches a terminal attach (Ctrl-]), as telnet does.
const DefaultDetachKey = 0x1d

// AttachOptions say where an attach starts, what the end of stdin does,
// and where the session's streams go.
type AttachOptions struct {
	// Since is where output starts: "resume" (the default: where the last
	// attach of this session through Cursors stopped, else everything
	// buffered), "all" (everything still buffered), "now" (live output
	// only) or a decimal byte offset.
	Since string
	// StdinEOF is what the end of Stdin does: "keep" (the default: stop
	// reading, leave the session's stdin open for other attachers),
	// "close" (close the session's stdin: its process reads EOF) or
	// "detach".
	StdinEOF string
	// Stdin feeds the session's stdin; nil sends nothing. An *os.File is
	// read only when it has input, so a detach leaves no reader behind to
	// swallow the next keystroke meant for the front end.
	Stdin io.Reader
	// Stdout receives stdout (and a TTY session's terminal output),
	// Stderr the session's stderr.
	Stdout, Stderr io.Writer
	// Terminal, when non-nil and the session is a TTY one, is put in raw
	// mode for the attach, the session's window size follows it
	// (SIGWINCH), and DetachKey typed on Stdin detaches.
	Terminal *os.File
	// DetachKey is the byte that detaches in raw mode (0: Ctrl-]).
	DetachKey byte
	// Cursors, when set, is where the attach resumes from and records how
	// far it delivered.
	Cursors *Cursors
	// OnGap is told about output that was asked for but is no longer
	// buffered: dropped bytes from offset on.
	OnGap func(offset, dropped int64)
}

// AttachResult is how an attach ended.
type AttachResult struct {
	// Detached is true when the attach ended and the session did not:
	// ctx was cancelled, the detach key was typed, stdin ended with
	// StdinEOF "detach", or writing the output failed (OutputErr).
	Detached bool
	// Offset is the output offset delivered up to: attach with it as
	// Since to resume.
	Offset int64
	// Session is the session's final state when it ended (Detached
	// false), else its state when the attach began.
	Session api.Session
	// ExitCode is the session's exit code when it ended, 128+N for
	// signal N.
	ExitCode int
	// OutputErr is the error writing to Stdout or Stderr that made the
	// attach detach (the reader of the output went away).
	OutputErr error
}

// OptionError is an AttachOptions value Attach does not accept.
type OptionError struct {
	Option string // the AttachOptions field: Since or StdinEOF
	Value  string
	Want   string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%s %q: want %s", e.Option, e.Value, e.Want)
}

// LostError is an attach stream that broke while the session ran (the
// daemon went away, say). The session keeps running in the guest; attach
// again (with Since "resume") to go on from Offset.
type LostError struct {
	Session string
	Offset  int64
	Err     error
}

func (e *LostError) Error() string {
	return fmt.Sprintf("lost the attach stream of session %s at offset %d: %v; the session keeps running in the guest: attach again to resume",
		e.Session, e.Offset, e.Err)
}

func (e *LostError) Unwrap() error { return e.Err }

// Validate checks Since and StdinEOF as Attach will, so a front end can
// refuse them before it reaches the daemon; the error is an *OptionError.
func (o AttachOptions) Validate() error {
	if _, err := parseStdinEOF(o.StdinEOF); err != nil {
		return err
	}
	_, err := parseSince(o.Since)
	return err
}

// since is a parsed AttachOptions.Since: a mode, or an offset.
type since struct {
	mode   string // resume, all, now or offset
	offset int64
}

func parseSince(s string) (since, error) {
	switch s {
	case "", "resume":
		return since{mode: "resume"}, nil
	case "all", "now":
		return since{mode: s}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return since{}, &OptionError{Option: "Since", Value: s, Want: "resume, all, now or a byte offset (0 or more)"}
	}
	return since{mode: "offset", offset: n}, nil
}

// start is the offset to ask the daemon for (-1: everything buffered),
// given the session's state and the saved cursor.
func (s since) start(target api.Session, saved int64, resumable bool) int64 {
	switch s.mode {
	case "resume":
		// A cursor past the output is stale (the session was replaced
		// under the same id, or the cursor file is damaged): replay all.
		if resumable && saved <= target.OutputBytes {
			return saved
		}
	case "now":
		return target.OutputBytes
	case "offset":
		return s.offset
	}
	return -1
}

func parseStdinEOF(s string) (string, error) {
	switch s {
	case "":
		return "keep", nil
	case "keep", "close", "detach":
		return s, nil
	}
	return "", &OptionError{Option: "StdinEOF", Value: s, Want: "keep, close or detach"}
}

// Attach joins a session's stdio until the session ends or the caller
// detaches, and returns how it ended. Cancelling ctx detaches (the session
// keeps running); so do the detach key in raw mode and, with StdinEOF
// "detach", the end of stdin. A session that ended is a result, not an
// error: ExitCode says how. Errors are a bad option (*OptionError), a
// refusal from the daemon (*api.Error), or a stream that broke
// (*LostError).
func Attach(ctx context.Context, cl *client.Client, vm, session string, o AttachOptions) (AttachResult, error) {
	eof, err := parseStdinEOF(o.StdinEOF)
	if err != nil {
		return AttachResult{}, err
	}
	from, err := parseSince(o.Since)
	if err != nil {
		return AttachResult{}, err
	}
	if o.DetachKey == 0 {
		o.DetachKey = DefaultDetachKey
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	target, err := cl.Session(ctx, vm, session)
	if err != nil {
		return AttachResult{}, err
	}
	var cur *cursorFile
	saved, resumable := int64(0), false
	if o.Cursors != nil {
		// A cursor that cannot be opened costs only the resume point.
		if cur, err = o.Cursors.open(vm, target.ID); err == nil {
			defer cur.close()
			saved, resumable = cur.load()
		}
	}
	start := from.start(target, saved, resumable)
	a, ses, err := cl.Attach(ctx, vm, target.ID, client.AttachOptions{Since: start})
	if err != nil {
		return AttachResult{Session: target}, err
	}
	defer a.Close()
	if ses.ID == "" {
		ses = target
	}

	at := &attachment{a: a, detached: make(chan struct{})}
	stop := context.AfterFunc(ctx, at.detach)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer at.detach() // ends the helpers below before wg.Wait

	raw := false
	if ses.TTY && o.Terminal != nil && term.IsTerminal(int(o.Terminal.Fd())) {
		restore, err := rawMode(o.Terminal)
		if err != nil {
			return AttachResult{Session: ses}, err
		}
		defer restore()
		raw = true
		// The size goes out before any input does: the first line typed
		// must find the session's terminal at the window's size.
		winch := followWindow(o.Terminal, a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			winch(at.detached)
		}()
	}
	if o.Stdin != nil {
		in, err := newStdinReader(o.Stdin, at.detached)
		if err != nil {
			return AttachResult{Session: ses}, err
		}
		// A file's reader is interrupted and waited for; another
		// io.Reader cannot be interrupted, so its reader may stay
		// blocked in Read after we return (until it yields, then it
		// sees the attach ended).
		if in.interruptible {
			wg.Add(1)
		}
		go func() {
			if in.interruptible {
				defer wg.Done()
			}
			defer in.close()
			at.pumpStdin(in, raw, o.DetachKey, eof)
		}()
	}

	offset := start
	if offset < 0 {
		offset = ses.BufferedFrom
	}
	for {
		ch, err := a.Next()
		if err != nil {
			if at.isDetached() {
				return AttachResult{Detached: true, Offset: offset, Session: ses, OutputErr: at.outErr}, nil
			}
			if errors.Is(err, io.EOF) {
				final, ferr := a.Final()
				if ferr != nil || final.ID == "" {
					final = ses
				}
				return AttachResult{Offset: offset, Session: final, ExitCode: ExitCode(final)}, nil
			}
			return AttachResult{Offset: offset, Session: ses}, &LostError{Session: session, Offset: offset, Err: err}
		}
		switch ch.Stream {
		case "gap":
			if o.OnGap != nil {
				o.OnGap(ch.Offset, ch.Dropped)
			}
			offset = ch.Offset + ch.Dropped
		case "stderr":
			err = writeAll(o.Stderr, ch.Data)
			offset = ch.Offset + int64(len(ch.Data))
		default: // stdout, tty
			err = writeAll(o.Stdout, ch.Data)
			offset = ch.Offset + int64(len(ch.Data))
		}
		if err != nil {
			// Whoever read our output is gone: nobody to deliver to.
			// The offset stays where the delivered output ended.
			at.outErr = err
			at.detach()
			return AttachResult{Detached: true, Offset: ch.Offset, Session: ses, OutputErr: err}, nil
		}
		cur.set(offset)
	}
}

func writeAll(w io.Writer, p []byte) error {
	_, err := w.Write(p)
	return err
}

// ExitCode is the exit code that reports how a session ended: its own,
// 128+N for signal N, 1 when it is gone with no status.
func ExitCode(s api.Session) int {
	if s.Signal != "" {
		if n := unix.SignalNum(s.Signal); n > 0 {
			return 128 + int(n)
		}
		if n := unix.SignalNum("SIG" + s.Signal); n > 0 {
			return 128 + int(n)
		}
		return 128
	}
	code := 0
	switch {
	case s.ExitCode != nil:
		code = *s.ExitCode
	case s.State != api.SessionExited:
		code = 1
	}
	if code < 0 || code > 255 {
		return 255
	}
	return code
}

// attachment is the shared state of one Attach: the stream and whether
// the caller detached.
type attachment struct {
	a        *client.Attachment
	once     sync.Once
	detached chan struct{}
	outErr   error
}

func (at *attachment) detach() {
	at.once.Do(func() {
		close(at.detached)
		at.a.Close()
	})
}

func (at *attachment) isDetached() bool {
	select {
	case <-at.detached:
		return true
	default:
		return false
	}
}

// pumpStdin copies stdin to the session until stdin ends, the detach key
// comes (raw mode) or the attach ends.
func (at *attachment) pumpStdin(in io.Reader, raw bool, key byte, eof string) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			p := buf[:n]
			if raw {
				if i := bytes.IndexByte(p, key); i >= 0 {
					if i > 0 {
						at.a.Write(p[:i])
					}
					at.detach()
					return
				}
			}
			if _, werr := at.a.Write(p); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, errInterrupted) || at.isDetached() {
				return
			}
			switch eof {
			case "close":
				at.a.CloseStdin()
			case "detach":
				at.detach()
			}
			return
		}
	}
}

// rawMode puts the terminal in raw mode; restore undoes it.
func rawMode(t *os.File) (func(), error) {
	state, err := term.MakeRaw(int(t.Fd()))
	if err != nil {
		return nil, fmt.Errorf("putting the terminal in raw mode: %w", err)
	}
	return func() { term.Restore(int(t.Fd()), state) }, nil
}

// followWindow sends the terminal's size now, and returns the loop that
// sends it again after every SIGWINCH until done is closed.
func followWindow(t *os.File, a *client.Attachment) func(done <-chan struct{}) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	send := func() {
		if w, h, err := term.GetSize(int(t.Fd())); err == nil {
			a.Resize(uint16(h), uint16(w))
		}
	}
	send()
	return func(done <-chan struct{}) {
		defer signal.Stop(sig)
		for {
			select {
			case <-sig:
				send()
			case <-done:
				return
			}
		}
	}
}

// errInterrupted ends a stdin read because the attach ended.
var errInterrupted = errors.New("frontend: stdin reading interrupted")

// stdinReader reads stdin for an attach. For an *os.File it waits with
// poll(2) for input or for the attach to end, so it never holds a read
// pending after Attach returned.
type stdinReader struct {
	r             io.Reader
	fd            int
	wakeR         *os.File
	interruptible bool
}

func newStdinReader(r io.Reader, done <-chan struct{}) (*stdinReader, error) {
	f, ok := r.(*os.File)
	if !ok {
		return &stdinReader{r: r, fd: -1}, nil
	}
	wr, ww, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("making the stdin wake-up pipe: %w", err)
	}
	s := &stdinReader{r: f, fd: int(f.Fd()), wakeR: wr, interruptible: true}
	go func() {
		<-done
		ww.Write([]byte{0})
		ww.Close()
	}()
	return s, nil
}

func (s *stdinReader) Read(p []byte) (int, error) {
	if s.fd < 0 {
		return s.r.Read(p)
	}
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(s.wakeR.Fd()), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("waiting for stdin: %w", err)
		}
		if fds[1].Revents != 0 {
			return 0, errInterrupted
		}
		if fds[0].Revents != 0 {
			return s.r.Read(p)
		}
	}
}

func (s *stdinReader) close() {
	if s.wakeR != nil {
		s.wakeR.Close()
	}
}
