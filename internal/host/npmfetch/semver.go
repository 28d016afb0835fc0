package npmfetch

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Versions are github.com/Masterminds/semver/v3 versions, the one version
// type banger uses (Firecracker gating and image requirements use it too),
// ordered by semver.org §11 precedence: a pre-release sorts before its
// release (1.10.0-dev < 1.10.0). Only the range grammar below is npm's own:
// the library's constraints differ from npm's ranges ("^*" matches only
// 0.x there, "~0.0.0" matches everything, and a pre-release comparator
// admits pre-releases of every version in its group), so npm's rules are
// kept here, over the library's versions.

// parseVersion reads a published version: strict semver (1.2.3, with an
// optional pre-release and build), a leading "v" and spaces allowed.
func parseVersion(s string) (*semver.Version, error) {
	v, err := semver.StrictNewVersion(strings.TrimPrefix(strings.TrimSpace(s), "v"))
	if err != nil {
		return nil, fmt.Errorf("%q is not a version like 1.2.3: %w", s, err)
	}
	return v, nil
}

// Range is a parsed version range: a set of alternatives ("||"), each a
// set of comparators that must all hold.
type Range struct {
	alts [][]comparator
	spec string
}

type comparator struct {
	op string // one of = < <= > >=
	v  *semver.Version
}

// ParseRange parses the subset of npm's range grammar that picking a
// runtime or tool version needs: exact versions ("24.1.0"), partial
// versions ("24", "24.1", "24.x", "*"), caret ("^24", "^0.3.1") and tilde
// ("~24.1") ranges, comparators (">=22", "<25.0.0"), several comparators
// separated by spaces (all must hold) and alternatives separated by "||".
// Hyphen ranges and prerelease ranges beyond an exact version are not
// supported.
func ParseRange(spec string) (Range, error) {
	r := Range{spec: spec}
	for _, alt := range strings.Split(spec, "||") {
		fields := strings.Fields(alt)
		if len(fields) == 0 {
			fields = []string{"*"}
		}
		var cs []comparator
		for i := 0; i < len(fields); i++ {
			f := fields[i]
			// Allow ">= 22" as well as ">=22".
			if strings.Trim(f, "<>=") == "" && i+1 < len(fields) {
				f += fields[i+1]
				i++
			}
			c, err := parseComparator(f)
			if err != nil {
				return Range{}, fmt.Errorf("range %q: %w", spec, err)
			}
			cs = append(cs, c...)
		}
		r.alts = append(r.alts, cs)
	}
	return r, nil
}

// Match reports whether v satisfies the range. A prerelease version only
// matches a comparator that names the same major.minor.patch with a
// prerelease, as in npm.
func (r Range) Match(v *semver.Version) bool {
	for _, alt := range r.alts {
		if matchAll(alt, v) {
			return true
		}
	}
	return false
}

func matchAll(cs []comparator, v *semver.Version) bool {
	for _, c := range cs {
		if !c.match(v) {
			return false
		}
	}
	if v.Prerelease() == "" {
		return true
	}
	for _, c := range cs {
		if c.v.Prerelease() != "" && c.v.Major() == v.Major() && c.v.Minor() == v.Minor() && c.v.Patch() == v.Patch() {
			return true
		}
	}
	return false
}

func (c comparator) match(v *semver.Version) bool {
	d := v.Compare(c.v)
	switch c.op {
	case "<":
		return d < 0
	case "<=":
		return d <= 0
	case ">":
		return d > 0
	case ">=":
		return d >= 0
	}
	return d == 0
}

// partial is a version with wildcards: n is how many of major, minor,
// patch were given (0 for "*").
type partial struct {
	nums [3]uint64
	n    int
	pre  string
}

func parsePartial(s string) (partial, error) {
	s = strings.TrimPrefix(s, "v")
	s, _, _ = strings.Cut(s, "+")
	core, pre, _ := strings.Cut(s, "-")
	p := partial{pre: pre}
	if core == "*" || core == "x" || core == "X" || core == "" {
		return p, nil
	}
	parts := strings.Split(core, ".")
	if len(parts) > 3 {
		return p, fmt.Errorf("%q is not a version", s)
	}
	for i, part := range parts {
		if part == "*" || part == "x" || part == "X" {
			break
		}
		n, err := strconv.ParseUint(part, 10, 64)
		if err != nil {
			return p, fmt.Errorf("%q is not a version", s)
		}
		p.nums[i] = n
		p.n = i + 1
	}
	if pre != "" && p.n < 3 {
		return p, fmt.Errorf("%q: a prerelease needs a full version", s)
	}
	return p, nil
}

// lowest is the smallest version p covers.
func (p partial) lowest() *semver.Version {
	return semver.New(p.nums[0], p.nums[1], p.nums[2], p.pre, "")
}

// upper returns the smallest version (a "-0" pre-release, as npm writes
// it) above every version p covers.
func (p partial) upper() *semver.Version {
	if p.n == 1 {
		return below(p.nums[0]+1, 0, 0)
	}
	return below(p.nums[0], p.nums[1]+1, 0)
}

// below is the first pre-release of major.minor.patch, the smallest
// version at or above it.
func below(major, minor, patch uint64) *semver.Version {
	return semver.New(major, minor, patch, "0", "")
}

// anyVersion is the comparator every version satisfies.
var anyVersion = []comparator{{">=", semver.New(0, 0, 0, "", "")}}

func parseComparator(f string) ([]comparator, error) {
	var op string
	for _, o := range []string{">=", "<=", ">", "<", "=", "^", "~"} {
		if strings.HasPrefix(f, o) {
			op, f = o, f[len(o):]
			break
		}
	}
	p, err := parsePartial(f)
	if err != nil {
		return nil, err
	}
	lo := p.lowest()
	switch op {
	case "", "=":
		if p.n == 0 {
			return anyVersion, nil
		}
		if p.n == 3 {
			return []comparator{{"=", lo}}, nil
		}
		return []comparator{{">=", lo}, {"<", p.upper()}}, nil
	case "^":
		var hi *semver.Version
		switch {
		case p.n == 0:
			return anyVersion, nil
		case p.nums[0] > 0 || p.n == 1:
			hi = below(p.nums[0]+1, 0, 0)
		case p.nums[1] > 0 || p.n == 2:
			hi = below(0, p.nums[1]+1, 0)
		default:
			hi = below(0, 0, p.nums[2]+1)
		}
		return []comparator{{">=", lo}, {"<", hi}}, nil
	case "~":
		switch p.n {
		case 0:
			return anyVersion, nil
		case 1:
			return []comparator{{">=", lo}, {"<", below(p.nums[0]+1, 0, 0)}}, nil
		}
		return []comparator{{">=", lo}, {"<", below(p.nums[0], p.nums[1]+1, 0)}}, nil
	case ">=":
		return []comparator{{">=", lo}}, nil
	case "<":
		return []comparator{{"<", lo}}, nil
	case ">":
		if p.n < 3 && p.n > 0 {
			return []comparator{{">=", p.upper()}}, nil
		}
		return []comparator{{">", lo}}, nil
	case "<=":
		if p.n < 3 && p.n > 0 {
			return []comparator{{"<", p.upper()}}, nil
		}
		return []comparator{{"<=", lo}}, nil
	}
	return nil, fmt.Errorf("unsupported comparator %q", op+f)
}
