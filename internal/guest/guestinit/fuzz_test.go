package guestinit

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// kernelParam is one parameter as the kernel's parse_args hands it on:
// param, and val unless the word has no '=' (hasVal false).
type kernelParam struct {
	param, val string
	hasVal     bool
}

// kernelIsSpace is the kernel's isspace (lib/ctype.c): \t \n \v \f \r,
// space, and the Latin-1 no-break space 0xa0.
func kernelIsSpace(c byte) bool {
	return c == ' ' || c >= '\t' && c <= '\r' || c == 0xa0
}

// kernelCmdline models lib/cmdline.c next_arg and the "--" stop of
// kernel/params.c parse_args, byte by byte: a word ends at unquoted white
// space; a quote opening the word and the one closing it are dropped, as
// is a quote opening the value and the word's last quote then; quotes
// elsewhere stay.
func kernelCmdline(s string) []kernelParam {
	var out []kernelParam
	i := 0
	skip := func() {
		for i < len(s) && kernelIsSpace(s[i]) {
			i++
		}
	}
	skip()
	for i < len(s) {
		quoted, inQuote := false, false
		if s[i] == '"' {
			i++
			quoted, inQuote = true, true
		}
		start, equals, j := i, -1, i
		for ; j < len(s); j++ {
			c := s[j]
			if kernelIsSpace(c) && !inQuote {
				break
			}
			if equals < 0 && c == '=' && j > start {
				equals = j
			}
			if c == '"' {
				inQuote = !inQuote
			}
		}
		word := []byte(s[start:j]) // the kernel writes NULs into it
		end := len(word)
		var p kernelParam
		if equals < 0 {
			if quoted && end > 0 && word[end-1] == '"' {
				end--
			}
			p = kernelParam{param: string(word[:end])}
		} else {
			e := equals - start
			vs, ve := e+1, end
			if vs < end && word[vs] == '"' {
				vs++
				if word[end-1] == '"' {
					ve = end - 1
				}
			}
			if quoted && end > 0 && word[end-1] == '"' {
				ve = min(ve, end-1)
			}
			p = kernelParam{param: string(word[:e]), val: string(word[vs:max(vs, ve)]), hasVal: true}
		}
		i = j
		if i < len(s) {
			i++ // the space that ended the word
		}
		skip()
		if !p.hasVal && p.param == "--" {
			break
		}
		out = append(out, p)
	}
	return out
}

// FuzzParseCmdline: parseCmdline reads a command line as the kernel
// does, word for word, for the ASCII command lines banger writes;
// words banger joins with spaces come back as they were; value and last
// pick the last occurrence.
func FuzzParseCmdline(f *testing.F) {
	for _, s := range []string{
		"",
		"root=/dev/vda rw net.ifnames=0 banger.ip=172.30.0.2/24 banger.gw=172.30.0.1 banger.mac=02:00:00:00:00:01 banger.hostname=brisk-otter banger.rootfs=overlay banger.dns=1.1.1.1,9.9.9.9",
		`x="a b" "y=c d" e`,
		"root=/dev/vda ro -- single root=/dev/vdb",
		`rootflags="noatime,nodiratime" ro init=/bin/sh`,
		`"" a= ="b" "--" c`,
		"a --b c\t\n\r d",
		`"unterminated quote`,
		"é \xff",
		// Once divergences from the kernel: a quote inside a word, and
		// \v as a separator.
		`rootflags=a"b c"d`,
		"ro\vrw",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := parseCmdline(s)
		for _, w := range c.words {
			if w == "--" {
				t.Fatalf("parseCmdline(%q) kept a word %q: parsing stops there", s, w)
			}
		}
		// value and last against a plain scan from the end.
		for _, key := range []string{"root", "rootflags", "init", "banger.rootfs", "banger.upper", "banger.rootwait"} {
			want, wantOK := "", false
			for _, w := range c.words {
				if k, v, ok := strings.Cut(w, "="); ok && k == key {
					want, wantOK = v, true
				}
			}
			if got, ok := c.value(key); got != want || ok != wantOK {
				t.Fatalf("parseCmdline(%q).value(%q) = %q, %v; want the last, %q, %v", s, key, got, ok, want, wantOK)
			}
		}
		wantLast := ""
		for _, w := range c.words {
			if w == "ro" || w == "rw" {
				wantLast = w
			}
		}
		if got := c.last("ro", "rw"); got != wantLast {
			t.Fatalf("parseCmdline(%q).last(ro, rw) = %q; want %q", s, got, wantLast)
		}

		// Words without white space or quotes, joined as banger joins
		// them, come back as they were.
		var plain []string
		for _, w := range strings.Fields(s) {
			// 0xa0 is white space to the kernel, also inside UTF-8.
			if !strings.ContainsAny(w, "\"\v\f") && !strings.Contains(w, "\xa0") && w != "--" && utf8.ValidString(w) {
				plain = append(plain, w)
			}
		}
		if got := parseCmdline(strings.Join(plain, " ")).words; !slices.Equal(got, plain) {
			t.Fatalf("words %q joined with spaces parse as %q", plain, got)
		}

		// The kernel's reading, for what banger writes: ASCII without NUL.
		for i := 0; i < len(s); i++ {
			if s[i] == 0 || s[i] >= utf8.RuneSelf {
				return
			}
		}
		kernel := kernelCmdline(s)
		same := len(kernel) == len(c.words)
		for i := 0; same && i < len(kernel); i++ {
			// Compared as words: a key never starts with '=', and for
			// every other key both split a word at its first '='.
			p := kernel[i]
			w := p.param
			if p.hasVal {
				w += "=" + p.val
			}
			same = c.words[i] == w
		}
		if same {
			return
		}
		t.Fatalf("parseCmdline(%q) = %q; the kernel reads %+v", s, c.words, kernel)
	})
}
