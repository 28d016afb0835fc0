package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// feedScript is what a scripted daemon answers one GET /v1/events with.
type feedScript struct {
	wantURI string
	status  int         // 0 means 200
	lines   []api.Event // written one by one
	hold    bool        // keep the stream open until the client goes
}

// scriptedFeed is a daemon on a Unix socket that answers successive
// event streams from a script and records the URIs it was asked.
type scriptedFeed struct {
	sock string
	mu   sync.Mutex
	next []feedScript
	uris []string
}

func startScriptedFeed(t *testing.T, scripts ...feedScript) *scriptedFeed {
	t.Helper()
	f := &scriptedFeed{sock: daemontest.ShortTempDir(t) + "/bangerd.sock", next: scripts}
	l, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.uris = append(f.uris, r.RequestURI)
		if len(f.next) == 0 {
			f.mu.Unlock()
			http.Error(w, `{"error":{"code":"internal","message":"script exhausted"}}`, 500)
			return
		}
		s := f.next[0]
		f.next = f.next[1:]
		f.mu.Unlock()
		if s.wantURI != r.RequestURI {
			t.Errorf("stream asked for %s, want %s", r.RequestURI, s.wantURI)
		}
		if s.status != 0 {
			w.WriteHeader(s.status)
			w.Write([]byte(`{"error":{"code":"unavailable","message":"scripted refusal"}}`))
			return
		}
		for _, ev := range s.lines {
			json.NewEncoder(w).Encode(ev)
			w.(http.Flusher).Flush()
		}
		if s.hold {
			<-r.Context().Done()
		}
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

func (f *scriptedFeed) connect(context.Context) (*client.Client, error) {
	return client.New(f.sock), nil
}

func hello(epoch string, seq uint64) api.Event {
	return api.Event{Kind: api.EventHello, Epoch: epoch, Seq: seq}
}

func change(epoch string, seq uint64, kind api.EventKind, name string) api.Event {
	return api.Event{Kind: kind, Epoch: epoch, Seq: seq, Name: name}
}

// item renders a FeedItem for comparison.
func item(it FeedItem) string {
	switch it := it.(type) {
	case api.Event:
		return fmt.Sprintf("%s %s/%d %s", it.Kind, it.Epoch, it.Seq, it.Name)
	case Disconnected:
		if it.Err == nil {
			return "disconnected without a reason"
		}
		return "disconnected"
	case Reconnected:
		return fmt.Sprintf("reconnected reset=%v first=%v at %s/%d", it.Reset, it.First, it.Epoch, it.Seq)
	default:
		return fmt.Sprintf("unknown item %T", it)
	}
}

// cutAt drops the " at EPOCH/SEQ" of rendered Reconnected items.
func cutAt(items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i], _, _ = strings.Cut(s, " at ")
	}
	return out
}

// TestFollowResumes plays a daemon whose stream breaks in every way a
// front end meets: each reconnection resumes after the last event
// delivered; a resume the daemon honours is no reset; a gap, a failed
// attempt and a restarted daemon (new epoch) are handled; hello and reset
// lines never reach the front end; one Disconnected per outage; the
// waits between attempts back off.
func TestFollowResumes(t *testing.T) {
	f := startScriptedFeed(t,
		feedScript{wantURI: "/v1/events", lines: []api.Event{hello("e1", 0), change("e1", 1, api.EventVM, "a"), change("e1", 2, api.EventImage, "b")}},
		feedScript{wantURI: "/v1/events?epoch=e1&since=2", lines: []api.Event{hello("e1", 2), change("e1", 3, api.EventOperation, "")}},
		// The daemon no longer keeps 4..9.
		feedScript{wantURI: "/v1/events?epoch=e1&since=3", lines: []api.Event{hello("e1", 9), {Kind: api.EventReset, Epoch: "e1", Seq: 9}, change("e1", 10, api.EventVM, "a")}},
		feedScript{wantURI: "/v1/events?epoch=e1&since=10", status: 503},
		// A restarted daemon: a new epoch.
		feedScript{wantURI: "/v1/events?epoch=e1&since=10", lines: []api.Event{hello("e2", 0), {Kind: api.EventReset, Epoch: "e2"}, change("e2", 1, api.EventSession, "s")}, hold: true},
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var items []string
	var waits []time.Duration
	fl := follower{connect: f.connect, sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil },
		fn: func(it FeedItem) {
			items = append(items, item(it))
			if ev, ok := it.(api.Event); ok && ev.Epoch == "e2" {
				cancel()
			}
		}}
	if err := fl.run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Follow returned %v, want context.Canceled", err)
	}
	want := []string{
		"reconnected reset=true first=true at e1/0", "vm e1/1 a", "image e1/2 b",
		"disconnected", "reconnected reset=false first=false at e1/2", "operation e1/3 ",
		"disconnected", "reconnected reset=true first=false at e1/9", "vm e1/10 a",
		"disconnected", "reconnected reset=true first=false at e2/0", "session e2/1 s",
	}
	if diff := cmp.Diff(want, items); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Duration{minBackoff, minBackoff, minBackoff, 2 * minBackoff}, waits); diff != "" {
		t.Errorf("waits between attempts (-want +got):\n%s", diff)
	}
}

// TestFollowFromResumes: FollowFrom asks for the given point, and a
// daemon that still has it is no reset.
func TestFollowFromResumes(t *testing.T) {
	f := startScriptedFeed(t,
		feedScript{wantURI: "/v1/events?epoch=e7&since=41", lines: []api.Event{hello("e7", 41), change("e7", 42, api.EventVM, "a")}, hold: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var items []string
	err := FollowFrom(ctx, 41, "e7", f.connect, func(it FeedItem) {
		items = append(items, item(it))
		if _, ok := it.(api.Event); ok {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("FollowFrom returned %v", err)
	}
	if diff := cmp.Diff([]string{"reconnected reset=false first=true at e7/41", "vm e7/42 a"}, items); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
}

// TestFollowBacksOff: while no daemon can be reached, Follow says so once
// and retries with waits that double up to maxBackoff; it never spins.
func TestFollowBacksOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	away := errors.New("no daemon (test)")
	var items []string
	var waits []time.Duration
	attempts := 0
	fl := follower{
		connect: func(context.Context) (*client.Client, error) { attempts++; return nil, away },
		fn:      func(it FeedItem) { items = append(items, item(it)) },
		sleep: func(_ context.Context, d time.Duration) error {
			waits = append(waits, d)
			if len(waits) == 8 {
				cancel()
				return ctx.Err()
			}
			return nil
		},
	}
	if err := fl.run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("run returned %v, want context.Canceled", err)
	}
	ms := time.Millisecond
	if diff := cmp.Diff([]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms, 2000 * ms}, waits); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"disconnected"}, items); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	if attempts != 8 {
		t.Errorf("%d connection attempts for 8 waits", attempts)
	}
}

// TestFollowAcrossDaemonRestart runs Follow against a real bangerd (fake
// hypervisor) that is stopped and started again on the same root: the
// front end sees its VM created, then Disconnected, then Reconnected with
// Reset (the new daemon has a new epoch), then the new daemon's events.
func TestFollowAcrossDaemonRestart(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	sock := d.Config.Paths.Socket()
	items := make(chan FeedItem, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, func(context.Context) (*client.Client, error) { return client.New(sock), nil },
			func(it FeedItem) { items <- it })
	}()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	}()
	// await returns the items up to the first that matches.
	await := func(what string, match func(FeedItem) bool) []FeedItem {
		t.Helper()
		var seen []FeedItem
		for {
			select {
			case it := <-items:
				seen = append(seen, it)
				if match(it) {
					return seen
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no %s within 30s; saw %v", what, seen)
			}
		}
	}
	vmEvent := func(name string, removed bool) func(FeedItem) bool {
		return func(it FeedItem) bool {
			ev, ok := it.(api.Event)
			return ok && ev.Kind == api.EventVM && ev.Name == name && ev.Removed == removed &&
				(removed || ev.VMState.State == api.VMRunning)
		}
	}

	first := await("first connection", func(it FeedItem) bool { _, ok := it.(Reconnected); return ok })
	if r := first[0].(Reconnected); len(first) != 1 || !r.Reset || !r.First || r.Epoch == "" {
		t.Fatalf("start: %v, want one Reconnected{Reset, First} with the epoch", first)
	}
	d.CreateVM(t, api.CreateVMRequest{Name: "feedvm", Image: daemontest.FakeImage})
	before := await("feedvm running", vmEvent("feedvm", false))
	oldEpoch := before[len(before)-1].(api.Event).Epoch

	d.Restart(t)
	var outage []string
	for _, it := range await("reconnection", func(it FeedItem) bool { _, ok := it.(Reconnected); return ok }) {
		if _, ok := it.(api.Event); !ok {
			outage = append(outage, item(it))
		}
	}
	if diff := cmp.Diff([]string{"disconnected", "reconnected reset=true first=false"}, cutAt(outage)); diff != "" {
		t.Errorf("across the restart (-want +got):\n%s", diff)
	}
	if err := d.Client.DeleteVM(context.Background(), "feedvm"); err != nil {
		t.Fatal(err)
	}
	after := await("feedvm removed", vmEvent("feedvm", true))
	if ev := after[len(after)-1].(api.Event); ev.Epoch == oldEpoch || ev.Epoch == "" {
		t.Errorf("the new daemon's event has epoch %q, the old one's was %q", ev.Epoch, oldEpoch)
	}
}
