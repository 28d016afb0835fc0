package guestsession

import (
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func requirePTY(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here (%v): TTY sessions need /dev/ptmx", err)
	}
	f.Close()
}

// A TTY session's shell sees a terminal of the requested size, and a resize
// reaches it.
func TestTTYSession(t *testing.T) {
	requirePTY(t)
	m := newManager(t, "")
	info := start(t, m, Spec{Argv: []string{"sh"}, Mode: ModeTTY, Rows: 30, Cols: 90})
	a := attach(t, m, info.ID, -1)

	// The terminal echoes input, so the markers are computed by the shell
	// and never appear as typed.
	write(t, a, "tty >/dev/null && test -t 0 && test -t 1 && echo tty-ok-$((1+1)); stty size\n")
	chunks, _ := readUntil(t, a, func(cs []Chunk) bool {
		return contains("tty-ok-2")(cs) && contains("30 90")(cs)
	})
	for _, c := range chunks {
		if c.Stream != StreamTTY {
			t.Errorf("chunk on stream %q, want %q", c.Stream, StreamTTY)
		}
	}

	if err := a.Resize(40, 100); err != nil {
		t.Fatal(err)
	}
	write(t, a, "stty size\n")
	readUntil(t, a, contains("40 100"))

	write(t, a, "exit 7\n")
	readAll(t, a)
	end := waitExit(t, m, info.ID)
	if diff := cmp.Diff(Info{State: StateExited, ExitCode: intp(7)}, Info{State: end.State, ExitCode: end.ExitCode}); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
}

// Operations that only fit one mode say so.
func TestModeMismatch(t *testing.T) {
	requirePTY(t)
	m := newManager(t, "")
	pipe := attach(t, m, start(t, m, Spec{Argv: []string{"cat"}}).ID, -1)
	tty := attach(t, m, start(t, m, Spec{Argv: []string{"cat"}, Mode: ModeTTY}).ID, -1)

	tests := []struct {
		name string
		op   func() error
	}{
		{name: "resize a pipe session", op: func() error { return pipe.Resize(10, 10) }},
		{name: "close a tty session's stdin", op: tty.CloseStdin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, ErrWrongMode) {
				t.Errorf("error = %v, want ErrWrongMode", err)
			}
		})
	}
}
