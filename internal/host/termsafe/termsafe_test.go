package termsafe

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLineAndText(t *testing.T) {
	tests := []struct {
		name, in, line, text string
	}{
		{"plain", "echo-1 python3 -u x.py", "echo-1 python3 -u x.py", "echo-1 python3 -u x.py"},
		{"unicode kept", "café ✓ 日本", "café ✓ 日本", "café ✓ 日本"},
		{"backslash kept", `C:\x1b`, `C:\x1b`, `C:\x1b`},
		{"window title (OSC 0)", "\x1b]0;pwned\x07", `\x1b]0;pwned\x07`, `\x1b]0;pwned\x07`},
		{"clear screen", "a\x1b[2J\x1b[Hb", `a\x1b[2J\x1b[Hb`, `a\x1b[2J\x1b[Hb`},
		{"newline and tab", "a\nb\tc", `a\nb\tc`, "a\nb\tc"},
		{"carriage return hides text", "ok\rFAIL", `ok\rFAIL`, `ok\rFAIL`},
		{"NUL, BEL, BS, DEL", "\x00\x07\x08\x7f", `\x00\x07\x08\x7f`, `\x00\x07\x08\x7f`},
		{"C1 CSI as UTF-8", "a\u009b2Jb", `a\u009b2Jb`, `a\u009b2Jb`},
		{"raw 8-bit CSI (not UTF-8)", "a\x9b2Jb", `a\x9b2Jb`, `a\x9b2Jb`},
		{"truncated UTF-8", "ab\xe6\x97", `ab\xe6\x97`, `ab\xe6\x97`},
		{"bidi override", "evil\u202etxt.exe", `evil\u202etxt.exe`, `evil\u202etxt.exe`},
		{"bidi isolate", "a\u2066b\u2069", `a\u2066b\u2069`, `a\u2066b\u2069`},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Line(tt.in); got != tt.line {
				t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.line)
			}
			if got := Text(tt.in); got != tt.text {
				t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.text)
			}
		})
	}
}

// No output of Line ever holds a byte a terminal acts on.
func TestLineOutputIsInert(t *testing.T) {
	for b := 0; b < 256; b++ {
		for _, s := range []string{string([]byte{byte(b)}), "x" + string(rune(b)) + "y"} {
			got := Line(s)
			for i := 0; i < len(got); i++ {
				if c := got[i]; c < 0x20 || c == 0x7f {
					t.Fatalf("Line(%q) = %q holds control byte %#x", s, got, c)
				}
			}
		}
	}
}

func TestWriter(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"console line", "[  OK  ] Started ssh.service.\r\n", "[  OK  ] Started ssh.service.\n"},
		{"colours dropped", "[\x1b[0;32m  OK  \x1b[0m] Reached target\r\n", "[  OK  ] Reached target\n"},
		{"title escaped", "\x1b]0;pwned\x07login:", `\x1b]0;pwned\x07login:`},
		{"cursor moves escaped", "a\x1b[2Jb\x1b[10;1H", `a\x1b[2Jb\x1b[10;1H`},
		{"bare carriage return", "ok\rFAIL\n", `ok\rFAIL` + "\n"},
		{"tab kept", "a\tb\n", "a\tb\n"},
		{"utf-8 kept", "café ✓\n", "café ✓\n"},
		{"C1 and bad bytes", "\u009b\x9b\xff", `\u009b\x9b\xff`},
		{"unfinished ESC at the end", "a\x1b[3", `a\x1b[3`},
		{"trailing CR", "a\r", `a\r`},
		{"long bracket sequence", "\x1b[" + "1111111111111111111111111111111111111111" + "m",
			`\x1b[` + "1111111111111111111111111111111111111111" + "m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, and one byte per write: a sequence cut between writes
			// is held, never let through.
			for _, chunk := range []int{len(tt.in) + 1, 1, 3} {
				var out bytes.Buffer
				w := NewWriter(&out)
				in := []byte(tt.in)
				for len(in) > 0 {
					n := min(chunk, len(in))
					if m, err := w.Write(in[:n]); err != nil || m != n {
						t.Fatalf("Write = %d, %v", m, err)
					}
					in = in[n:]
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, out.String()); diff != "" {
					t.Errorf("chunks of %d: (-want +got):\n%s", chunk, diff)
				}
			}
		})
	}
}
