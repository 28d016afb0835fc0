package uitest

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/web/browsertest"
)

// ui is one test's world: a fake-hypervisor bangerd whose web listener
// runs on 127.0.0.1 (any free port) and a browser that is not logged in.
type ui struct {
	t      *testing.T
	d      *daemontest.Daemon
	p      *browsertest.Page
	origin string // "http://127.0.0.1:PORT"
}

// start runs the daemon, turns its web listener on as `banger web` does
// (POST /v1/web/login over the socket), and opens a browser. The login URL
// it minted is left unused.
func start(t *testing.T) *ui {
	t.Helper()
	// The browser first: a host without chromium skips before a daemon
	// starts.
	p := browsertest.New(t, browsertest.Options{})
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	t.Cleanup(func() {
		if t.Failed() {
			logDaemon(t, d.Root)
		}
	})
	u := &ui{t: t, d: d, p: p}
	l := u.loginURL()
	pu, err := url.Parse(l)
	if err != nil {
		t.Fatal(err)
	}
	u.origin = pu.Scheme + "://" + pu.Host
	return u
}

// logDaemon puts the end of the daemon's log into a failed test's output.
func logDaemon(t *testing.T, root string) {
	logs, _ := filepath.Glob(filepath.Join(root, "state", "bangerd.log*"))
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("%s (last lines):\n%s", path, strings.Join(lines, "\n"))
	}
}

// loginURL mints a one-time login URL over the daemon's socket.
func (u *ui) loginURL() string {
	u.t.Helper()
	l, err := u.d.Client.WebLogin(context.Background(), api.WebLoginRequest{Listen: "127.0.0.1:0"})
	if err != nil {
		u.t.Fatalf("web login: %v", err)
	}
	if !strings.HasPrefix(l.URL, "http://127.0.0.1:") || !strings.Contains(l.URL, "/login?token=") {
		u.t.Fatalf("login URL %q: want http://127.0.0.1:PORT/login?token=…", l.URL)
	}
	return l.URL
}

// login logs the browser in with a fresh URL and waits for the dashboard
// to have loaded its VMs.
func (u *ui) login() {
	u.t.Helper()
	u.p.Navigate(u.loginURL())
	u.dashboard()
}

// dashboard waits until the page is the dashboard with its VM list loaded.
func (u *ui) dashboard() {
	u.t.Helper()
	u.p.WaitText("#app", "Dashboard")
	u.p.WaitTrue("the VM list loaded", `/^\(\d+\)$/.test(document.querySelector("#vm-count")?.innerText ?? "")`)
}

// createVMs makes VMs through the API, each with its request.
func (u *ui) createVMs(reqs ...api.CreateVMRequest) {
	u.t.Helper()
	for _, r := range reqs {
		u.d.CreateVM(u.t, r)
	}
}

// vmRow is the dashboard's row of VM name.
func vmRow(name string) string { return `#vm-table tr[data-vm="` + name + `"]` }
