package npmfetch

import (
	"fmt"
	"strconv"
	"strings"
)

// semver is a parsed version: major.minor.patch[-prerelease][+build].
type semver struct {
	major, minor, patch int
	pre                 []string // prerelease identifiers; none for a release
	raw                 string
}

func parseSemver(s string) (semver, error) {
	raw := s
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	s, _, _ = strings.Cut(s, "+")
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return semver{}, fmt.Errorf("%q is not a version like 1.2.3", raw)
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p == "" {
			return semver{}, fmt.Errorf("%q is not a version like 1.2.3", raw)
		}
		nums[i] = n
	}
	v := semver{major: nums[0], minor: nums[1], patch: nums[2], raw: raw}
	if hasPre {
		if pre == "" {
			return semver{}, fmt.Errorf("%q has an empty prerelease part", raw)
		}
		v.pre = strings.Split(pre, ".")
	}
	return v, nil
}

// compare orders versions by semver precedence.
func (v semver) compare(o semver) int {
	for _, d := range [3]int{v.major - o.major, v.minor - o.minor, v.patch - o.patch} {
		if d != 0 {
			return sign(d)
		}
	}
	switch {
	case len(v.pre) == 0 && len(o.pre) == 0:
		return 0
	case len(v.pre) == 0:
		return 1
	case len(o.pre) == 0:
		return -1
	}
	for i := 0; i < len(v.pre) && i < len(o.pre); i++ {
		a, b := v.pre[i], o.pre[i]
		an, aerr := strconv.Atoi(a)
		bn, berr := strconv.Atoi(b)
		switch {
		case aerr == nil && berr == nil:
			if an != bn {
				return sign(an - bn)
			}
		case aerr == nil:
			return -1 // numeric identifiers sort first
		case berr == nil:
			return 1
		default:
			if c := strings.Compare(a, b); c != 0 {
				return c
			}
		}
	}
	return sign(len(v.pre) - len(o.pre))
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// Range is a parsed version range: a set of alternatives ("||"), each a
// set of comparators that must all hold.
type Range struct {
	alts [][]comparator
	spec string
}

type comparator struct {
	op string // one of = < <= > >=
	v  semver
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
func (r Range) Match(v semver) bool {
	for _, alt := range r.alts {
		if matchAll(alt, v) {
			return true
		}
	}
	return false
}

func matchAll(cs []comparator, v semver) bool {
	for _, c := range cs {
		if !c.match(v) {
			return false
		}
	}
	if len(v.pre) == 0 {
		return true
	}
	for _, c := range cs {
		if len(c.v.pre) > 0 && c.v.major == v.major && c.v.minor == v.minor && c.v.patch == v.patch {
			return true
		}
	}
	return false
}

func (c comparator) match(v semver) bool {
	d := v.compare(c.v)
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
	nums [3]int
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
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
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

func (p partial) version() semver {
	v := semver{major: p.nums[0], minor: p.nums[1], patch: p.nums[2]}
	if p.pre != "" {
		v.pre = strings.Split(p.pre, ".")
	}
	return v
}

// upper returns the smallest release above every version p covers.
func (p partial) upper() semver {
	switch p.n {
	case 1:
		return semver{major: p.nums[0] + 1, pre: []string{"0"}}
	case 2:
		return semver{major: p.nums[0], minor: p.nums[1] + 1, pre: []string{"0"}}
	}
	return semver{}
}

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
	lo := p.version()
	switch op {
	case "", "=":
		if p.n == 0 {
			return []comparator{{">=", semver{}}}, nil
		}
		if p.n == 3 {
			return []comparator{{"=", lo}}, nil
		}
		return []comparator{{">=", lo}, {"<", p.upper()}}, nil
	case "^":
		var hi semver
		switch {
		case p.n == 0:
			return []comparator{{">=", semver{}}}, nil
		case p.nums[0] > 0 || p.n == 1:
			hi = semver{major: p.nums[0] + 1}
		case p.nums[1] > 0 || p.n == 2:
			hi = semver{minor: p.nums[1] + 1}
		default:
			hi = semver{patch: p.nums[2] + 1}
		}
		hi.pre = []string{"0"}
		return []comparator{{">=", lo}, {"<", hi}}, nil
	case "~":
		switch p.n {
		case 0:
			return []comparator{{">=", semver{}}}, nil
		case 1:
			return []comparator{{">=", lo}, {"<", semver{major: p.nums[0] + 1, pre: []string{"0"}}}}, nil
		}
		return []comparator{{">=", lo}, {"<", semver{major: p.nums[0], minor: p.nums[1] + 1, pre: []string{"0"}}}}, nil
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
