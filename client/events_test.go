package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
)

func feedLine(t *testing.T, ev api.Event) string {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// TestEvents checks the request each resume point makes and what the
// client makes of the answer: lines split across writes, a stream the
// daemon ends, a line cut short, an oversized line, an error answer.
func TestEvents(t *testing.T) {
	hello := feedLine(t, api.Event{Kind: api.EventHello, Epoch: "e1", Seq: 4})
	vm := feedLine(t, api.Event{Kind: api.EventVM, Epoch: "e1", Seq: 5, Name: "web", VMState: &api.VM{Name: "web", State: api.VMRunning}})
	img := feedLine(t, api.Event{Kind: api.EventImage, Epoch: "e1", Seq: 6, Name: "base", Removed: true})
	tests := []struct {
		name    string
		since   uint64
		epoch   string
		status  int
		writes  []string
		wantURI string
		want    []string // "kind seq name"
		wantErr string
	}{
		{"live", 0, "", 200, []string{hello, vm}, "/v1/events", []string{"hello 4 ", "vm 5 web"}, client.ErrEventsEnded.Error()},
		{"resume", 4, "e1", 200, []string{hello, vm[:9], vm[9:] + img}, "/v1/events?epoch=e1&since=4",
			[]string{"hello 4 ", "vm 5 web", "image 6 base"}, client.ErrEventsEnded.Error()},
		{"resume from the epoch's start", 0, "e1", 200, []string{hello}, "/v1/events?epoch=e1&since=0",
			[]string{"hello 4 "}, client.ErrEventsEnded.Error()},
		{"line cut short", 0, "", 200, []string{hello, vm[:20]}, "/v1/events", []string{"hello 4 "}, "decoding an event"},
		{"line too long", 0, "", 200, []string{hello, `{"kind":"vm","name":"` + strings.Repeat("x", 9<<20) + "\"}\n"}, "/v1/events",
			[]string{"hello 4 "}, "token too long"},
		{"refused", 0, "", 400, []string{`{"error":{"code":"invalid_argument","message":"since is bad","field":"since"}}`}, "/v1/events",
			nil, "since is bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				for _, s := range tt.writes {
					w.Write([]byte(s))
					w.(http.Flusher).Flush()
				}
			})
			var got []string
			err := c.Events(context.Background(), tt.since, tt.epoch, func(ev api.Event) error {
				got = append(got, fmt.Sprintf("%s %d %s", ev.Kind, ev.Seq, ev.Name))
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if reqs := f.requests(); len(reqs) != 1 || reqs[0].Method != "GET" || reqs[0].URI != tt.wantURI {
				t.Errorf("requests %+v, want one GET %s", reqs, tt.wantURI)
			}
		})
	}
}

func TestEventsRefusalIsTyped(t *testing.T) {
	_, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		w.Write([]byte(`{"error":{"code":"invalid_argument","message":"since is bad","field":"since"}}`))
	})
	err := c.Events(context.Background(), 1, "", func(api.Event) error { return nil })
	var ae *api.Error
	if !errors.Is(err, api.ErrInvalidArgument) || !errors.As(err, &ae) || ae.Field != "since" {
		t.Errorf("got %v, want an invalid-argument api.Error on field since", err)
	}
}

// TestEventsStops: fn's error ends the stream and comes back as is; an
// ended context ends a stream that is waiting for its next line.
func TestEventsStops(t *testing.T) {
	hello := feedLine(t, api.Event{Kind: api.EventHello, Epoch: "e1"})
	_, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(hello))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	stop := errors.New("enough")
	if err := c.Events(context.Background(), 0, "", func(api.Event) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fn's error came back as %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err := c.Events(ctx, 0, "", func(ev api.Event) error {
		time.AfterFunc(10*time.Millisecond, cancel)
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v, want context.Canceled", err)
	}
}
