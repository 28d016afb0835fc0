package guestsession

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testPATH is the PATH sessions get in tests.
const testPATH = "/usr/local/bin:/usr/bin:/bin"

// patience bounds how long a test waits for something that should happen
// promptly; it is a deadlock guard, not an assertion about speed.
const patience = 30 * time.Second

// newManager makes a Manager on dir (a fresh one when dir is "") that
// starts sessions in "/" with a fixed PATH and no early-exit window, and
// kills whatever is still running when the test ends.
func newManager(t *testing.T, dir string, opts ...Option) *Manager {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	base := []Option{
		WithDefaultCwd("/"),
		WithBaseEnv([]string{"PATH=" + testPATH, "HOME=/"}),
		WithEarlyExitWindow(0),
		WithPollInterval(10 * time.Millisecond),
	}
	m, err := NewManager(dir, nil, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, m) })
	return m
}

// shutdown kills every running session and waits until each has exited
// and its output is closed, so no process outlives the test.
func shutdown(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for _, info := range m.List() {
		if info.PID == os.Getpid() {
			continue
		}
		s, err := m.lookup(info.ID)
		if err != nil {
			continue
		}
		if info.State == StateRunning || !s.drainedNow() {
			if err := m.Signal(info.ID, syscall.SIGKILL); err != nil && !errors.Is(err, ErrNotRunning) {
				t.Errorf("cleanup: killing session %s: %v", info.ID, err)
			}
		}
		if _, err := m.Wait(ctx, info.ID); err != nil {
			t.Errorf("cleanup: waiting for session %s: %v", info.ID, err)
			continue
		}
		select {
		case <-s.drained:
		case <-ctx.Done():
			t.Errorf("cleanup: output of session %s never closed", info.ID)
		}
	}
}

func (s *session) drainedNow() bool {
	select {
	case <-s.drained:
		return true
	default:
		return false
	}
}

func start(t *testing.T, m *Manager, spec Spec) Info {
	t.Helper()
	info, err := m.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start(%q): %v", spec.Argv, err)
	}
	return info
}

func attach(t *testing.T, m *Manager, id string, since int64) *Attachment {
	t.Helper()
	a, err := m.Attach(context.Background(), id, since)
	if err != nil {
		t.Fatalf("Attach(%s, %d): %v", id, since, err)
	}
	t.Cleanup(func() { a.Detach() })
	return a
}

func write(t *testing.T, a *Attachment, s string) {
	t.Helper()
	if _, err := io.WriteString(a.Stdin(), s); err != nil {
		t.Fatalf("writing %q to stdin: %v", s, err)
	}
}

// readUntil reads chunks until done says so or the output ends (io.EOF);
// it returns the chunks and whether the output ended.
func readUntil(t *testing.T, a *Attachment, done func([]Chunk) bool) ([]Chunk, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var chunks []Chunk
	for done == nil || !done(chunks) {
		c, err := a.Next(ctx)
		if err == io.EOF {
			return chunks, true
		}
		if err != nil {
			t.Fatalf("Next after %q: %v", text(chunks), err)
		}
		chunks = append(chunks, c)
	}
	return chunks, false
}

// readAll reads to io.EOF.
func readAll(t *testing.T, a *Attachment) []Chunk {
	t.Helper()
	chunks, _ := readUntil(t, a, nil)
	return chunks
}

// contains is a readUntil condition: the text so far holds want.
func contains(want string, streams ...Stream) func([]Chunk) bool {
	return func(cs []Chunk) bool { return strings.Contains(text(cs, streams...), want) }
}

// text joins the data of the chunks of the given streams (all but gaps
// when none are given).
func text(chunks []Chunk, streams ...Stream) string {
	var b strings.Builder
	for _, c := range chunks {
		if c.Stream == StreamGap {
			continue
		}
		if len(streams) == 0 || containsStream(streams, c.Stream) {
			b.Write(c.Data)
		}
	}
	return b.String()
}

func containsStream(ss []Stream, s Stream) bool {
	for _, v := range ss {
		if v == s {
			return true
		}
	}
	return false
}

// merged joins consecutive contiguous chunks of one stream, so a
// transcript does not depend on how reads happened to split the output.
func merged(chunks []Chunk) []Chunk {
	var out []Chunk
	for _, c := range chunks {
		if n := len(out); n > 0 && c.Stream != StreamGap && out[n-1].Stream == c.Stream &&
			out[n-1].Offset+int64(len(out[n-1].Data)) == c.Offset {
			out[n-1].Data = append(out[n-1].Data, c.Data...)
			continue
		}
		c.Data = append([]byte(nil), c.Data...)
		out = append(out, c)
	}
	return out
}

// drain reads a session's whole output once, so its process has exited
// and every byte is captured.
func drain(t *testing.T, m *Manager, id string) []Chunk {
	t.Helper()
	a := attach(t, m, id, -1)
	defer a.Detach()
	return readAll(t, a)
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitExit(t *testing.T, m *Manager, id string) Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	info, err := m.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait(%s): %v", id, err)
	}
	return info
}

func intp(n int) *int { return &n }
