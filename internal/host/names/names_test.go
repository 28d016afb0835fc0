package names

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // "" means valid
	}{
		{name: "simple", in: "brisk-otter"},
		{name: "single letter", in: "a"},
		{name: "digits", in: "vm-2"},
		{name: "max length", in: "a" + strings.Repeat("b", MaxLen-1)},
		{
			name:    "uppercase and underscore",
			in:      "My_VM",
			wantErr: `invalid name "My_VM": it contains 'M'; use lowercase letters, digits and '-' (1-63 characters, starting with a letter), e.g. "my-vm"`,
		},
		{
			name:    "empty",
			in:      "",
			wantErr: `invalid name "": it is empty; use lowercase letters, digits and '-' (1-63 characters, starting with a letter), e.g. "my-vm"`,
		},
		{
			name:    "too long",
			in:      strings.Repeat("a", MaxLen+1),
			wantErr: fmt.Sprintf(`invalid name %q: it is 64 characters long; use lowercase letters, digits and '-' (1-63 characters, starting with a letter), e.g. %q`, strings.Repeat("a", 64), strings.Repeat("a", 63)),
		},
		{
			name:    "leading digit",
			in:      "1vm",
			wantErr: `invalid name "1vm": it starts with '1'; use lowercase letters, digits and '-' (1-63 characters, starting with a letter), e.g. "vm-1vm"`,
		},
		{
			name:    "leading dash",
			in:      "-vm",
			wantErr: `invalid name "-vm": it starts with '-'; use lowercase letters, digits and '-' (1-63 characters, starting with a letter), e.g. "vm"`,
		},
		{
			name:    "trailing dash",
			in:      "vm-",
			wantErr: `invalid name "vm-": it ends with '-'; use lowercase letters, digits and '-' (1-63 characters, starting with a letter), e.g. "vm"`,
		},
		{
			name:    "dot",
			in:      "my.vm",
			wantErr: `invalid name "my.vm": it contains '.'; use lowercase letters, digits and '-' (1-63 characters, starting with a letter), e.g. "my-vm"`,
		},
		{
			name:    "non-ascii",
			in:      "café",
			wantErr: `invalid name "café": it contains 'é'; use lowercase letters, digits and '-' (1-63 characters, starting with a letter), e.g. "caf"`,
		},
		{
			name:    "nothing usable",
			in:      "___",
			wantErr: `invalid name "___": it contains '_'; use lowercase letters, digits and '-' (1-63 characters, starting with a letter), e.g. "my-vm"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%q) = nil, want error", tt.in)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate(%q) error does not wrap ErrInvalid: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
				t.Errorf("Validate(%q) error mismatch (-want +got):\n%s", tt.in, diff)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// Every suggestion Validate makes must itself be valid.
func TestSuggestIsValid(t *testing.T) {
	for _, in := range []string{"My_VM", "", "1", "-", "---a---", "9lives", "ÄÖÜ", strings.Repeat("x-", 40), "a_" + strings.Repeat("1", 80)} {
		t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
			if err := Validate(suggest(in)); err != nil {
				t.Errorf("suggest(%q) = %q, which is invalid: %v", in, suggest(in), err)
			}
		})
	}
}

func TestWordsValid(t *testing.T) {
	lists := []struct {
		name  string
		words []string
	}{
		{"adjectives", adjectives[:]},
		{"nouns", nouns[:]},
	}
	for _, l := range lists {
		t.Run(l.name, func(t *testing.T) {
			if len(l.words) < 100 {
				t.Errorf("%d %s, want at least 100", len(l.words), l.name)
			}
			seen := map[string]bool{}
			for _, w := range l.words {
				if err := Validate(w); err != nil {
					t.Errorf("word %q: %v", w, err)
				}
				if strings.Contains(w, "-") {
					t.Errorf("word %q contains '-'", w)
				}
				if len(w) > 8 {
					t.Errorf("word %q is longer than 8 letters", w)
				}
				if seen[w] {
					t.Errorf("word %q listed twice", w)
				}
				seen[w] = true
			}
		})
	}
}

func newTestGenerator() *Generator {
	return NewGenerator(rand.New(rand.NewPCG(1, 2)))
}

func none(string) (bool, error) { return false, nil }

func TestGenerateValid(t *testing.T) {
	g := newTestGenerator()
	for range 1000 {
		name, err := g.Generate(none)
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		if err := Validate(name); err != nil {
			t.Fatalf("generated invalid name: %v", err)
		}
		if strings.Count(name, "-") != 1 {
			t.Fatalf("generated %q, want adjective-noun with nothing taken", name)
		}
	}
}

func TestGenerateUnique(t *testing.T) {
	g := newTestGenerator()
	taken := map[string]bool{}
	isTaken := func(n string) (bool, error) { return taken[n], nil }
	// More names than there are plain pairs' worth of easy picks, so some
	// collisions and retries happen along the way.
	for i := range 3000 {
		name, err := g.Generate(isTaken)
		if err != nil {
			t.Fatalf("Generate #%d: %v", i, err)
		}
		if taken[name] {
			t.Fatalf("Generate #%d returned taken name %q", i, name)
		}
		if err := Validate(name); err != nil {
			t.Fatalf("Generate #%d: %v", i, err)
		}
		taken[name] = true
	}
}

func TestGenerateSuffixAfterCollisions(t *testing.T) {
	g := newTestGenerator()
	var asked []string
	name, err := g.Generate(func(n string) (bool, error) {
		asked = append(asked, n)
		// Every plain pair is taken; any suffixed name is free.
		return strings.Count(n, "-") == 1, nil
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if got, want := len(asked), plainTries+1; got != want {
		t.Errorf("asked about %d names, want %d", got, want)
	}
	if err := Validate(name); err != nil {
		t.Fatal(err)
	}
	if parts := strings.Split(name, "-"); len(parts) != 3 {
		t.Errorf("got %q, want adjective-noun-number", name)
	}
}

func TestGenerateExhausted(t *testing.T) {
	g := newTestGenerator()
	calls := 0
	_, err := g.Generate(func(string) (bool, error) { calls++; return true, nil })
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("Generate error = %v, want ErrExhausted", err)
	}
	if want := plainTries + suffixTries; calls != want {
		t.Errorf("taken called %d times, want %d", calls, want)
	}
}

func TestGenerateTakenError(t *testing.T) {
	g := newTestGenerator()
	boom := errors.New("store closed")
	_, err := g.Generate(func(string) (bool, error) { return false, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Generate error = %v, want it to wrap %v", err, boom)
	}
}

func TestGenerateDeterministic(t *testing.T) {
	run := func() []string {
		g := NewGenerator(rand.New(rand.NewPCG(42, 7)))
		var out []string
		for range 20 {
			n, err := g.Generate(none)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	first, second := run(), run()
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("same seed gave different names (-first +second):\n%s", diff)
	}
}
