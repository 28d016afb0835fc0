package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/web"
)

// browser is a logged-in browser of a daemon's web listener.
type browser struct {
	base   string // http://127.0.0.1:PORT
	cookie *http.Cookie
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// webLogin asks the daemon for a login URL over its socket and opens it.
func webLogin(t *testing.T, d *daemontest.Daemon, listen string) (*browser, api.WebLogin) {
	t.Helper()
	l, err := d.Client.WebLogin(context.Background(), api.WebLoginRequest{Listen: listen})
	if err != nil {
		t.Fatalf("WebLogin: %v", err)
	}
	resp, err := noFollow.Get(l.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET the login URL = %d, want 303", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == web.CookieName {
			return &browser{base: "http://" + l.Listen, cookie: c}, l
		}
	}
	t.Fatal("the login set no session cookie")
	return nil, l
}

// do sends a request as the browser's page would (same origin for the
// methods that change something); cookie false sends none.
func (b *browser) do(t *testing.T, method, path, body string, cookie bool) (*http.Response, []byte) {
	t.Helper()
	r, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method != http.MethodGet {
		r.Header.Set("Origin", b.base)
		r.Header.Set("Content-Type", "application/json")
	}
	if cookie {
		r.AddCookie(b.cookie)
	}
	resp, err := noFollow.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func decodeError(t *testing.T, b []byte) *api.Error {
	t.Helper()
	var e api.ErrorBody
	if err := json.Unmarshal(b, &e); err != nil || e.Error == nil {
		t.Fatalf("not an api.Error: %q (%v)", b, err)
	}
	return e.Error
}

// TestWebListener: `banger web`'s request turns the listener on at a
// loopback address and answers a one-time URL; the cookie it gives opens
// the UI and the very API the socket serves (same answers, same field
// errors, the event feed streaming); without it everything is refused;
// login and revoke are the socket's alone; revoke ends the session; and
// the daemon's log holds no token or cookie.
func TestWebListener(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	ctx := context.Background()
	d.CreateVM(t, api.CreateVMRequest{Name: "dev"})

	if _, err := d.Client.WebLogin(ctx, api.WebLoginRequest{Listen: "0.0.0.0:0"}); !errors.Is(err, api.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "loopback only") || !strings.Contains(err.Error(), "ssh -L") {
		t.Errorf("WebLogin at 0.0.0.0 = %v, want refused as not loopback", err)
	}

	before := time.Now()
	b, l := webLogin(t, d, "127.0.0.1:0")
	token := l.URL[strings.Index(l.URL, "token=")+len("token="):]
	if !regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+/login\?token=[A-Za-z0-9_-]{43}$`).MatchString(l.URL) || !strings.HasSuffix(b.base, l.Listen) {
		t.Errorf("login URL %q, listen %q", l.URL, l.Listen)
	}
	if l.ExpiresAt.Before(before) || l.ExpiresAt.After(time.Now().Add(web.TokenTTL)) {
		t.Errorf("token expires at %v, want within %v of the request", l.ExpiresAt, web.TokenTTL)
	}
	// The token worked once.
	if resp, err := noFollow.Get(l.URL); err != nil || resp.StatusCode != 401 {
		t.Errorf("the login URL again = %v, %v; want 401", resp.StatusCode, err)
	}
	// The listener stays where it is.
	if again, err := d.Client.WebLogin(ctx, api.WebLoginRequest{}); err != nil || again.Listen != l.Listen {
		t.Errorf("second WebLogin = %+v, %v; want the same listener %s", again, err, l.Listen)
	}
	if _, err := d.Client.WebLogin(ctx, api.WebLoginRequest{Listen: "127.0.0.1:1"}); !errors.Is(err, api.ErrInvalidArgument) || !strings.Contains(err.Error(), "already listens on "+l.Listen) {
		t.Errorf("WebLogin elsewhere while it runs = %v", err)
	}

	// The UI, under the page's policy.
	resp, page := b.do(t, "GET", "/", "", true)
	if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(string(page)), "<!doctype html>") {
		t.Errorf("GET / = %d %.80q", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "ws://"+l.Listen) {
		t.Errorf("policy %q", csp)
	}
	if resp, page := b.do(t, "GET", "/", "", false); resp.StatusCode != 401 || !strings.Contains(string(page), "banger web") {
		t.Errorf("GET / without the cookie = %d %q", resp.StatusCode, page)
	}

	// The API, the socket's own answers.
	resp, body := b.do(t, "GET", "/v1/vms", "", true)
	var list api.VMList
	if resp.StatusCode != 200 || json.Unmarshal(body, &list) != nil || len(list.VMs) != 1 || list.VMs[0].Name != "dev" {
		t.Errorf("GET /v1/vms = %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get(api.HeaderBuildID) == "" {
		t.Error("the API's answers through the web listener lack the build header")
	}
	if resp, body := b.do(t, "GET", "/v1/vms", "", false); resp.StatusCode != 401 || decodeError(t, body).Code != api.CodeUnauthenticated {
		t.Errorf("GET /v1/vms without the cookie = %d %s", resp.StatusCode, body)
	}
	_, sockErr := d.Client.BeginCreateVM(ctx, api.CreateVMRequest{Name: "big", VCPUs: 999})
	resp, body = b.do(t, "POST", "/v1/vms", `{"name":"big","vcpus":999}`, true)
	webErr := decodeError(t, body)
	if diff := cmp.Diff(api.FromError(sockErr), webErr); diff != "" || webErr.Field != "vcpus" || resp.StatusCode != 400 {
		t.Errorf("bad vcpus through the web listener = %d %+v; want the socket's error (-socket +web):\n%s", resp.StatusCode, webErr, diff)
	}

	// Login and revoke are not served to a browser.
	for _, p := range []string{"/v1/web/login", "/v1/web/revoke"} {
		if resp, body := b.do(t, "POST", p, "{}", true); resp.StatusCode != 403 || decodeError(t, body).Code != api.CodePermissionDenied {
			t.Errorf("POST %s through the web listener = %d %s, want 403", p, resp.StatusCode, body)
		}
	}

	// The terminal endpoint reaches the daemon's sessions (the fake guest
	// knows none).
	h := http.Header{"Origin": {b.base}, "Cookie": {b.cookie.String()}}
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.base, "http")+"/v1/vms/dev/sessions/nope/terminal", &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, msg, err := c.Read(ctx)
	var m struct {
		Type  string     `json:"type"`
		Error *api.Error `json:"error"`
	}
	if err != nil || json.Unmarshal(msg, &m) != nil || m.Type != "error" || m.Error.Code != api.CodeNotFound {
		t.Errorf("terminal to an unknown session said %q, %v; want a not_found error", msg, err)
	}

	// Revoke logs the browser out.
	unused, _ := d.Client.WebLogin(ctx, api.WebLoginRequest{})
	rev, err := d.Client.WebRevoke(ctx)
	if err != nil || rev.Sessions != 1 || rev.Tokens != 2 {
		t.Errorf("WebRevoke = %+v, %v; want 1 session and 2 tokens (the second login's and this one)", rev, err)
	}
	if resp, _ := b.do(t, "GET", "/v1/vms", "", true); resp.StatusCode != 401 {
		t.Errorf("cookie after revoke = %d, want 401", resp.StatusCode)
	}
	if resp, err := noFollow.Get(unused.URL); err != nil || resp.StatusCode != 401 {
		t.Errorf("token after revoke = %v, %v; want 401", resp.StatusCode, err)
	}

	// Nothing secret reached the log.
	log, err := os.ReadFile(d.Config.Paths.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "web session started") || !strings.Contains(string(log), "web login token minted") {
		t.Errorf("the log does not show the login:\n%s", log)
	}
	unusedToken := unused.URL[strings.Index(unused.URL, "token=")+len("token="):]
	for _, s := range []string{token, unusedToken, b.cookie.Value} {
		if strings.Contains(string(log), s) {
			t.Errorf("the daemon's log holds the secret %q", s)
		}
	}
}

// TestWebEventsAndShutdown: the change feed streams through the web
// listener, and a daemon that shuts down ends it and closes the listener.
func TestWebEventsAndShutdown(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	b, l := webLogin(t, d, "127.0.0.1:0")
	r, _ := http.NewRequest("GET", b.base+"/v1/events", nil)
	r.AddCookie(b.cookie)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != api.ContentTypeNDJSON {
		t.Fatalf("GET /v1/events = %d %s", resp.StatusCode, ct)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() api.Event {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("the feed ended: %v", lines.Err())
		}
		var ev api.Event
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	if ev := next(); ev.Kind != api.EventHello {
		t.Fatalf("first event %+v, want hello", ev)
	}
	d.CreateVM(t, api.CreateVMRequest{Name: "seen"})
	for {
		ev := next()
		if ev.Kind == api.EventVM && ev.Name == "seen" {
			break
		}
	}

	if err := d.Stop(); err != nil {
		t.Fatalf("daemon stop with a browser following the feed: %v", err)
	}
	for lines.Scan() {
	}
	if _, err := net.DialTimeout("tcp", l.Listen, 5*time.Second); err == nil {
		t.Errorf("the web listener %s still accepts after the daemon stopped", l.Listen)
	}
}

// TestWebListenAtStart: with web.listen set the listener is up as soon
// as the daemon is (refusing what has no cookie), and `banger web` gets
// a URL on it.
func TestWebListenAtStart(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true, WebListen: "127.0.0.1:0"})
	log, err := os.ReadFile(d.Config.Paths.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"msg":"web UI listening"[^\n]*"addr":"(127\.0\.0\.1:[0-9]+)"`).FindSubmatch(log)
	if m == nil {
		t.Fatalf("the log does not say where the web UI listens:\n%s", log)
	}
	addr := string(m[1])
	resp, err := http.Get("http://" + addr + "/v1/daemon")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("GET /v1/daemon without a cookie = %d, want 401", resp.StatusCode)
	}
	l, err := d.Client.WebLogin(context.Background(), api.WebLoginRequest{})
	if err != nil || l.Listen != addr {
		t.Errorf("WebLogin = %+v, %v; want the listener at %s", l, err, addr)
	}
}
