package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Binary size units.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
	TiB int64 = 1 << 40
)

// unitMultiplier returns the multiplier of a lower-cased unit suffix. Every
// unit is binary: "8G", "8GB" and "8GiB" all mean 8·2³⁰ bytes, as in Docker
// and QEMU.
func unitMultiplier(unit string) (int64, bool) {
	switch unit {
	case "", "b":
		return 1, true
	case "k", "kb", "kib":
		return KiB, true
	case "m", "mb", "mib":
		return MiB, true
	case "g", "gb", "gib":
		return GiB, true
	case "t", "tb", "tib":
		return TiB, true
	case "p", "pb", "pib":
		return 1 << 50, true
	case "e", "eb", "eib":
		return 1 << 60, true
	}
	return 0, false
}

// ParseSize parses a byte size: a whole number followed by an optional binary
// unit, case-insensitive, with optional space between ("512MiB", "1GiB",
// "8G", "1024M", "4 gib"). A bare number is bytes ("2048"). K, M, G, T, P and
// E with or without "B" or "iB" are all powers of 1024.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q does not start with a whole number: write it like \"8GiB\", \"512MiB\" or \"2048\" (bytes)", s)
	}
	if i < len(t) && t[i] == '.' {
		return 0, fmt.Errorf("size %q has a fraction: write it as a whole number of a smaller unit, e.g. \"1536MiB\" instead of \"1.5GiB\"", s)
	}
	unit := strings.TrimSpace(t[i:])
	mult, ok := unitMultiplier(lowerASCII(unit))
	if !ok {
		return 0, fmt.Errorf("size %q has unknown unit %q: use B, KiB, MiB, GiB or TiB", s, unit)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("size %q: %w", s, err)
		}
		return 0, fmt.Errorf("size %q is too large: sizes must be below 8EiB", s)
	}
	return n * mult, nil
}

// FormatSize renders n in the largest binary unit that divides it exactly
// ("8GiB", "1536MiB", "1000B"). ParseSize reads the result back to n.
func FormatSize(n int64) string {
	if n == 0 {
		return "0B"
	}
	if n < 0 {
		if n == math.MinInt64 {
			return "-8EiB"
		}
		return "-" + FormatSize(-n)
	}
	for _, u := range []struct {
		shift uint
		name  string
	}{{60, "EiB"}, {50, "PiB"}, {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n&(1<<u.shift-1) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// lowerASCII lower-cases ASCII letters only: strings.ToLower would also
// fold look-alikes such as U+212A KELVIN SIGN into a unit.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
