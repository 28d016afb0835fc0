package config

import (
	"fmt"
	"strings"
)

// Error is a problem with one configuration value, or with the config file as
// a whole. Its message is one line that names the file, the key, the value
// and what would be accepted:
//
//	config /home/u/.config/banger/config.toml: network.subnet = "10.0.0.1/33" is not valid: want an IPv4 CIDR with prefix 16..29, e.g. "172.30.0.0/24"
type Error struct {
	File string // the config file
	Line int    // 1-based line of a TOML syntax error; 0 otherwise
	Key  string // dotted key, e.g. "network.subnet"; "" for file-level errors
	// Value is the offending value as TOML writes it (strings quoted), e.g.
	// `"10.0.0.1/33"` or `0`; "" when there is no value to show.
	Value string
	// Problem says what is wrong when it is not simply a bad value, e.g.
	// `is not a known key: did you mean "tap_pool_size"?`. "" means
	// "is not valid".
	Problem string
	Want    string // what a valid value looks like, e.g. `an integer from 1 to 64, e.g. 2`
	Err     error  // underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.File != "" {
		b.WriteString(" " + e.File)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		if e.Value != "" {
			b.WriteString(" = " + e.Value)
		}
		b.WriteString(" ")
	}
	if e.Problem != "" {
		b.WriteString(e.Problem)
	} else {
		b.WriteString("is not valid")
	}
	if e.Want != "" {
		b.WriteString(": want " + e.Want)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// suggest returns the known key nearest to the unknown key path, or "" when
// none is close. A key in the same table is named by its leaf ("tap_pool_size"),
// one elsewhere by its dotted path ("vm.vcpus").
func suggest(key []string) string {
	if len(key) == 0 {
		return ""
	}
	parent := strings.Join(key[:len(key)-1], ".")
	leaf := normalizeKey(key[len(key)-1])
	best, bestScore, bestSame := "", -1, false
	for _, f := range fields() {
		candParent, candLeaf := "", f.key
		if i := strings.LastIndexByte(f.key, '.'); i >= 0 {
			candParent, candLeaf = f.key[:i], f.key[i+1:]
		}
		cl := normalizeKey(candLeaf)
		limit := max(2, len(cl)/3)
		score := levenshtein(leaf, cl)
		if score > limit || score >= len(leaf) || score >= len(cl) {
			if !strings.Contains(cl, leaf) && !strings.Contains(leaf, cl) || min(len(leaf), len(cl)) < 4 {
				continue
			}
			score = limit
		}
		same := candParent == parent
		if best == "" || score < bestScore || (score == bestScore && same && !bestSame) {
			best, bestScore, bestSame = f.key, score, same
			if same {
				best = candLeaf
			}
		}
	}
	return best
}

// normalizeKey folds the spellings people try for a key ("TapPoolSize",
// "tap-pool-size") into one.
func normalizeKey(s string) string {
	return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
}

// levenshtein is the edit distance between a and b, in bytes.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
