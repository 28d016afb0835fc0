package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/localsock"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
)

// testDaemon is a Daemon with only what the middleware reads, logging
// into a buffer the test can read.
func testDaemon(t *testing.T) (*Daemon, *bytes.Buffer) {
	t.Helper()
	// A short root: config holds state_dir to the VMs' socket paths.
	root, err := os.MkdirTemp("", "bgm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	env := config.MapEnv(map[string]string{config.EnvHome: root, "HOME": filepath.Join(root, "home")})
	paths, err := config.DefaultPaths(env, os.Getuid())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(paths, env)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	return &Daemon{
		cfg:   cfg,
		log:   slog.New(slog.NewJSONHandler(&logs, nil)),
		build: buildinfo.Info{Version: "v9.9.9", BuildID: "build-under-test"},
	}, &logs
}

// noPeer stands for a connection whose credentials were never recorded.
var noPeer = peer{err: errors.New("test: no peer record")}

// serve runs one request through the middleware as if it came from a
// connection whose peer is p.
func serve(d *Daemon, p peer, h http.HandlerFunc, method, path string) (*httptest.ResponseRecorder, bool) {
	called := false
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
		h(w, r)
	})
	r := httptest.NewRequest(method, path, nil)
	if p != noPeer {
		r = r.WithContext(context.WithValue(r.Context(), peerKey{}, p))
	}
	w := httptest.NewRecorder()
	d.middleware(next).ServeHTTP(w, r)
	return w, called
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) *api.Error {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error == nil {
		t.Fatalf("answer %d %q is not an API error", w.Code, w.Body.String())
	}
	return eb.Error
}

// TestMiddleware: the one place that checks the caller, stamps the build
// headers and turns a panic into an answer.
func TestMiddleware(t *testing.T) {
	me := localsock.Cred{UID: os.Getuid(), PID: 1234}
	other := localsock.Cred{UID: os.Getuid() + 1000, PID: 99}
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	tests := []struct {
		name       string
		peer       peer
		handler    http.HandlerFunc
		wantStatus int
		wantCode   api.Code // "" for a success
		wantMsg    []string
		wantCalled bool
		wantLog    string
	}{
		{"own user passes", peer{cred: me}, ok, http.StatusNoContent, "", nil, true, ""},
		{"another user is refused before the handler", peer{cred: other}, ok, 403, api.CodePermissionDenied,
			[]string{"serves uid", "set BANGER_HOME or XDG_RUNTIME_DIR"}, false, "refused connection from another user"},
		{"unreadable credentials are refused", peer{err: errors.New("getsockopt: bad file descriptor")}, ok, 403, api.CodePermissionDenied,
			[]string{"could not identify the caller", "bad file descriptor"}, false, ""},
		{"a peer of no uid is refused", peer{cred: localsock.Cred{UID: -1}}, ok, 403, api.CodePermissionDenied, nil, false, ""},
		// A connection whose credentials were never read (no ConnContext)
		// must not pass as uid 0, which a root daemon would accept.
		{"no peer record is refused", noPeer, ok, 403, api.CodePermissionDenied,
			[]string{"could not identify the caller"}, false, ""},
		{"a panic becomes an internal error naming the log", peer{cred: me},
			func(http.ResponseWriter, *http.Request) { panic("nil map in handler") }, 500, api.CodeInternal,
			[]string{"internal error handling /v1/vms", "bangerd.log"}, true, "nil map in handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, logs := testDaemon(t)
			w, called := serve(d, tt.peer, tt.handler, "GET", "/v1/vms")
			if w.Code != tt.wantStatus {
				t.Errorf("status %d, want %d (%q)", w.Code, tt.wantStatus, w.Body.String())
			}
			if called != tt.wantCalled {
				t.Errorf("handler called = %v, want %v", called, tt.wantCalled)
			}
			got := map[string]string{"build": w.Header().Get(api.HeaderBuildID), "version": w.Header().Get(api.HeaderVersion)}
			if diff := cmp.Diff(map[string]string{"build": "build-under-test", "version": "v9.9.9"}, got); diff != "" {
				t.Errorf("build headers (-want +got):\n%s", diff)
			}
			if tt.wantCode != "" {
				e := errorOf(t, w)
				if e.Code != tt.wantCode {
					t.Errorf("code %s, want %s", e.Code, tt.wantCode)
				}
				for _, m := range tt.wantMsg {
					if !strings.Contains(e.Message, m) {
						t.Errorf("message %q does not contain %q", e.Message, m)
					}
				}
			}
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log %q does not record %q", logs.String(), tt.wantLog)
			}
		})
	}
}

// TestMiddlewarePanicNeverLeaksTheValue: the panic's text goes to the
// log, never to the caller.
func TestMiddlewarePanicNeverLeaksTheValue(t *testing.T) {
	d, logs := testDaemon(t)
	w, _ := serve(d, peer{cred: localsock.Cred{UID: os.Getuid()}}, func(http.ResponseWriter, *http.Request) {
		panic("secret-token-xyz")
	}, "GET", "/v1/daemon")
	if strings.Contains(w.Body.String(), "secret-token-xyz") {
		t.Errorf("answer carries the panic value: %q", w.Body.String())
	}
	if !strings.Contains(logs.String(), "secret-token-xyz") || !strings.Contains(logs.String(), `"stack"`) {
		t.Errorf("log lacks the panic value and stack: %q", logs.String())
	}
}

// TestMiddlewareLetsAbortHandlerThrough: http.ErrAbortHandler is how a
// handler asks net/http to drop the connection; the middleware must not
// turn it into a 500 answer.
func TestMiddlewareLetsAbortHandlerThrough(t *testing.T) {
	d, _ := testDaemon(t)
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler re-panicked", v)
		}
	}()
	serve(d, peer{cred: localsock.Cred{UID: os.Getuid()}}, func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}, "GET", "/v1/daemon")
	t.Error("ErrAbortHandler was swallowed")
}

// TestDecodeBody: the one decoder every JSON endpoint uses.
func TestDecodeBody(t *testing.T) {
	type req struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	tests := []struct {
		name    string
		body    string
		chunked bool // no Content-Length, as a streaming client sends
		want    req
		wantErr string
	}{
		{"empty body keeps defaults", "", false, req{Name: "default"}, ""},
		{"fields", `{"name":"dev","count":2}`, false, req{Name: "dev", Count: 2}, ""},
		{"chunked body", `{"name":"dev"}`, true, req{Name: "dev"}, ""},
		{"unknown field", `{"name":"dev","cuont":2}`, false, req{}, `unknown field "cuont"`},
		{"wrong type", `{"count":"2"}`, false, req{}, "cannot unmarshal string"},
		{"truncated", `{"name":"de`, false, req{}, "unexpected EOF"},
		{"not an object", `[1,2]`, false, req{}, "cannot unmarshal array"},
		{"chunked garbage", `nope`, true, req{}, "invalid character"},
		{"over the limit", `{"name":"` + strings.Repeat("x", 1<<20) + `"}`, false, req{}, "request body too large"},
		{"two values", `{"name":"a"}{"name":"b"}`, false, req{}, "more than one JSON value"},
		{"trailing junk", `{"name":"a"} x`, false, req{}, "more than one JSON value"},
		{"trailing space is fine", "{\"name\":\"a\"}\n ", false, req{Name: "a"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length from NewRequest
			}
			r := httptest.NewRequest("POST", "/v1/x", body)
			if tt.body == "" {
				r.ContentLength = 0
			}
			got := req{Name: "default"}
			err := decodeBody(r, &got)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("decodeBody: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				return
			}
			if !errors.Is(err, api.ErrInvalidArgument) {
				t.Fatalf("got %v, want invalid_argument", err)
			}
			if !strings.Contains(err.Error(), "bad request body") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q should say bad request body and %q", err, tt.wantErr)
			}
		})
	}
}

// TestWantsStream: the streaming endpoints accept the upgrade header in
// any case and refuse a plain request with the header to send.
func TestWantsStream(t *testing.T) {
	for _, tt := range []struct {
		upgrade string
		ok      bool
	}{
		{"banger-stream", true}, {"Banger-Stream", true}, {"", false}, {"websocket", false},
	} {
		r := httptest.NewRequest("POST", "/v1/vms/dev/exec", nil)
		if tt.upgrade != "" {
			r.Header.Set("Upgrade", tt.upgrade)
		}
		err := wantsStream(r)
		if (err == nil) != tt.ok {
			t.Errorf("Upgrade %q: got %v, want ok=%v", tt.upgrade, err, tt.ok)
		}
		if err != nil && (!errors.Is(err, api.ErrInvalidArgument) || !strings.Contains(err.Error(), `"Upgrade: banger-stream"`)) {
			t.Errorf("Upgrade %q: error %q should be invalid_argument naming the header", tt.upgrade, err)
		}
	}
}
