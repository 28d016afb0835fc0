// Package names generates friendly VM names and validates names users give.
//
// A name is a DNS label (it ends up as a hostname and in paths), so Validate
// enforces the label rules. Generator makes adjective-noun names such as
// "brisk-otter" from word lists kept in this package, asking the caller which
// names are taken; it owns no store of its own.
package names

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// MaxLen is the longest valid name: the length limit of a DNS label.
const MaxLen = 63

// Rule is what Validate accepts, in a few words, for a form to show
// beside a name field.
const Rule = "lowercase letters, digits and '-' (1-63 characters, starting with a letter)"

// ErrInvalid is wrapped by every error Validate returns.
var ErrInvalid = errors.New("invalid name")

// ErrExhausted is wrapped by the error Generate returns when every name it
// tried was taken.
var ErrExhausted = errors.New("no free name")

// Validate reports whether name is a valid VM name: 1 to 63 characters of
// lowercase letters, digits and '-', starting with a letter and not ending
// with '-'. The error wraps ErrInvalid and suggests a valid spelling.
func Validate(name string) error {
	problem := check(name)
	if problem == "" {
		return nil
	}
	return fmt.Errorf("%w %q: %s; use lowercase letters, digits and '-' (1-%d characters, starting with a letter), e.g. %q",
		ErrInvalid, name, problem, MaxLen, suggest(name))
}

// check returns what is wrong with name, or "" when it is valid.
func check(name string) string {
	switch {
	case name == "":
		return "it is empty"
	case len(name) > MaxLen:
		return fmt.Sprintf("it is %d characters long", len(name))
	}
	for _, r := range name {
		if !isLower(r) && !isDigit(r) && r != '-' {
			return fmt.Sprintf("it contains %q", r)
		}
	}
	switch {
	case !isLower(rune(name[0])):
		return fmt.Sprintf("it starts with %q", name[0])
	case strings.HasSuffix(name, "-"):
		return "it ends with '-'"
	}
	return ""
}

// suggest turns an invalid name into a valid one close to what the user meant:
// "My_VM" becomes "my-vm".
func suggest(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if isLower(r) || isDigit(r) {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	s := b.String()
	if s == "" {
		return "my-vm"
	}
	if !isLower(rune(s[0])) {
		s = "vm-" + s
	}
	if len(s) > MaxLen {
		s = strings.TrimRight(s[:MaxLen], "-")
	}
	return s
}

func isLower(r rune) bool { return r >= 'a' && r <= 'z' }
func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// Tries Generate makes before giving up: plainTries adjective-noun pairs, then
// suffixTries pairs with a numeric suffix.
const (
	plainTries  = 32
	suffixTries = 32
)

// Generator makes friendly names. It is not safe for concurrent use, because
// the *rand.Rand it draws from is not.
type Generator struct {
	rand *rand.Rand
}

// NewGenerator returns a Generator drawing from r. Pass a seeded source in
// tests for repeatable names, e.g. rand.New(rand.NewPCG(1, 2)).
func NewGenerator(r *rand.Rand) *Generator {
	return &Generator{rand: r}
}

// Generate returns a name that taken reports free. It tries adjective-noun
// pairs ("brisk-otter") first, then pairs with a numeric suffix
// ("brisk-otter-417"), and fails with an error wrapping ErrExhausted when
// every try collides. An error from taken is returned as is, wrapped.
func (g *Generator) Generate(taken func(string) (bool, error)) (string, error) {
	for i := range plainTries + suffixTries {
		name := g.pair()
		if i >= plainTries {
			name += "-" + strconv.Itoa(2+g.rand.IntN(998))
		}
		used, err := taken(name)
		if err != nil {
			return "", fmt.Errorf("checking whether name %q is taken: %w", name, err)
		}
		if !used {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w after %d tries: remove VMs you no longer need or pass a name of your own",
		ErrExhausted, plainTries+suffixTries)
}

func (g *Generator) pair() string {
	return adjectives[g.rand.IntN(len(adjectives))] + "-" + nouns[g.rand.IntN(len(nouns))]
}
