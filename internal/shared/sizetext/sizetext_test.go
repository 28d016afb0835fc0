package sizetext

import "testing"

func TestUpDown(t *testing.T) {
	for _, tt := range []struct {
		n        int64
		up, down string
	}{
		{-1, "an unknown amount", "an unknown amount"},
		{0, "0B", "0B"},
		{1023, "1023B", "1023B"},
		{1024, "1KiB", "1KiB"},
		{11<<30 - 1, "11GiB", "10.9GiB"},
		{8<<20 + 512<<10, "8.5MiB", "8.5MiB"},
		{3<<40 + 1, "3.1TiB", "3TiB"},
	} {
		if got := Up(tt.n); got != tt.up {
			t.Errorf("Up(%d) = %q, want %q", tt.n, got, tt.up)
		}
		if got := Down(tt.n); got != tt.down {
			t.Errorf("Down(%d) = %q, want %q", tt.n, got, tt.down)
		}
	}
}
