package names

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// labelRE is the rule Validate documents, written independently: a DNS
// label of lowercase letters, digits and '-', starting with a letter and
// not ending with '-', at most MaxLen bytes.
var labelRE = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)

// FuzzValidate: Validate accepts exactly what labelRE and MaxLen accept;
// every refusal wraps ErrInvalid, quotes the name (so a control byte
// cannot reach a terminal raw) and suggests a name that is itself valid.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		"brisk-otter", "a", "dev-1", "", "-", "a-", "1vm", "My_VM", "ÄÖÜ",
		"vm\x1b[31m", "a\x00b", strings.Repeat("a", MaxLen), strings.Repeat("a", MaxLen+1),
		"x--y", "\u212a", "a\u0307", strings.Repeat("-9", 40),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := Validate(name)
		want := len(name) <= MaxLen && labelRE.MatchString(name)
		if (err == nil) != want {
			t.Fatalf("Validate(%q) = %v; the rule says valid=%v", name, err, want)
		}
		if err == nil {
			return
		}
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Validate(%q) = %v, which does not wrap ErrInvalid", name, err)
		}
		for _, b := range []byte(err.Error()) {
			if b < 0x20 || b == 0x7f {
				t.Fatalf("Validate(%q)'s message holds the raw control byte %#x: %q", name, b, err)
			}
		}
		s := suggest(name)
		if verr := Validate(s); verr != nil {
			t.Fatalf("suggest(%q) = %q, which is invalid: %v", name, s, verr)
		}
		if !strings.Contains(err.Error(), `e.g. "`+s+`"`) {
			t.Fatalf("Validate(%q) = %q does not suggest %q", name, err, s)
		}
	})
}
