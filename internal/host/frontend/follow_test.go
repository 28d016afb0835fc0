package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// opDaemon is one life of a daemon serving an operation: its event
// stream and GET. A test stops it (all connections cut, as a SIGKILL
// does) and starts another on the same socket.
type opDaemon struct {
	srv *http.Server
}

// serveOp starts a daemon on sock. events writes the stream (nil: 404);
// op is what GET returns.
func serveOp(t *testing.T, sock string, events func(w http.ResponseWriter, r *http.Request), op *api.Operation) *opDaemon {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/operations/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		if events == nil || r.PathValue("id") != "op-1" {
			writeJSON(w, http.StatusNotFound, api.ErrorBody{Error: api.Errorf(api.CodeNotFound, "no operation %s", r.PathValue("id"))})
			return
		}
		w.Header().Set("Content-Type", api.ContentTypeNDJSON)
		events(w, r)
	})
	mux.HandleFunc("GET /v1/operations/{id}", func(w http.ResponseWriter, r *http.Request) {
		if op == nil || r.PathValue("id") != "op-1" {
			writeJSON(w, http.StatusNotFound, api.ErrorBody{Error: api.Errorf(api.CodeNotFound, "no operation %s", r.PathValue("id"))})
			return
		}
		writeJSON(w, http.StatusOK, op)
	})
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	d := &opDaemon{srv: &http.Server{Handler: mux}}
	go d.srv.Serve(l)
	t.Cleanup(d.kill)
	return d
}

// kill cuts every connection and removes the socket.
func (d *opDaemon) kill() { d.srv.Close() }

// send writes events as NDJSON lines, flushed.
func send(w http.ResponseWriter, evs ...api.OperationEvent) {
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		w.Write(append(b, '\n'))
	}
	http.NewResponseController(w).Flush()
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func stage(name string, startS, endS int, detail string) api.Stage {
	st := api.Stage{Name: name, StartedAt: t0.Add(time.Duration(startS) * time.Second), Detail: detail}
	if endS >= 0 {
		st.FinishedAt = t0.Add(time.Duration(endS) * time.Second)
		st.Duration = api.Duration(st.FinishedAt.Sub(st.StartedAt))
	}
	return st
}

func operation(state api.OperationState, stages ...api.Stage) api.Operation {
	return api.Operation{ID: "op-1", Kind: "vm.create", State: state, Stages: stages, CreatedAt: t0}
}

// recorder keeps what a follower was handed, as "type stage" strings.
type recorder struct {
	mu   sync.Mutex
	got  []string
	seen chan string
}

func newRecorder() *recorder { return &recorder{seen: make(chan string, 100)} }

func (r *recorder) fn(ev api.OperationEvent) {
	s := string(ev.Type)
	if ev.Stage != "" {
		s += " " + ev.Stage
	}
	if ev.Type == api.EventStageFinished && ev.Message != "" {
		s += " (" + ev.Message + ")"
	}
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
	r.seen <- s
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// waitFor blocks until the follower was handed s.
func (r *recorder) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-r.seen:
			if got == s {
				return
			}
		case <-timeout:
			t.Fatalf("the follower never got %q (got %q)", s, r.events())
		}
	}
}

// firstLife is the stream of a daemon that is killed while "boot" runs.
func firstLife(w http.ResponseWriter, r *http.Request) {
	running := operation(api.OperationRunning, stage("allocate", 0, 1, ""))
	send(w, api.OperationEvent{Type: api.EventSnapshot, Operation: running})
	running.Stages = append(running.Stages, stage("boot", 1, -1, ""))
	send(w, api.OperationEvent{Type: api.EventStageStarted, Stage: "boot", Operation: running})
	<-r.Context().Done()
}

// TestFollowThroughDaemonKill: the daemon dies mid-stream; a new one
// answers (after the first try finds none); the follower reports the
// operation as the new daemon recorded it, with the stages it missed,
// none twice.
func TestFollowThroughDaemonKill(t *testing.T) {
	interrupted := operation(api.OperationFailed, stage("allocate", 0, 1, ""), stage("boot", 1, 9, "interrupted"))
	interrupted.Error = &api.Error{Code: api.CodeUnavailable, Message: "interrupted by daemon restart"}
	interrupted.FinishedAt = t0.Add(9 * time.Second)

	stillRunning := operation(api.OperationRunning, stage("allocate", 0, 1, ""), stage("boot", 1, 5, ""), stage("ready", 5, -1, ""))
	succeeded := operation(api.OperationSucceeded, stage("allocate", 0, 1, ""), stage("boot", 1, 5, ""), stage("ready", 5, 6, ""))
	succeeded.Result = json.RawMessage(`{"name":"demo"}`)
	secondLife := func(w http.ResponseWriter, r *http.Request) {
		send(w, api.OperationEvent{Type: api.EventSnapshot, Operation: stillRunning},
			api.OperationEvent{Type: api.EventStageFinished, Stage: "ready", Duration: api.Duration(time.Second), Operation: succeeded},
			api.OperationEvent{Type: api.EventDone, Operation: succeeded})
	}

	tests := []struct {
		name       string
		second     func(http.ResponseWriter, *http.Request)
		secondOp   api.Operation
		wantEvents []string
		wantErr    *api.Error
	}{
		{"interrupted by the restart", nil, interrupted,
			[]string{"snapshot", "stage_started boot", "stage_finished boot (interrupted)", "done"},
			interrupted.Error},
		{"still running: followed on", secondLife, stillRunning,
			[]string{"snapshot", "stage_started boot", "stage_finished boot", "stage_started ready", "stage_finished ready", "done"},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := daemontest.ShortTempDir(t) + "/bangerd.sock"
			first := serveOp(t, sock, firstLife, nil)
			rec := newRecorder()
			reconnects := 0
			o := FollowOptions{Poll: time.Millisecond, Reconnect: func(ctx context.Context) (*client.Client, error) {
				reconnects++
				if reconnects == 2 { // the first try found no daemon
					serveOp(t, sock, tt.second, &tt.secondOp)
				}
				return client.New(sock), nil
			}}
			done := make(chan error)
			var final api.Operation
			go func() {
				var err error
				final, err = FollowOperationWith(context.Background(), client.New(sock), "op-1", rec.fn, o)
				done <- err
			}()
			rec.waitFor(t, "stage_started boot")
			first.kill()
			err := <-done
			if tt.wantErr == nil && err != nil {
				t.Fatalf("got %v, want success", err)
			}
			if tt.wantErr != nil {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != tt.wantErr.Code || ae.Message != tt.wantErr.Message {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
			}
			if diff := cmp.Diff(tt.wantEvents, rec.events()); diff != "" {
				t.Errorf("events handed to the follower (-want +got):\n%s", diff)
			}
			if reconnects != 2 {
				t.Errorf("%d reconnects, want 2", reconnects)
			}
			if final.State == api.OperationRunning {
				t.Errorf("returned a running operation: %+v", final)
			}
		})
	}
}

// TestFollowWaitsOnTheSameSocket: without Reconnect the follower waits
// for a daemon on the client's socket.
func TestFollowWaitsOnTheSameSocket(t *testing.T) {
	sock := daemontest.ShortTempDir(t) + "/bangerd.sock"
	first := serveOp(t, sock, firstLife, nil)
	rec := newRecorder()
	done := make(chan error)
	go func() {
		_, err := FollowOperationWith(context.Background(), client.New(sock), "op-1", rec.fn, FollowOptions{Poll: time.Millisecond})
		done <- err
	}()
	rec.waitFor(t, "stage_started boot")
	first.kill()
	interrupted := operation(api.OperationFailed, stage("allocate", 0, 1, ""), stage("boot", 1, 9, "interrupted"))
	interrupted.Error = &api.Error{Code: api.CodeUnavailable, Message: "interrupted by daemon restart"}
	serveOp(t, sock, nil, &interrupted)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "interrupted by daemon restart") {
		t.Fatalf("got %v, want the interruption", err)
	}
}

// TestFollowOutcomes: how a stream that ends (or cannot start) is
// reported.
func TestFollowOutcomes(t *testing.T) {
	failed := operation(api.OperationFailed, stage("boot", 0, 2, "failed"))
	failed.Error = &api.Error{Code: api.CodeInternal, Message: "the guest agent never answered"}
	ok := operation(api.OperationSucceeded, stage("boot", 0, 2, ""))
	canceled := operation(api.OperationCanceled, stage("boot", 0, 2, api.StageCanceled))
	canceled.Error = &api.Error{Code: api.CodeCanceled, Message: "vm create canceled by banger operation cancel (uid 1000) at stage boot"}
	tests := []struct {
		name      string
		events    func(http.ResponseWriter, *http.Request)
		wantErr   string
		wantState api.OperationState
	}{
		{"succeeded", func(w http.ResponseWriter, r *http.Request) {
			send(w, api.OperationEvent{Type: api.EventSnapshot, Operation: ok}, api.OperationEvent{Type: api.EventDone, Operation: ok})
		}, "", api.OperationSucceeded},
		{"failed: its own error", func(w http.ResponseWriter, r *http.Request) {
			send(w, api.OperationEvent{Type: api.EventSnapshot, Operation: failed}, api.OperationEvent{Type: api.EventDone, Operation: failed})
		}, "the guest agent never answered", api.OperationFailed},
		{"canceled: who and where", func(w http.ResponseWriter, r *http.Request) {
			send(w, api.OperationEvent{Type: api.EventSnapshot, Operation: canceled}, api.OperationEvent{Type: api.EventDone, Operation: canceled})
		}, "vm create canceled by banger operation cancel (uid 1000) at stage boot", api.OperationCanceled},
		{"unknown: the daemon's answer, no reconnect", nil, "no operation op-1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := daemontest.ShortTempDir(t) + "/bangerd.sock"
			serveOp(t, sock, tt.events, nil)
			o := FollowOptions{Reconnect: func(context.Context) (*client.Client, error) {
				t.Error("reconnected, but the daemon was there all along")
				return nil, errors.New("no")
			}}
			op, err := FollowOperationWith(context.Background(), client.New(sock), "op-1", nil, o)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
			if op.State != tt.wantState {
				t.Errorf("state %q, want %q", op.State, tt.wantState)
			}
		})
	}
}

// TestFollowStopped: ending ctx stops following, saying the operation
// keeps running, how to watch it and how to cancel it.
func TestFollowStopped(t *testing.T) {
	sock := daemontest.ShortTempDir(t) + "/bangerd.sock"
	serveOp(t, sock, firstLife, nil)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := FollowOperation(ctx, client.New(sock), "op-1", func(ev api.OperationEvent) {
		if ev.Type == api.EventStageStarted {
			cancel()
		}
	})
	var stopped *StoppedFollowingError
	if !errors.As(err, &stopped) || !errors.Is(err, context.Canceled) || stopped.ID != "op-1" {
		t.Fatalf("got %v, want a StoppedFollowingError", err)
	}
	if !strings.Contains(err.Error(), "keeps running") || !strings.Contains(err.Error(), "operation watch op-1") || !strings.Contains(err.Error(), "operation cancel op-1") {
		t.Errorf("message %q does not say it keeps running, how to watch it and how to cancel it", err)
	}
}

// TestFollowDaemonGone: no daemon answers again within the wait: the
// error says both what broke and that.
func TestFollowDaemonGone(t *testing.T) {
	sock := daemontest.ShortTempDir(t) + "/bangerd.sock"
	first := serveOp(t, sock, firstLife, nil)
	rec := newRecorder()
	done := make(chan error)
	go func() {
		_, err := FollowOperationWith(context.Background(), client.New(sock), "op-1", rec.fn,
			FollowOptions{Poll: time.Millisecond, ReconnectWait: 20 * time.Millisecond})
		done <- err
	}()
	rec.waitFor(t, "stage_started boot")
	first.kill()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "following operation op-1") || !strings.Contains(err.Error(), "did not answer within") || !client.IsNotRunning(err) {
		t.Fatalf("got %v, want the broken stream and the daemon that did not come back", err)
	}
}

// TestStageTimeline: an operation's stages as lines to render.
func TestStageTimeline(t *testing.T) {
	op := operation(api.OperationFailed, stage("allocate", 0, 1, ""), stage("boot", 1, 4, "interrupted"),
		stage("probe", 4, 6, "failed"), stage("launch", 6, 7, api.StageCanceled), stage("ready", 7, -1, ""))
	got := StageTimeline(op, t0.Add(10*time.Second))
	want := []StageLine{
		{Name: "allocate", Duration: time.Second, Done: true},
		{Name: "boot", Duration: 3 * time.Second, Detail: "interrupted", Done: true, Failed: true},
		{Name: "probe", Duration: 2 * time.Second, Detail: "failed", Done: true, Failed: true},
		{Name: "launch", Duration: time.Second, Detail: "canceled", Done: true, Canceled: true},
		{Name: "ready", Duration: 3 * time.Second},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if got := StageTimeline(api.Operation{}, t0); len(got) != 0 {
		t.Errorf("an operation without stages: %+v", got)
	}
}

// TestDecodeResult: a result, none, and one of the wrong shape.
func TestDecodeResult(t *testing.T) {
	var v api.VM
	op := api.Operation{ID: "op-1", Result: json.RawMessage(`{"name":"demo"}`)}
	if err := DecodeResult(op, &v); err != nil || v.Name != "demo" {
		t.Errorf("DecodeResult = %v, %+v", err, v)
	}
	if err := DecodeResult(api.Operation{ID: "op-2"}, &v); err == nil || !strings.Contains(err.Error(), "op-2 finished without a result") {
		t.Errorf("no result: %v", err)
	}
	if err := DecodeResult(api.Operation{ID: "op-3", Result: json.RawMessage(`[1]`)}, &v); err == nil || !strings.Contains(err.Error(), "decoding the result of operation op-3") {
		t.Errorf("wrong shape: %v", err)
	}
}
