package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
)

// eventLine is one NDJSON line of an operation's event stream.
func eventLine(t *testing.T, typ api.EventType, stage string, state api.OperationState) string {
	t.Helper()
	b, err := json.Marshal(api.OperationEvent{
		Type: typ, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Stage: stage,
		Operation: api.Operation{ID: "op-1", Kind: "vm.create", State: state, CurrentStage: stage},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// TestWatchOperation feeds the client event streams cut into pieces the
// way a socket may deliver them (a line split across writes, two lines in
// one write), streams that end early, and one cut inside a line.
func TestWatchOperation(t *testing.T) {
	snap := eventLine(t, api.EventSnapshot, "", api.OperationRunning)
	started := eventLine(t, api.EventStageStarted, "boot", api.OperationRunning)
	logLine := eventLine(t, api.EventLog, "boot", api.OperationRunning)
	done := eventLine(t, api.EventDone, "", api.OperationSucceeded)
	after := eventLine(t, api.EventLog, "late", api.OperationSucceeded)
	tests := []struct {
		name      string
		writes    []string // each one flushed on its own
		wantTypes []api.EventType
		wantState api.OperationState
		wantErr   string // "" for success
	}{
		{"whole lines", []string{snap, started, done},
			[]api.EventType{api.EventSnapshot, api.EventStageStarted, api.EventDone}, api.OperationSucceeded, ""},
		{"lines split across writes",
			[]string{snap[:7], snap[7:] + started[:len(started)-1], "\n" + logLine[:20], logLine[20:] + done},
			[]api.EventType{api.EventSnapshot, api.EventStageStarted, api.EventLog, api.EventDone}, api.OperationSucceeded, ""},
		{"nothing read after done", []string{snap + done + after},
			[]api.EventType{api.EventSnapshot, api.EventDone}, api.OperationSucceeded, ""},
		{"stream ends before done", []string{snap, started},
			[]api.EventType{api.EventSnapshot, api.EventStageStarted}, api.OperationRunning,
			"following operation op-1: the stream ended before the operation finished (daemon restarted?): check `banger operation show op-1`"},
		{"stream cut inside a line", []string{snap, started[:30]},
			[]api.EventType{api.EventSnapshot}, api.OperationRunning, "decoding operation event"},
		{"empty stream", nil, nil, "", "the stream ended before the operation finished"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", api.ContentTypeNDJSON)
				w.WriteHeader(http.StatusOK)
				rc := http.NewResponseController(w)
				for _, p := range tt.writes {
					w.Write([]byte(p))
					rc.Flush()
				}
			})
			var got []api.EventType
			op, err := c.WatchOperation(context.Background(), "op-1", func(ev api.OperationEvent) error {
				got = append(got, ev.Type)
				return nil
			})
			if tt.wantErr == "" && err != nil {
				t.Fatalf("WatchOperation: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantTypes, got); diff != "" {
				t.Errorf("events delivered (-want +got):\n%s", diff)
			}
			if op.State != tt.wantState {
				t.Errorf("returned state %q, want %q (the last event's)", op.State, tt.wantState)
			}
			if diff := cmp.Diff([]request{{Method: "GET", URI: "/v1/operations/op-1/events"}}, f.requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWatchOperationCallbackStops: an error from the callback ends the
// watch at once and is returned as is.
func TestWatchOperationCallbackStops(t *testing.T) {
	snap := eventLine(t, api.EventSnapshot, "", api.OperationRunning)
	_, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(snap + snap + snap))
	})
	stop := errors.New("user pressed ^C")
	n := 0
	_, err := c.WatchOperation(context.Background(), "op-1", func(api.OperationEvent) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("got %v after %d events, want the callback's error after 1", err, n)
	}
}

// TestWatchOperationLongLine: an event line far beyond bufio's default
// 64 KiB token (a big result) still decodes.
func TestWatchOperationLongLine(t *testing.T) {
	big, err := json.Marshal(api.OperationEvent{Type: api.EventDone, Operation: api.Operation{
		ID: "op-1", State: api.OperationSucceeded, Result: json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(append(big, '\n'))
	})
	op, err := c.WatchOperation(context.Background(), "op-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(op.Result) != 1<<20+2 {
		t.Errorf("result of %d bytes, want %d", len(op.Result), 1<<20+2)
	}
}
