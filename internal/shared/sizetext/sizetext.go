// Package sizetext writes byte counts for people: one decimal in the
// largest binary unit that fits ("8.5MiB"), rounded in the direction that
// keeps a message true — a need never reads smaller than it is (Up), what
// is free never larger (Down).
package sizetext

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Up writes n rounded up: for what something needs.
func Up(n int64) string { return format(n, math.Ceil) }

// Down writes n rounded down: for what there is.
func Down(n int64) string { return format(n, math.Floor) }

func format(n int64, round func(float64) float64) string {
	if n < 0 {
		return "an unknown amount"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%dB", n)
	}
	s := strconv.FormatFloat(round(v*10)/10, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + units[u]
}
