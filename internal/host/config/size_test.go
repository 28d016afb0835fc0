package config

import (
	"math"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "2048", want: 2048},
		{in: "2048B", want: 2048},
		{in: "1k", want: 1024},
		{in: "4KiB", want: 4096},
		{in: "512MiB", want: 512 << 20},
		{in: "1024M", want: 1 << 30},
		{in: "1024mb", want: 1 << 30},
		{in: "1GiB", want: 1 << 30},
		{in: "8G", want: 8 << 30},
		{in: "8GB", want: 8 << 30},
		{in: " 4 gib ", want: 4 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "1PiB", want: 1 << 50},
		{in: "7EiB", want: 7 << 60},
		{in: "9223372036854775807", want: math.MaxInt64},
		{in: "", wantErr: `size "" does not start with a whole number: write it like "8GiB", "512MiB" or "2048" (bytes)`},
		{in: "GiB", wantErr: `size "GiB" does not start with a whole number: write it like "8GiB", "512MiB" or "2048" (bytes)`},
		{in: "-1GiB", wantErr: `size "-1GiB" does not start with a whole number: write it like "8GiB", "512MiB" or "2048" (bytes)`},
		{in: "1.5GiB", wantErr: `size "1.5GiB" has a fraction: write it as a whole number of a smaller unit, e.g. "1536MiB" instead of "1.5GiB"`},
		{in: "8 gigs", wantErr: `size "8 gigs" has unknown unit "gigs": use B, KiB, MiB, GiB or TiB`},
		{in: "8EiB", wantErr: `size "8EiB" is too large: sizes must be below 8EiB`},
		{in: "9223372036854775808", wantErr: `size "9223372036854775808" is too large: sizes must be below 8EiB`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseSize(%q) = %d, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{1025 * 1024, "1025KiB"},
		{256 << 20, "256MiB"},
		{1 << 30, "1GiB"},
		{1536 << 20, "1536MiB"},
		{8 << 30, "8GiB"},
		{3 << 40, "3TiB"},
		{1 << 50, "1PiB"},
		{5 << 60, "5EiB"},
		{math.MaxInt64, "9223372036854775807B"},
		{-2048, "-2KiB"},
		{math.MinInt64, "-8EiB"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := FormatSize(tt.in)
			if got != tt.want {
				t.Fatalf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.in < 0 {
				return
			}
			back, err := ParseSize(got)
			if err != nil || back != tt.in {
				t.Fatalf("ParseSize(FormatSize(%d)) = %d, %v; want %d", tt.in, back, err, tt.in)
			}
		})
	}
}
