package guestsession

import "sort"

// segment is a run of output bytes from one stream, at an absolute offset.
type segment struct {
	off    int64
	stream Stream
	data   []byte
}

func (s segment) end() int64 { return s.off + int64(len(s.data)) }

// ring keeps the newest bytes of a session's merged output stream, at most
// limit of them, with the absolute offset of each. It is not safe for
// concurrent use; the session's lock guards it.
type ring struct {
	limit int
	segs  []segment // contiguous, oldest first
	size  int       // bytes held in segs
	next  int64     // offset the next byte will get
}

func newRing(limit int) *ring { return &ring{limit: limit} }

// oldest is the offset of the oldest byte still held (next when empty).
func (r *ring) oldest() int64 {
	if len(r.segs) == 0 {
		return r.next
	}
	return r.segs[0].off
}

// add appends p, produced on stream, evicting the oldest bytes to stay
// within limit. It copies p and returns the segment it kept (the tail of p
// when p alone exceeds limit), which is empty when nothing was kept.
func (r *ring) add(stream Stream, p []byte) segment {
	return r.addAt(r.next, stream, p)
}

// addAt appends p at offset off. An off beyond next (output lost before it,
// as in an output log that was compacted) empties the ring first; bytes
// before next are already held and are skipped.
func (r *ring) addAt(off int64, stream Stream, p []byte) segment {
	if off > r.next {
		r.segs, r.size, r.next = nil, 0, off
	}
	if skip := r.next - off; skip > 0 {
		if skip >= int64(len(p)) {
			return segment{}
		}
		p, off = p[skip:], r.next
	}
	r.next = off + int64(len(p))
	if len(p) > r.limit {
		off += int64(len(p) - r.limit)
		p = p[len(p)-r.limit:]
		r.segs, r.size = nil, 0
	}
	if len(p) == 0 {
		return segment{}
	}
	for excess := r.size + len(p) - r.limit; excess > 0; {
		front := &r.segs[0]
		if len(front.data) <= excess {
			excess -= len(front.data)
			r.size -= len(front.data)
			r.segs[0] = segment{}
			r.segs = r.segs[1:]
			continue
		}
		front.data = front.data[excess:]
		front.off += int64(excess)
		r.size -= excess
		excess = 0
	}
	seg := segment{off: off, stream: stream, data: append([]byte(nil), p...)}
	r.segs = append(r.segs, seg)
	r.size += len(p)
	return seg
}

// read returns a copy of the held bytes from offset off to the end of the
// segment holding it, at most max of them; ok is false when off is not
// held (before oldest or at/after next).
func (r *ring) read(off int64, max int) (segment, bool) {
	if off < r.oldest() || off >= r.next {
		return segment{}, false
	}
	i := sort.Search(len(r.segs), func(i int) bool { return r.segs[i].end() > off })
	s := r.segs[i]
	data := s.data[off-s.off:]
	if len(data) > max {
		data = data[:max]
	}
	return segment{off: off, stream: s.stream, data: append([]byte(nil), data...)}, true
}

// all returns the held segments, oldest first (shared, not copied).
func (r *ring) all() []segment { return r.segs }
