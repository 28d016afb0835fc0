package guestinit

import "strings"

// cmdline is a parsed kernel command line (/proc/cmdline).
type cmdline struct {
	words []string // unquoted words before "--"
}

// parseCmdline splits a kernel command line the way the kernel does
// (lib/cmdline.c next_arg, kernel/params.c parse_args): words end at white
// space outside double quotes (the kernel's isspace: \t \n \v \f \r,
// space and Latin-1's no-break space 0xa0); a quote that opens a word is
// dropped with the word's last character when that is a quote, and so is
// a quote that opens a value (after the first '=' past the word's first
// byte); quotes elsewhere stay. Parsing stops at a bare "--" (the words
// after it are init's arguments, which the kernel already put in init's
// argv).
func parseCmdline(s string) cmdline {
	var c cmdline
	i := 0
	skipSpace := func() {
		for i < len(s) && kernelSpace(s[i]) {
			i++
		}
	}
	for skipSpace(); i < len(s); skipSpace() {
		quoted, inQuote := false, false
		if s[i] == '"' {
			i++
			quoted, inQuote = true, true
		}
		start, equals, j := i, -1, i
		for ; j < len(s); j++ {
			ch := s[j]
			if kernelSpace(ch) && !inQuote {
				break
			}
			if equals < 0 && ch == '=' && j > start {
				equals = j
			}
			if ch == '"' {
				inQuote = !inQuote
			}
		}
		word, endsQuoted := s[start:j], j > start && s[j-1] == '"'
		i = j
		if i < len(s) {
			i++ // the space that ended the word
		}
		if equals < 0 {
			if quoted && endsQuoted {
				word = word[:len(word)-1]
			}
			if word == "--" {
				return c
			}
			c.words = append(c.words, word)
			continue
		}
		key, val := word[:equals-start], word[equals-start+1:]
		switch {
		case strings.HasPrefix(val, `"`):
			val = val[1:]
			if endsQuoted && len(val) > 0 {
				val = val[:len(val)-1]
			}
		case quoted && endsQuoted:
			val = val[:len(val)-1]
		}
		c.words = append(c.words, key+"="+val)
	}
	return c
}

// kernelSpace is the kernel's isspace (lib/ctype.c).
func kernelSpace(b byte) bool {
	return b == ' ' || b >= '\t' && b <= '\r' || b == 0xa0
}

// value returns the value of the last key=value word, as the kernel lets a
// later parameter override an earlier one.
func (c cmdline) value(key string) (string, bool) {
	for i := len(c.words) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(c.words[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// last returns whichever of names occurs last as a bare word, or "" when
// none does (e.g. last("ro", "rw")).
func (c cmdline) last(names ...string) string {
	for i := len(c.words) - 1; i >= 0; i-- {
		for _, n := range names {
			if c.words[i] == n {
				return n
			}
		}
	}
	return ""
}
