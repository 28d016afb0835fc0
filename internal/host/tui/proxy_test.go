package tui

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// countingProxy sits between a client and bangerd on a Unix socket of
// its own and counts the requests that pass, by method and path with the
// VM, session and operation named replaced by {name}: it proves what the
// TUI asks the daemon, from outside the TUI.
type countingProxy struct {
	Socket string
	mu     sync.Mutex
	counts map[string]int
}

var (
	vmPath = regexp.MustCompile(`^/v1/vms/[^/]+`)
	opPath = regexp.MustCompile(`^/v1/operations/[^/]+`)
)

func startCountingProxy(tb testing.TB, target string) *countingProxy {
	tb.Helper()
	p := &countingProxy{Socket: filepath.Join(daemontest.ShortTempDir(tb), "p.sock"), counts: map[string]int{}}
	ln, err := net.Listen("unix", p.Socket)
	if err != nil {
		tb.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "bangerd"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", target)
		}},
		FlushInterval: -1, // the event feed streams
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := vmPath.ReplaceAllString(r.URL.Path, "/v1/vms/{name}")
		path = opPath.ReplaceAllString(path, "/v1/operations/{id}")
		p.mu.Lock()
		p.counts[r.Method+" "+path]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return p
}

// Counts returns a copy of the counts so far.
func (p *countingProxy) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// Total is every request so far.
func (p *countingProxy) Total() int {
	n := 0
	for _, v := range p.Counts() {
		n += v
	}
	return n
}

// String lists the counts, one "N METHOD PATH" per line.
func (p *countingProxy) String() string {
	var lines []string
	for k, v := range p.Counts() {
		lines = append(lines, k+" ×"+strconv.Itoa(v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// proxiedOptions are fakeOptions whose client goes through p.
func proxiedOptions(d *daemontest.Daemon, p *countingProxy) Options {
	o := fakeOptions(d)
	cl := client.New(p.Socket)
	o.Connect = func(ctx context.Context) (*client.Client, error) {
		if _, err := cl.DaemonStatus(ctx); err != nil {
			return nil, err
		}
		return cl, nil
	}
	return o
}
