// Package termsafe makes text that came from a guest safe to show on the
// user's terminal.
//
// A guest is untrusted (SPEC §8), and a terminal obeys the control
// characters it is sent: an escape sequence in a session name, an argv
// element, a diagnostic or an agent's error message can retitle the window
// (OSC 0), rewrite what is already on screen, paste text into the shell's
// input on some terminals, or hide the rest of a line. Every string a front
// end prints from a guest goes through [Line] (one line: a table cell, a
// name) or [Text] (a message that may span lines); a stream of terminal
// output that is not the user's own program (the serial console) goes
// through [NewWriter].
//
// What is escaped, shown as Go-style escapes so it stays visible: C0
// controls (ESC is \x1b; tab and newline too in [Line]), DEL, C1 controls
// (U+0080..U+009F, which some terminals take as 8-bit CSI and OSC), bytes
// that are not UTF-8, and the bidirectional overrides and isolates
// (U+202A..U+202E, U+2066..U+2069) that make text read in another order
// than it runs. Everything else, backslashes included, is left as it is.
//
// The bytes of a command the user runs themself (vm exec, session attach
// and logs of their own program) are not this package's business: passing
// them through raw is the point of those commands.
package termsafe

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Line returns s with every control character escaped, newline and tab
// included, for output that must stay on one line.
func Line(s string) string { return escape(s, false) }

// Text returns s with every control character but newline and tab
// escaped, for a message that may span lines.
func Text(s string) string { return escape(s, true) }

func escape(s string, multiline bool) string {
	if clean(s, multiline) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r, multiline):
			b.WriteString(escapeRune(r))
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// clean is the fast path: s needs no escape.
func clean(s string, multiline bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			if multiline && (c == '\n' || c == '\t') {
				continue
			}
			return false
		}
		if c >= 0x80 {
			return cleanRunes(s[i:], multiline)
		}
	}
	return true
}

func cleanRunes(s string, multiline bool) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || unsafeRune(r, multiline) {
			return false
		}
		i += size
	}
	return true
}

// unsafeRune reports whether a terminal could act on r, or r changes how
// the text around it reads.
func unsafeRune(r rune, multiline bool) bool {
	switch {
	case multiline && (r == '\n' || r == '\t'):
		return false
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

func escapeRune(r rune) string {
	switch r {
	case '\n':
		return `\n`
	case '\t':
		return `\t`
	case '\r':
		return `\r`
	}
	if r < 0x80 {
		return fmt.Sprintf(`\x%02x`, r)
	}
	return fmt.Sprintf(`\u%04x`, r)
}

// NewWriter returns a writer that passes a stream of terminal output (a
// serial console) to w with the escapes of [Text], except that colour and
// style sequences (SGR: ESC [ digits and ';' m), which consoles use
// heavily and which cannot move the cursor or talk back, are dropped, and
// a "\r\n" line end becomes "\n". A sequence cut between two writes is
// held until the next one; Close writes out whatever is still held.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Writer is the writer [NewWriter] returns.
type Writer struct {
	w       io.Writer
	pending []byte // an incomplete rune, SGR sequence or "\r" from the last write
	out     []byte
}

// maxSGR bounds a colour sequence held across writes; longer ones are not
// colours and get escaped.
const maxSGR = 32

// Write escapes p and writes it on; it reports len(p) when the underlying
// writer took everything.
func (sw *Writer) Write(p []byte) (int, error) {
	buf := p
	if len(sw.pending) > 0 {
		buf = append(sw.pending, p...)
		sw.pending = nil
	}
	sw.out = sw.out[:0]
	i := 0
	for i < len(buf) {
		c := buf[i]
		switch {
		case c == 0x1b:
			n, complete := sgrLen(buf[i:])
			if !complete && len(buf)-i < maxSGR {
				sw.pending = append(sw.pending[:0], buf[i:]...)
				i = len(buf)
				continue
			}
			if n > 0 {
				i += n // a colour: dropped
				continue
			}
			sw.out = append(sw.out, `\x1b`...)
			i++
		case c == '\r':
			if i+1 == len(buf) {
				sw.pending = append(sw.pending[:0], '\r')
				i++
				continue
			}
			if buf[i+1] == '\n' {
				i++ // "\r\n" -> "\n"
				continue
			}
			sw.out = append(sw.out, `\r`...)
			i++
		case c < 0x80:
			if unsafeRune(rune(c), true) {
				sw.out = append(sw.out, escapeRune(rune(c))...)
			} else {
				sw.out = append(sw.out, c)
			}
			i++
		default:
			if !utf8.FullRune(buf[i:]) {
				sw.pending = append(sw.pending[:0], buf[i:]...)
				i = len(buf)
				continue
			}
			r, size := utf8.DecodeRune(buf[i:])
			switch {
			case r == utf8.RuneError && size <= 1:
				sw.out = fmt.Appendf(sw.out, `\x%02x`, c)
			case unsafeRune(r, true):
				sw.out = append(sw.out, escapeRune(r)...)
			default:
				sw.out = append(sw.out, buf[i:i+size]...)
			}
			i += size
		}
	}
	if _, err := sw.w.Write(sw.out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes out, escaped, what an unfinished sequence left held. It
// does not close the underlying writer.
func (sw *Writer) Close() error {
	if len(sw.pending) == 0 {
		return nil
	}
	held := string(sw.pending)
	sw.pending = nil
	_, err := io.WriteString(sw.w, Text(held))
	return err
}

// sgrLen returns the length of the SGR sequence b starts with (0 if b
// does not start with one) and whether b holds enough to tell.
func sgrLen(b []byte) (n int, complete bool) {
	if len(b) < 2 {
		return 0, false
	}
	if b[1] != '[' {
		return 0, true
	}
	for i := 2; i < len(b); i++ {
		if i >= maxSGR {
			return 0, true
		}
		c := b[i]
		switch {
		case c >= '0' && c <= '9', c == ';':
		case c == 'm':
			return i + 1, true
		default:
			return 0, true
		}
	}
	return 0, false
}
