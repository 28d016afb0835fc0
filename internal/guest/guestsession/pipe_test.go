package guestsession

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A pipe session answers each line written to its stdin, one request at a
// time, and ends when an attacher closes stdin.
func TestPipeRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		lines   []string
		replies []string
	}{
		{
			name:    "line echo",
			argv:    []string{"cat"},
			lines:   []string{"hello", "world"},
			replies: []string{"hello", "world"},
		},
		{
			name:    "json line protocol",
			argv:    []string{"sh", "-c", `while read l; do echo "{\"got\":\"$l\"}"; done`},
			lines:   []string{"ping", "pong"},
			replies: []string{`{"got":"ping"}`, `{"got":"pong"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, "")
			info := start(t, m, Spec{Argv: tt.argv})
			a := attach(t, m, info.ID, -1)
			var got []Chunk
			for i, line := range tt.lines {
				write(t, a, line+"\n")
				more, _ := readUntil(t, a, func(cs []Chunk) bool {
					return strings.Count(text(append(got, cs...)), "\n") > i
				})
				got = append(got, more...)
			}
			if err := a.CloseStdin(); err != nil {
				t.Fatal(err)
			}
			got = append(got, readAll(t, a)...)

			if diff := cmp.Diff(strings.Join(tt.replies, "\n")+"\n", text(got, StreamStdout)); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if strings.HasPrefix(tt.replies[0], "{") {
				for _, line := range strings.Split(strings.TrimSpace(text(got)), "\n") {
					var v map[string]string
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Errorf("reply %q is not JSON: %v", line, err)
					}
				}
			}
			end := waitExit(t, m, info.ID)
			if diff := cmp.Diff(Info{State: StateExited, ExitCode: intp(0), OutputBytes: int64(len(text(got)))},
				Info{State: end.State, ExitCode: end.ExitCode, OutputBytes: end.OutputBytes}); diff != "" {
				t.Errorf("after exit (-want +got):\n%s", diff)
			}
		})
	}
}

// stdout and stderr share one offset space, each chunk tagged with its
// stream.
func TestStderrIsTagged(t *testing.T) {
	m := newManager(t, "")
	info := start(t, m, Spec{Argv: []string{"sh", "-c", "echo out; echo err >&2; echo out2"}})
	chunks := drain(t, m, info.ID)

	got := map[Stream]string{
		StreamStdout: text(chunks, StreamStdout),
		StreamStderr: text(chunks, StreamStderr),
	}
	want := map[Stream]string{StreamStdout: "out\nout2\n", StreamStderr: "err\n"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("streams (-want +got):\n%s", diff)
	}
	var next int64
	for _, c := range chunks {
		if c.Offset != next {
			t.Errorf("chunk %+v at offset %d, want %d: offsets must be contiguous", c, c.Offset, next)
		}
		next = c.Offset + int64(len(c.Data))
	}
	if end, _ := m.Get(info.ID); end.OutputBytes != next {
		t.Errorf("OutputBytes = %d, want %d", end.OutputBytes, next)
	}
}

// Attach replays what is buffered from the offset asked for.
func TestReplaySince(t *testing.T) {
	m := newManager(t, "")
	info := start(t, m, Spec{Argv: []string{"printf", "abcdefghij"}})
	drain(t, m, info.ID)

	tests := []struct {
		name    string
		since   int64
		want    []Chunk
		wantErr error
	}{
		{name: "oldest", since: -1, want: []Chunk{{Stream: StreamStdout, Offset: 0, Data: []byte("abcdefghij")}}},
		{name: "zero", since: 0, want: []Chunk{{Stream: StreamStdout, Offset: 0, Data: []byte("abcdefghij")}}},
		{name: "middle", since: 4, want: []Chunk{{Stream: StreamStdout, Offset: 4, Data: []byte("efghij")}}},
		{name: "end", since: 10},
		{name: "past the end", since: 11, wantErr: ErrBadOffset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := m.Attach(context.Background(), info.ID, tt.since)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Attach(since=%d) error = %v, want %v", tt.since, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer a.Detach()
			if diff := cmp.Diff(tt.want, merged(readAll(t, a))); diff != "" {
				t.Errorf("replay (-want +got):\n%s", diff)
			}
		})
	}
}

// When the ring overflowed, an attacher asking for lost bytes learns how
// many it missed.
func TestGapWhenRingOverflowed(t *testing.T) {
	const out = "0123456789abcdefghijklmnopqrstuvwxyzABCD" // 40 bytes
	m := newManager(t, "", WithRingSize(16))
	info := start(t, m, Spec{Argv: []string{"printf", out}})
	drain(t, m, info.ID)

	tests := []struct {
		name  string
		since int64
		want  []Chunk
	}{
		{name: "from zero", since: 0, want: []Chunk{
			{Stream: StreamGap, Offset: 0, Dropped: 24},
			{Stream: StreamStdout, Offset: 24, Data: []byte(out[24:])},
		}},
		{name: "from inside the lost part", since: 10, want: []Chunk{
			{Stream: StreamGap, Offset: 10, Dropped: 14},
			{Stream: StreamStdout, Offset: 24, Data: []byte(out[24:])},
		}},
		{name: "from the oldest", since: -1, want: []Chunk{
			{Stream: StreamStdout, Offset: 24, Data: []byte(out[24:])},
		}},
		{name: "from a buffered offset", since: 30, want: []Chunk{
			{Stream: StreamStdout, Offset: 30, Data: []byte(out[30:])},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := attach(t, m, info.ID, tt.since)
			if diff := cmp.Diff(tt.want, merged(readAll(t, a))); diff != "" {
				t.Errorf("replay (-want +got):\n%s", diff)
			}
		})
	}
	got, _ := m.Get(info.ID)
	if diff := cmp.Diff([2]int64{24, 40}, [2]int64{got.BufferedFrom, got.OutputBytes}); diff != "" {
		t.Errorf("[BufferedFrom, OutputBytes] (-want +got):\n%s", diff)
	}
}

// An attacher that does not read never holds the process up; when it falls
// behind the ring it gets a gap.
func TestSlowAttacherGetsAGap(t *testing.T) {
	m := newManager(t, "", WithRingSize(16))
	info := start(t, m, Spec{Argv: []string{"cat"}})
	slow := attach(t, m, info.ID, 0)
	fast := attach(t, m, info.ID, 0)

	input := strings.Repeat("x", 39) + "\n"
	write(t, fast, input)
	readUntil(t, fast, func([]Chunk) bool { return fast.Offset() == 40 })

	want := []Chunk{
		{Stream: StreamGap, Offset: 0, Dropped: 24},
		{Stream: StreamStdout, Offset: 24, Data: []byte(input[24:])},
	}
	got, _ := readUntil(t, slow, func([]Chunk) bool { return slow.Offset() == 40 })
	if diff := cmp.Diff(want, merged(got)); diff != "" {
		t.Errorf("slow attacher (-want +got):\n%s", diff)
	}
}

// Two attachers at once each get the whole stream.
func TestTwoAttachersGetTheSameBytes(t *testing.T) {
	m := newManager(t, "")
	info := start(t, m, Spec{Argv: []string{"cat"}})
	a := attach(t, m, info.ID, -1)
	b := attach(t, m, info.ID, -1)
	if got, _ := m.Get(info.ID); got.AttachCount != 2 {
		t.Errorf("AttachCount = %d, want 2", got.AttachCount)
	}

	write(t, a, "from a\n")
	write(t, b, "from b\n")
	if err := b.CloseStdin(); err != nil {
		t.Fatal(err)
	}

	want := []Chunk{{Stream: StreamStdout, Offset: 0, Data: []byte("from a\nfrom b\n")}}
	for name, at := range map[string]*Attachment{"a": a, "b": b} {
		if diff := cmp.Diff(want, merged(readAll(t, at))); diff != "" {
			t.Errorf("attacher %s (-want +got):\n%s", name, diff)
		}
	}
}

// Detaching leaves the session running; a later attach replays what was
// produced meanwhile and goes on.
func TestDetachAndResume(t *testing.T) {
	m := newManager(t, "")
	info := start(t, m, Spec{Argv: []string{"cat"}})

	first := attach(t, m, info.ID, -1)
	write(t, first, "one\n")
	readUntil(t, first, contains("one\n"))
	resumeAt := first.Offset()
	if err := first.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Next(context.Background()); !errors.Is(err, ErrDetached) {
		t.Errorf("Next after Detach: %v, want ErrDetached", err)
	}
	if _, err := first.Stdin().Write([]byte("x")); !errors.Is(err, ErrDetached) {
		t.Errorf("Stdin().Write after Detach: %v, want ErrDetached", err)
	}

	// Output produced while nobody reads.
	writer := attach(t, m, info.ID, -1)
	write(t, writer, "two\n")
	writer.Detach()
	eventually(t, "cat echoes two", func() bool {
		got, _ := m.Get(info.ID)
		return got.OutputBytes == 8
	})
	got, _ := m.Get(info.ID)
	if diff := cmp.Diff([2]any{StateRunning, 0}, [2]any{got.State, got.AttachCount}); diff != "" {
		t.Errorf("[State, AttachCount] while detached (-want +got):\n%s", diff)
	}

	again := attach(t, m, info.ID, resumeAt)
	chunks, _ := readUntil(t, again, contains("two\n"))
	want := []Chunk{{Stream: StreamStdout, Offset: 4, Data: []byte("two\n")}}
	if diff := cmp.Diff(want, merged(chunks)); diff != "" {
		t.Errorf("resumed attach (-want +got):\n%s", diff)
	}
}

// Only an explicit CloseStdin ends the process's input: detaching, by
// Detach or by the attach context ending, does not.
func TestStdinClosesOnlyExplicitly(t *testing.T) {
	m := newManager(t, "")
	info := start(t, m, Spec{Argv: []string{"cat"}})

	gone := attach(t, m, info.ID, -1)
	gone.Detach()
	ctx, cancel := context.WithCancel(context.Background())
	byCtx, err := m.Attach(ctx, info.ID, -1)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := byCtx.Next(context.Background()); !errors.Is(err, ErrDetached) {
		t.Errorf("Next after the attach context ended: %v, want ErrDetached", err)
	}
	eventually(t, "AttachCount back to 0", func() bool {
		got, _ := m.Get(info.ID)
		return got.AttachCount == 0
	})

	a := attach(t, m, info.ID, -1)
	write(t, a, "still open\n")
	readUntil(t, a, contains("still open\n"))
	if got, _ := m.Get(info.ID); got.State != StateRunning {
		t.Fatalf("State = %q after detaches, want running", got.State)
	}

	if err := a.Stdin().Close(); err != nil {
		t.Fatal(err)
	}
	if rest := readAll(t, a); len(rest) != 0 {
		t.Errorf("after close, got %q, want nothing more", text(rest))
	}
	if _, err := a.Next(context.Background()); err == nil || err.Error() != "EOF" {
		t.Errorf("Next after the end: %v, want io.EOF again", err)
	}
	if _, err := a.Stdin().Write([]byte("late\n")); err == nil {
		t.Errorf("writing after close succeeded, want an error")
	}
	end := waitExit(t, m, info.ID)
	if diff := cmp.Diff(Info{State: StateExited, ExitCode: intp(0)}, Info{State: end.State, ExitCode: end.ExitCode}); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
}
