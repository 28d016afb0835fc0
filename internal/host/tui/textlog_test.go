package tui

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A guest's output in a pane keeps its text and loses every control:
// colours and titles are dropped, anything else is shown escaped.
func TestTextLogCleansGuestOutput(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"colours", "[\x1b[0;32m  OK  \x1b[0m] Started x\n", []string{"[  OK  ] Started x"}},
		{"window title", "\x1b]0;owned\x07prompt$ \n", []string{"prompt$ "}},
		{"bracketed paste", "\x1b[?2004hroot@vm:~# ls\n", []string{"root@vm:~# ls"}},
		{"an escape sequence of two bytes", "a\x1bcb\n", []string{"ab"}},
		{"an escape at the end", "a\x1b\n", []string{"a"}},
		{"C1 control", "x\u009b2Jy\n", []string{`x\u009b2Jy`}},
		{"bell and backspace", "ding\x07\x08\n", []string{`ding\x07\x08`}},
		{"carriage return redraws", "10%\r50%\r100%\n", []string{"100%"}},
		{"tabs", "a\tb\n", []string{"a    b"}},
		{"bidi override", "abc\u202edef\n", []string{`abc\u202edef`}},
		{"unfinished line", "one\ntwo", []string{"one", "two"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTextLog()
			// Byte at a time: a sequence split across writes is still
			// one sequence.
			for i := range len(tc.in) {
				l.write([]byte{tc.in[i]})
			}
			got := l.all()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			for _, line := range got {
				if strings.ContainsAny(line, "\x1b\x07\x08\u009b\u202e") {
					t.Errorf("a control reached the screen: %q", line)
				}
			}
		})
	}
}

// The log follows the end until scrolled up, and End follows again.
func TestTextLogScroll(t *testing.T) {
	l := newTextLog()
	for i := range 10 {
		l.write([]byte{byte('0' + i), '\n'})
	}
	if got := l.render(5, 3); got != fit("7", 5)+"\n"+fit("8", 5)+"\n"+fit("9", 5) {
		t.Fatalf("following: %q", got)
	}
	l.key(keyMsg("up"), 3)
	l.write([]byte("10\n"))
	if got := l.render(5, 3); !strings.HasPrefix(got, fit("6", 5)) {
		t.Errorf("scrolled up, new output moved the view: %q", got)
	}
	l.key(keyMsg("G"), 3)
	if got := l.render(5, 3); !strings.HasSuffix(got, fit("10", 5)) {
		t.Errorf("after G the tail is not shown: %q", got)
	}
}
