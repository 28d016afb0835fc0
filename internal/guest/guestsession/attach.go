package guestsession

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/creack/pty"
)

// maxChunk bounds the Data of one Chunk.
const maxChunk = 64 << 10

// Attach joins a session: the Attachment replays its output from offset
// since — since < 0 means from the oldest byte still buffered — and then
// follows live output, and it writes to the session's stdin. since may be
// at most Info.OutputBytes. The attachment lasts until Detach or until ctx
// ends; either leaves the session running and its stdin open.
func (m *Manager) Attach(ctx context.Context, idOrName string, since int64) (*Attachment, error) {
	s, err := m.lookup(idOrName)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.refresh()
	s.mu.Lock()
	next, id := s.out.next, s.info.ID
	if since > next {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: offset %d is past the end of session %s output (%d bytes so far): attach from -1 (the oldest buffered byte) or an offset up to %d",
			ErrBadOffset, since, id, next, next)
	}
	if since < 0 {
		since = s.out.oldest()
	}
	s.attachCount++
	s.mu.Unlock()
	s.persist()

	a := &Attachment{s: s, detached: make(chan struct{})}
	a.cursor.Store(since)
	stop := context.AfterFunc(ctx, func() { a.Detach() })
	a.lifeMu.Lock()
	a.stopCtx = stop
	a.lifeMu.Unlock()
	return a, nil
}

// Attachment is one client joined to a session. Next is meant for one
// reading goroutine; Stdin, Resize and Detach may be called from others.
type Attachment struct {
	s        *session
	readMu   sync.Mutex // serializes Next
	cursor   atomic.Int64
	detached chan struct{}

	lifeMu  sync.Mutex
	done    bool
	stopCtx func() bool
}

// ID is the session's id.
func (a *Attachment) ID() string { return a.s.snapshot().ID }

// Offset is the offset of the next byte Next will deliver: attach again
// with it as since to resume where this attachment stopped.
func (a *Attachment) Offset() int64 { return a.cursor.Load() }

// Next returns the next piece of output: first what is buffered from the
// attachment's offset, then live output as it comes. When output the
// attacher asked for is no longer buffered, it returns a StreamGap chunk
// first. It returns io.EOF once the process exited and everything was
// delivered, ErrOrphaned when the rest of a running orphaned session's
// output was never captured, ErrDetached after Detach, and ctx's error when
// ctx ends first.
func (a *Attachment) Next(ctx context.Context) (Chunk, error) {
	a.readMu.Lock()
	defer a.readMu.Unlock()
	s := a.s
	for {
		select {
		case <-a.detached:
			return Chunk{}, ErrDetached
		default:
		}
		cur := a.cursor.Load()
		s.mu.Lock()
		if oldest := s.out.oldest(); cur < oldest {
			s.mu.Unlock()
			a.cursor.Store(oldest)
			return Chunk{Stream: StreamGap, Offset: cur, Dropped: oldest - cur}, nil
		}
		if seg, ok := s.out.read(cur, maxChunk); ok {
			s.mu.Unlock()
			a.cursor.Store(seg.end())
			return Chunk{Stream: seg.stream, Offset: seg.off, Data: seg.data}, nil
		}
		if s.outDone {
			orphan := s.info.Orphaned && s.info.State == StateRunning
			id := s.info.ID
			s.mu.Unlock()
			if orphan {
				return Chunk{}, fmt.Errorf("%w: session %s: its output after the agent restart was not captured; stop it and start it again", ErrOrphaned, id)
			}
			return Chunk{}, io.EOF
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-a.detached:
			return Chunk{}, ErrDetached
		case <-ctx.Done():
			return Chunk{}, ctx.Err()
		}
	}
}

// Stdin is the session's stdin (its terminal in TTY mode), shared with
// every other attacher. Its Close is CloseStdin: it closes the process's
// stdin for everyone, which detaching never does.
func (a *Attachment) Stdin() io.WriteCloser { return stdinWriter{a} }

type stdinWriter struct{ a *Attachment }

func (w stdinWriter) Write(p []byte) (int, error) {
	if w.a.isDetached() {
		return 0, ErrDetached
	}
	return w.a.s.writeStdin(p)
}

func (w stdinWriter) Close() error { return w.a.CloseStdin() }

// CloseStdin closes a pipe session's stdin, so the process reads EOF. It is
// the only way stdin gets closed while the process runs. A TTY session has
// no stdin of its own to close: write the terminal's EOF character (Ctrl-D,
// 0x04) instead.
func (a *Attachment) CloseStdin() error {
	if a.isDetached() {
		return ErrDetached
	}
	info := a.s.snapshot()
	switch {
	case info.Mode == ModeTTY:
		return fmt.Errorf("%w: session %s is a tty session: its terminal stays open; write Ctrl-D (0x04) to end input, or stop the session", ErrWrongMode, info.ID)
	case info.Orphaned:
		return fmt.Errorf("%w: session %s: its stdin went with the previous agent", ErrOrphaned, info.ID)
	}
	if err := a.s.closeStdin(); err != nil {
		return fmt.Errorf("closing stdin of session %s: %w", info.ID, err)
	}
	return nil
}

// Resize sets a TTY session's terminal size; the process gets SIGWINCH.
func (a *Attachment) Resize(rows, cols uint16) error {
	if a.isDetached() {
		return ErrDetached
	}
	s := a.s
	s.mu.Lock()
	info, master, done := s.info, s.pty, s.outDone
	s.mu.Unlock()
	switch {
	case info.Mode != ModeTTY:
		return fmt.Errorf("%w: session %s is a pipe session: only tty sessions have a terminal to resize (start it with mode tty)", ErrWrongMode, info.ID)
	case info.Orphaned:
		return fmt.Errorf("%w: session %s: its terminal went with the previous agent", ErrOrphaned, info.ID)
	case rows == 0 || cols == 0:
		return fmt.Errorf("terminal size %dx%d: give at least one row and one column", rows, cols)
	case master == nil || done:
		return fmt.Errorf("%w: session %s %s", ErrNotRunning, info.ID, exitSummary(info))
	}
	if err := pty.Setsize(master, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		return fmt.Errorf("resizing the terminal of session %s: %w", info.ID, err)
	}
	return nil
}

// Detach ends the attachment and leaves the session running, its stdin
// open. Calling it again does nothing.
func (a *Attachment) Detach() error {
	a.lifeMu.Lock()
	if a.done {
		a.lifeMu.Unlock()
		return nil
	}
	a.done = true
	close(a.detached)
	stop := a.stopCtx
	a.lifeMu.Unlock()
	if stop != nil {
		stop()
	}
	a.s.mu.Lock()
	a.s.attachCount--
	a.s.mu.Unlock()
	a.s.persist()
	return nil
}

func (a *Attachment) isDetached() bool {
	select {
	case <-a.detached:
		return true
	default:
		return false
	}
}
