package client_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// request is what the fake daemon saw of one request.
type request struct {
	Method      string
	URI         string // as sent, still escaped
	ContentType string
	Connection  string
	Upgrade     string
	Body        string
}

// fakeDaemon is an HTTP server on a Unix socket that records every request
// and answers with the handler the test gives it.
type fakeDaemon struct {
	mu   sync.Mutex
	seen []request
}

// startFake serves answer on a fresh socket and returns a client for it.
func startFake(t *testing.T, answer http.HandlerFunc) (*fakeDaemon, *client.Client) {
	t.Helper()
	sock := daemontest.ShortTempDir(t) + "/bangerd.sock"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDaemon{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, request{
			Method: r.Method, URI: r.RequestURI, ContentType: r.Header.Get("Content-Type"),
			Connection: r.Header.Get("Connection"), Upgrade: r.Header.Get("Upgrade"), Body: string(body),
		})
		f.mu.Unlock()
		answer(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	c := client.New(sock)
	t.Cleanup(c.Close)
	return f, c
}

func (f *fakeDaemon) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.seen...)
}
