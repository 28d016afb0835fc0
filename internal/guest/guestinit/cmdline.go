package guestinit

import "strings"

// cmdline is a parsed kernel command line (/proc/cmdline).
type cmdline struct {
	words []string // unquoted words before "--"
}

// parseCmdline splits a kernel command line the way the kernel does
// (lib/cmdline.c next_arg): words are separated by spaces, double quotes
// group spaces into a word and are dropped, and parsing stops at "--"
// (the words after it are init's arguments, which the kernel already put in
// init's argv).
func parseCmdline(s string) cmdline {
	var c cmdline
	var word strings.Builder
	inQuote, inWord := false, false
	flush := func() bool {
		if !inWord {
			return true
		}
		w := word.String()
		word.Reset()
		inWord = false
		if w == "--" {
			return false
		}
		c.words = append(c.words, w)
		return true
	}
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if !flush() {
				return c
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	flush()
	return c
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
