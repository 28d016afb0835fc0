package eventhub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func newHub(ring, buffer int) *Hub {
	return New(Options{Ring: ring, Buffer: buffer, Epoch: "e1", Now: func() time.Time { return t0 }})
}

func imageEvent(name string) api.Event {
	return api.Event{Kind: api.EventImage, ID: "img-" + name, Name: name, ImageState: &api.Image{Name: name}}
}

// read takes n events from s, failing the test on an error.
func read(t *testing.T, s *Subscription, n int) []api.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []api.Event
	for range n {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("after %d events: %v", len(out), err)
		}
		out = append(out, ev)
	}
	return out
}

// summary is an event as "kind seq name", what the tests compare.
func summary(evs []api.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%s %d %s", ev.Kind, ev.Seq, ev.Name)
	}
	return out
}

func TestPublishStampsAndOrders(t *testing.T) {
	h := newHub(8, 8)
	s, err := h.Subscribe(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, n := range []string{"a", "b", "c"} {
		h.Publish(imageEvent(n))
	}
	got := read(t, s, 4)
	want := []api.Event{
		{Kind: api.EventHello, Epoch: "e1", Seq: 0, Time: t0},
		{Seq: 1, Epoch: "e1", Time: t0, Kind: api.EventImage, ID: "img-a", Name: "a", ImageState: &api.Image{Name: "a"}},
		{Seq: 2, Epoch: "e1", Time: t0, Kind: api.EventImage, ID: "img-b", Name: "b", ImageState: &api.Image{Name: "b"}},
		{Seq: 3, Epoch: "e1", Time: t0, Kind: api.EventImage, ID: "img-c", Name: "c", ImageState: &api.Image{Name: "c"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
	if h.Seq() != 3 || h.Epoch() != "e1" {
		t.Errorf("hub at seq %d epoch %q, want 3 e1", h.Seq(), h.Epoch())
	}
	// A time set by the publisher is kept.
	at := t0.Add(-time.Hour)
	ev := imageEvent("d")
	ev.Time = at
	h.Publish(ev)
	if got := read(t, s, 1)[0]; !got.Time.Equal(at) {
		t.Errorf("publisher's time %v replaced by %v", at, got.Time)
	}
}

func TestSubscribeResume(t *testing.T) {
	// A ring of 4 after 6 publishes holds seq 3..6.
	tests := []struct {
		name string
		r    *Resume
		want []string
	}{
		{"live", nil, []string{"hello 6 "}},
		{"resume at the head", &Resume{Since: 6, Epoch: "e1"}, []string{"hello 6 "}},
		{"resume inside the ring", &Resume{Since: 3, Epoch: "e1"}, []string{"hello 3 ", "image 4 n4", "image 5 n5", "image 6 n6"}},
		{"resume at the ring's edge", &Resume{Since: 2, Epoch: "e1"}, []string{"hello 2 ", "image 3 n3", "image 4 n4", "image 5 n5", "image 6 n6"}},
		{"gap: seq 2 is gone", &Resume{Since: 1, Epoch: "e1"}, []string{"hello 6 ", "reset 6 "}},
		{"gap from the start", &Resume{Since: 0, Epoch: "e1"}, []string{"hello 6 ", "reset 6 "}},
		{"another epoch", &Resume{Since: 5, Epoch: "e0"}, []string{"hello 6 ", "reset 6 "}},
		{"no epoch means this one", &Resume{Since: 5}, []string{"hello 5 ", "image 6 n6"}},
		{"seq from the future", &Resume{Since: 9, Epoch: "e1"}, []string{"hello 6 ", "reset 6 "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(4, 8)
			for i := 1; i <= 6; i++ {
				h.Publish(imageEvent(fmt.Sprintf("n%d", i)))
			}
			s, err := h.Subscribe(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := summary(read(t, s, len(tt.want)))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("stream (-want +got):\n%s", diff)
			}
			// Then the stream is live.
			h.Publish(imageEvent("live"))
			if ev := read(t, s, 1)[0]; ev.Name != "live" || ev.Seq != h.Seq() {
				t.Errorf("after the backlog got %s %d %s, want the live event %d", ev.Kind, ev.Seq, ev.Name, h.Seq())
			}
		})
	}
}

func TestResumeOnEmptyHub(t *testing.T) {
	h := newHub(4, 8)
	s, err := h.Subscribe(&Resume{Since: 0, Epoch: "e1"})
	if err != nil {
		t.Fatal(err)
	}
	h.Publish(imageEvent("first"))
	if diff := cmp.Diff([]string{"hello 0 ", "image 1 first"}, summary(read(t, s, 2))); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
}

// TestSlowSubscriberIsCutOff: a reader that does not keep up loses its
// subscription (the publisher does not wait), gets what was buffered and
// then ErrSlow, and can resume without a reset while the ring still holds
// what it missed; a reader that keeps up is not affected.
func TestSlowSubscriberIsCutOff(t *testing.T) {
	var logged bytes.Buffer
	h := New(Options{Ring: 16, Buffer: 2, Epoch: "e1", Now: func() time.Time { return t0 },
		Log: slog.New(slog.NewTextHandler(&logged, nil))})
	slow, _ := h.Subscribe(nil)
	fast, _ := h.Subscribe(nil)
	read(t, fast, 1) // hello
	published := make(chan struct{})
	go func() {
		for i := 1; i <= 5; i++ {
			h.Publish(imageEvent(fmt.Sprintf("n%d", i)))
			read(t, fast, 1)
		}
		close(published)
	}()
	select {
	case <-published:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing blocked on a subscriber that does not read")
	}
	got := summary(read(t, slow, 3))
	if diff := cmp.Diff([]string{"hello 0 ", "image 1 n1", "image 2 n2"}, got); diff != "" {
		t.Errorf("slow stream (-want +got):\n%s", diff)
	}
	if _, err := slow.Next(context.Background()); !errors.Is(err, ErrSlow) {
		t.Fatalf("after its buffer the slow reader got %v, want ErrSlow", err)
	}
	if _, err := slow.Next(context.Background()); !errors.Is(err, ErrSlow) {
		t.Errorf("a cut-off subscription must keep answering ErrSlow, got %v", err)
	}
	if n := strings.Count(logged.String(), "fell too far behind and was cut off"); n != 1 {
		t.Errorf("the cut-off was logged %d times, want once:\n%s", n, logged.String())
	}
	again, _ := h.Subscribe(&Resume{Since: 2, Epoch: h.Epoch()})
	if diff := cmp.Diff([]string{"hello 2 ", "image 3 n3", "image 4 n4", "image 5 n5"}, summary(read(t, again, 4))); diff != "" {
		t.Errorf("resumed stream (-want +got):\n%s", diff)
	}
}

func TestCloseAndCancel(t *testing.T) {
	h := newHub(4, 4)
	s, _ := h.Subscribe(nil)
	read(t, s, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with an ended context: %v, want context.Canceled", err)
	}
	h.Publish(imageEvent("before-close"))
	h.Close()
	if ev := read(t, s, 1)[0]; ev.Name != "before-close" {
		t.Errorf("the event buffered before Close was lost: got %+v", ev)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	if _, err := h.Subscribe(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	h.Publish(imageEvent("after-close")) // dropped, must not panic
	if h.Seq() != 1 {
		t.Errorf("a publish after Close was numbered: seq %d", h.Seq())
	}
	s.Close() // closing twice is harmless
}

// TestConcurrentPublishersAndReaders: under many publishers every reader
// sees each Seq exactly once, in order, and each publisher's events in
// the order it published them. Run with -race.
func TestConcurrentPublishersAndReaders(t *testing.T) {
	const publishers, each, readers = 8, 500, 4
	h := newHub(publishers*each, publishers*each+1)
	var subs []*Subscription
	for range readers {
		s, _ := h.Subscribe(&Resume{Since: 0, Epoch: h.Epoch()})
		subs = append(subs, s)
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				h.Publish(api.Event{Kind: api.EventOperation, ID: fmt.Sprintf("p%d", p), Name: fmt.Sprint(i)})
			}
		}()
	}
	errs := make(chan error, readers)
	for _, s := range subs {
		go func() {
			evs := make([]api.Event, 0, publishers*each)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := s.Next(ctx); err != nil { // hello
				errs <- err
				return
			}
			for len(evs) < publishers*each {
				ev, err := s.Next(ctx)
				if err != nil {
					errs <- err
					return
				}
				evs = append(evs, ev)
			}
			errs <- checkOrder(evs)
		}()
	}
	wg.Wait()
	for range readers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// A late resume from 0 reads the same history from the ring.
	late, _ := h.Subscribe(&Resume{Since: 0, Epoch: h.Epoch()})
	if err := checkOrder(read(t, late, publishers*each+1)[1:]); err != nil {
		t.Errorf("resumed history: %v", err)
	}
}

func checkOrder(evs []api.Event) error {
	next := map[string]int{}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			return fmt.Errorf("event %d has seq %d", i, ev.Seq)
		}
		if want := fmt.Sprint(next[ev.ID]); ev.Name != want {
			return fmt.Errorf("publisher %s: event %s arrived where %s was due", ev.ID, ev.Name, want)
		}
		next[ev.ID]++
	}
	return nil
}

// BenchmarkPublish measures publishing with n subscribers that drain
// their streams as fast as they can (a reader cut off for falling behind
// resubscribes; "cutoffs" counts how often that happened).
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{0, 1, 16} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h := New(Options{Buffer: DefaultBuffer})
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var cutoffs atomic.Int64
			for range n {
				s, _ := h.Subscribe(nil)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						if _, err := s.Next(ctx); err != nil {
							if errors.Is(err, ErrSlow) {
								cutoffs.Add(1)
								s, _ = h.Subscribe(nil)
								if s != nil {
									continue
								}
							}
							return
						}
					}
				}()
			}
			ev := imageEvent("bench")
			b.ResetTimer()
			for range b.N {
				h.Publish(ev)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(cutoffs.Load()), "cutoffs")
			cancel()
			h.Close()
			wg.Wait()
		})
	}
}
