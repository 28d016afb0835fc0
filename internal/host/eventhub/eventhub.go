// Package eventhub owns bangerd's daemon-wide change feed in memory: it
// numbers each published api.Event (Seq, within the daemon's random
// Epoch), keeps the most recent ones in a bounded ring so that a client
// whose stream broke can resume where it left off, and fans every event
// out to the subscribers of GET /v1/events. Publishing never blocks and
// memory stays bounded: a subscriber whose buffer is full is cut off
// (ErrSlow) instead of holding up the publisher; it resumes from its last
// Seq and is told to re-list (an EventReset) only when the ring no longer
// holds what it missed.
package eventhub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/bangerdev/banger/api"
)

// Default sizes: the ring kept for resume, and each subscriber's buffer of
// events published but not yet taken by its stream.
const (
	DefaultRing   = 4096
	DefaultBuffer = 256
)

// ErrSlow ends a subscription whose reader fell more than its buffer
// behind the publishers. The events it had buffered are still delivered
// first; the client then resumes from the last Seq it saw.
var ErrSlow = errors.New("the event stream fell too far behind and was cut off: resume it from the last seq seen")

// ErrClosed ends every subscription when the hub closes (the daemon is
// shutting down).
var ErrClosed = errors.New("the daemon is shutting down")

// Hub is the feed. Its methods are safe for concurrent use.
type Hub struct {
	epoch  string
	buffer int
	now    func() time.Time
	log    *slog.Logger

	mu     sync.Mutex
	seq    uint64      // Seq of the last published event
	ring   []api.Event // circular; ring[(first+i)%len] for i < n
	first  int
	n      int
	subs   map[*Subscription]struct{}
	closed bool
}

// Options size a hub; zero values mean the defaults.
type Options struct {
	Ring   int              // events kept for resume
	Buffer int              // per-subscriber buffer
	Epoch  string           // "" means a fresh random one
	Now    func() time.Time // stamps Event.Time; nil means time.Now
	Log    *slog.Logger     // where cut-offs are logged; nil discards
}

// New returns an empty hub with a fresh epoch.
func New(o Options) *Hub {
	if o.Ring <= 0 {
		o.Ring = DefaultRing
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.Epoch == "" {
		b := make([]byte, 8)
		rand.Read(b)
		o.Epoch = hex.EncodeToString(b)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Hub{epoch: o.Epoch, buffer: o.Buffer, now: o.Now, log: o.Log, ring: make([]api.Event, o.Ring),
		subs: map[*Subscription]struct{}{}}
}

// Epoch is this hub's (this daemon run's) epoch.
func (h *Hub) Epoch() string { return h.epoch }

// Seq is the Seq of the last published event (0 before the first).
func (h *Hub) Seq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// Publish stamps ev with the next Seq, the epoch and (when unset) the
// time, keeps it for resume and hands it to every subscriber. It never
// blocks on a subscriber. The hub keeps ev, and subscribers share it:
// the caller must not change what its state pointers point to afterwards.
func (h *Hub) Publish(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.seq++
	ev.Seq, ev.Epoch = h.seq, h.epoch
	if ev.Time.IsZero() {
		ev.Time = h.now().UTC()
	}
	if h.n < len(h.ring) {
		h.ring[(h.first+h.n)%len(h.ring)] = ev
		h.n++
	} else {
		h.ring[h.first] = ev
		h.first = (h.first + 1) % len(h.ring)
	}
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			h.log.Warn("an event subscriber fell too far behind and was cut off; it resumes from its last seq",
				"seq", h.seq, "buffer", h.buffer)
			h.dropLocked(s, ErrSlow)
		}
	}
}

// dropLocked ends a subscription: nothing more is sent to it, and its
// reader gets err once it has taken what was buffered.
func (h *Hub) dropLocked(s *Subscription, err error) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	s.err = err
	close(s.done)
}

// Close ends every subscription with ErrClosed and refuses new ones;
// later publishes are dropped.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.dropLocked(s, ErrClosed)
	}
}

// Resume says where a subscription starts: zero means live from now;
// otherwise every kept event after Since of epoch Epoch.
type Resume struct {
	// Since is the Seq of the last event the client saw.
	Since uint64
	// Epoch is the epoch Since belongs to; "" takes it as this hub's.
	Epoch string
}

// Subscription is one reader of the feed.
type Subscription struct {
	h       *Hub
	pending []api.Event    // hello, then a reset or the backlog
	ch      chan api.Event // live events
	done    chan struct{}  // closed when the hub drops it
	err     error          // why, set before done is closed
}

// Subscribe starts a subscription. Its first event is an EventHello
// carrying the epoch and the Seq the stream starts after; when r asks to
// resume, every kept event after r.Since follows, or, if the epoch is
// another one or those events are no longer kept, an EventReset and
// then live events. Registering and reading the backlog happen under one
// lock, so no event is missed or repeated between them.
func (h *Hub) Subscribe(r *Resume) (*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	s := &Subscription{h: h, ch: make(chan api.Event, h.buffer), done: make(chan struct{})}
	now := h.now().UTC()
	hello := api.Event{Kind: api.EventHello, Epoch: h.epoch, Seq: h.seq, Time: now}
	switch {
	case r == nil:
		s.pending = []api.Event{hello}
	case h.canResumeLocked(*r):
		hello.Seq = r.Since
		s.pending = append([]api.Event{hello}, h.afterLocked(r.Since)...)
	default:
		s.pending = []api.Event{hello, {Kind: api.EventReset, Epoch: h.epoch, Seq: h.seq, Time: now}}
	}
	h.subs[s] = struct{}{}
	return s, nil
}

// canResumeLocked: r is of this epoch, not from the future, and every
// event after r.Since is still in the ring.
func (h *Hub) canResumeLocked(r Resume) bool {
	if r.Epoch != "" && r.Epoch != h.epoch {
		return false
	}
	if r.Since > h.seq {
		return false
	}
	oldest := h.seq - uint64(h.n) + 1 // Seq of ring's first event (seq+1 when empty)
	return r.Since+1 >= oldest
}

func (h *Hub) afterLocked(since uint64) []api.Event {
	skip := int(since - (h.seq - uint64(h.n)))
	out := make([]api.Event, 0, h.n-skip)
	for i := skip; i < h.n; i++ {
		out = append(out, h.ring[(h.first+i)%len(h.ring)])
	}
	return out
}

// Next returns the next event: the hello and backlog first, then live
// events as they are published. It returns ctx's error when ctx ends,
// and ErrSlow or ErrClosed, after the events buffered before that, when
// the hub dropped the subscription.
func (s *Subscription) Next(ctx context.Context) (api.Event, error) {
	if len(s.pending) > 0 {
		ev := s.pending[0]
		s.pending = s.pending[1:]
		return ev, nil
	}
	select {
	case ev := <-s.ch:
		return ev, nil
	default:
	}
	select {
	case ev := <-s.ch:
		return ev, nil
	case <-s.done:
		// Nothing is sent after done closes: what is buffered is all.
		select {
		case ev := <-s.ch:
			return ev, nil
		default:
			return api.Event{}, s.err
		}
	case <-ctx.Done():
		return api.Event{}, ctx.Err()
	}
}

// Close ends the subscription; the hub forgets it.
func (s *Subscription) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.dropLocked(s, ErrClosed)
}
