package guestsession

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

type ringWrite struct {
	off    int64 // -1: at the end (add)
	stream Stream
	data   string
}

type heldSeg struct {
	Off    int64
	Stream Stream
	Data   string
}

func TestRing(t *testing.T) {
	tests := []struct {
		name       string
		limit      int
		writes     []ringWrite
		wantHeld   []heldSeg
		wantOldest int64
		wantNext   int64
	}{
		{
			name:       "fits",
			limit:      8,
			writes:     []ringWrite{{-1, StreamStdout, "abc"}, {-1, StreamStderr, "de"}},
			wantHeld:   []heldSeg{{0, StreamStdout, "abc"}, {3, StreamStderr, "de"}},
			wantOldest: 0, wantNext: 5,
		},
		{
			name:       "evicts whole segments and trims the front one",
			limit:      4,
			writes:     []ringWrite{{-1, StreamStdout, "ab"}, {-1, StreamStderr, "cd"}, {-1, StreamStdout, "efg"}},
			wantHeld:   []heldSeg{{3, StreamStderr, "d"}, {4, StreamStdout, "efg"}},
			wantOldest: 3, wantNext: 7,
		},
		{
			name:       "one write larger than the ring keeps its tail",
			limit:      4,
			writes:     []ringWrite{{-1, StreamStdout, "ab"}, {-1, StreamStdout, "0123456789"}},
			wantHeld:   []heldSeg{{8, StreamStdout, "6789"}},
			wantOldest: 8, wantNext: 12,
		},
		{
			name:       "loading past a hole starts over",
			limit:      8,
			writes:     []ringWrite{{0, StreamStdout, "ab"}, {10, StreamTTY, "xyz"}},
			wantHeld:   []heldSeg{{10, StreamTTY, "xyz"}},
			wantOldest: 10, wantNext: 13,
		},
		{
			name:       "loading overlap skips what is held",
			limit:      8,
			writes:     []ringWrite{{0, StreamStdout, "abcd"}, {2, StreamStdout, "cdef"}},
			wantHeld:   []heldSeg{{0, StreamStdout, "abcd"}, {4, StreamStdout, "ef"}},
			wantOldest: 0, wantNext: 6,
		},
		{
			name:       "empty",
			limit:      8,
			wantOldest: 0, wantNext: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRing(tt.limit)
			for _, w := range tt.writes {
				if w.off < 0 {
					r.add(w.stream, []byte(w.data))
				} else {
					r.addAt(w.off, w.stream, []byte(w.data))
				}
			}
			var held []heldSeg
			for _, s := range r.all() {
				held = append(held, heldSeg{s.off, s.stream, string(s.data)})
			}
			if diff := cmp.Diff(tt.wantHeld, held); diff != "" {
				t.Errorf("held (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([2]int64{tt.wantOldest, tt.wantNext}, [2]int64{r.oldest(), r.next}); diff != "" {
				t.Errorf("[oldest, next] (-want +got):\n%s", diff)
			}
			if r.size > tt.limit {
				t.Errorf("holds %d bytes, limit %d", r.size, tt.limit)
			}
		})
	}
}

func TestRingRead(t *testing.T) {
	r := newRing(6)
	r.add(StreamStdout, []byte("abcd"))
	r.add(StreamStderr, []byte("efgh")) // evicts "ab": holds cd|efgh at 2..8

	tests := []struct {
		name   string
		off    int64
		max    int
		want   heldSeg
		wantOK bool
	}{
		{name: "evicted", off: 1, max: 10},
		{name: "segment start", off: 2, max: 10, want: heldSeg{2, StreamStdout, "cd"}, wantOK: true},
		{name: "inside a segment", off: 5, max: 10, want: heldSeg{5, StreamStderr, "fgh"}, wantOK: true},
		{name: "capped", off: 4, max: 2, want: heldSeg{4, StreamStderr, "ef"}, wantOK: true},
		{name: "at the end", off: 8, max: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := r.read(tt.off, tt.max)
			got := heldSeg{s.off, s.stream, string(s.data)}
			if diff := cmp.Diff(tt.want, got); diff != "" || ok != tt.wantOK {
				t.Errorf("read(%d, %d) = %v, %v; want %v, %v", tt.off, tt.max, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
