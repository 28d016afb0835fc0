package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/web"
)

// clock is the handler's injected time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a log sink written by the handler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recordingAPI stands in for the daemon's API handler: it records what
// reached it, answers JSON, and at /v1/stream streams until its request's
// context ends.
type recordingAPI struct {
	mu      sync.Mutex
	reached []string
	ended   chan struct{}
}

func (a *recordingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.reached = append(a.reached, r.Method+" "+r.URL.Path)
	a.mu.Unlock()
	if r.URL.Path == "/v1/stream" {
		w.Header().Set("Content-Type", api.ContentTypeNDJSON)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "{\"hello\":1}\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
		close(a.ended)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`)
}

func (a *recordingAPI) calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.reached...)
}

// uiPage stands in for package ui's handler.
var uiPage = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, "<!doctype html><title>UI</title>THE UI "+r.URL.Path)
})

// fixture is a Handler on a real loopback listener.
type fixture struct {
	h      *web.Handler
	srv    *httptest.Server
	port   int
	origin string // http://127.0.0.1:PORT
	clock  *clock
	api    *recordingAPI
	terms  *fakeTerminals
	log    *syncBuffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, nil)
}

// newFixtureWith serves terms (nil: a fakeTerminals, in f.terms).
func newFixtureWith(t *testing.T, terms web.Terminals) *fixture {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	f := &fixture{
		srv: srv, port: port, origin: "http://127.0.0.1:" + strconv.Itoa(port),
		clock: &clock{now: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)},
		api:   &recordingAPI{ended: make(chan struct{})},
		terms: newFakeTerminals(),
		log:   &syncBuffer{},
	}
	if terms == nil {
		terms = f.terms
	}
	f.h = web.New(web.Options{
		Port: port, API: f.api, UI: uiPage, Terminals: terms,
		Log: slog.New(slog.NewJSONHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: f.clock.Now,
	})
	srv.Config.Handler = f.h
	srv.Start()
	t.Cleanup(func() {
		f.h.Close(context.Background())
		srv.Close()
	})
	return f
}

// req is one request to the fixture.
type req struct {
	method, path string
	host         string // "" = the listener's address
	origin       string
	cookie       *http.Cookie
	header       http.Header
	body         string
}

// noRedirect is a client that shows redirects instead of following them
// and keeps no cookies: each test says which cookie a request carries.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (f *fixture) do(t *testing.T, r req) (*http.Response, string) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	hr, err := http.NewRequest(r.method, f.srv.URL+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.host != "" {
		hr.Host = r.host
	}
	if r.origin != "" {
		hr.Header.Set("Origin", r.origin)
	}
	for k, v := range r.header {
		hr.Header[k] = v
	}
	if r.cookie != nil {
		hr.AddCookie(r.cookie)
	}
	resp, err := noRedirect.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkHeaders(t, r, resp)
	return resp, string(b)
}

// checkHeaders holds for every answer: the security headers, no CORS.
func checkHeaders(t *testing.T, r req, resp *http.Response) {
	t.Helper()
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Errorf("%s %s answered with %s: %q; the web listener sends no CORS headers", r.method, r.path, k, resp.Header.Get(k))
		}
	}
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s %s: %s = %q, want %q", r.method, r.path, k, got, want)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s %s: Content-Security-Policy %q lacks %q", r.method, r.path, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") && strings.Contains(csp, "script-src 'self' 'unsafe-inline'") {
		t.Errorf("%s %s: the policy allows inline script: %q", r.method, r.path, csp)
	}
	if strings.HasPrefix(r.path, "/v1/") && resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s %s: Cache-Control = %q, want no-store on API answers", r.method, r.path, resp.Header.Get("Cache-Control"))
	}
}

// login mints a token and spends it; it returns the session cookie.
func (f *fixture) login(t *testing.T) *http.Cookie {
	t.Helper()
	path, _ := f.h.Login()
	resp, _ := f.do(t, req{path: path})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET %s = %d, want 303", path, resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == web.CookieName {
			return c
		}
	}
	t.Fatalf("login set no %s cookie: %v", web.CookieName, resp.Header.Values("Set-Cookie"))
	return nil
}

func apiError(t *testing.T, body string) *api.Error {
	t.Helper()
	var e api.ErrorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil {
		t.Fatalf("answer is not an api.Error: %q (%v)", body, err)
	}
	return e.Error
}

// TestLogin: a token is spent once for a cookie with the attributes the
// design names, the cookie opens the API and the UI, and then neither the
// token again, nor a wrong one, nor no cookie does.
func TestLogin(t *testing.T) {
	f := newFixture(t)
	path, exp := f.h.Login()
	if want := f.clock.Now().Add(web.TokenTTL); !exp.Equal(want) {
		t.Errorf("token expires at %v, want %v", exp, want)
	}
	token := strings.TrimPrefix(path, "/login?token=")
	if raw, err := decodeB64(token); err != nil || len(raw) != 32 {
		t.Errorf("token %q is not 32 bytes of base64url (%d, %v)", token, len(raw), err)
	}

	resp, _ := f.do(t, req{path: path})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login = %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	setCookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{web.CookieName + "=", "Path=/", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("Set-Cookie %q lacks %q", setCookie, want)
		}
	}
	if strings.Contains(setCookie, "Secure") || strings.Contains(setCookie, "Domain") {
		t.Errorf("Set-Cookie %q: no Secure (http on loopback) and no Domain", setCookie)
	}
	cookie := resp.Cookies()[0]
	if raw, err := decodeB64(cookie.Value); err != nil || len(raw) != 32 {
		t.Errorf("cookie value is not 32 bytes of base64url (%d, %v)", len(raw), err)
	}

	if resp, body := f.do(t, req{path: "/v1/vms", cookie: cookie}); resp.StatusCode != 200 || body != `{"ok":true}` {
		t.Errorf("GET /v1/vms with the cookie = %d %q, want the API's answer", resp.StatusCode, body)
	}
	if resp, body := f.do(t, req{path: "/vm/dev", cookie: cookie}); resp.StatusCode != 200 || !strings.Contains(body, "THE UI /vm/dev") {
		t.Errorf("GET /vm/dev with the cookie = %d %q, want the UI", resp.StatusCode, body)
	}
	// A reload of the spent URL in the logged-in browser goes home.
	if resp, _ := f.do(t, req{path: path, cookie: cookie}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("spent token with a live cookie = %d, want 303 to /", resp.StatusCode)
	}

	bad := &http.Cookie{Name: web.CookieName, Value: strings.Repeat("A", 43)}
	tests := []struct {
		name   string
		r      req
		status int
		code   api.Code // for /v1 answers
		page   string   // for pages: a substring
	}{
		{"no cookie, API", req{path: "/v1/vms"}, 401, api.CodeUnauthenticated, ""},
		{"no cookie, API POST", req{method: "POST", path: "/v1/vms", origin: f.origin, body: "{}"}, 401, api.CodeUnauthenticated, ""},
		{"no cookie, page", req{path: "/"}, 401, "", "run `banger web` and open the URL it prints"},
		{"no cookie, asset", req{path: "/static/app.js"}, 401, "", "banger web"},
		{"wrong cookie", req{path: "/v1/vms", cookie: bad}, 401, api.CodeUnauthenticated, ""},
		{"token reused", req{path: path}, 401, "", "Run `banger web`"},
		{"wrong token", req{path: "/login?token=" + strings.Repeat("x", 43)}, 401, "", "not valid"},
		{"no token", req{path: "/login"}, 401, "", "not valid"},
		{"terminal without cookie", req{path: "/v1/vms/dev/sessions/s1/terminal"}, 401, api.CodeUnauthenticated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(t, tt.r)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.code != "" {
				if e := apiError(t, body); e.Code != tt.code || !strings.Contains(e.Message, "banger web") {
					t.Errorf("error %+v, want code %s naming `banger web`", e, tt.code)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, tt.page) {
				t.Errorf("page (%s) lacks %q:\n%s", ct, tt.page, body)
			}
		})
	}
	if got := f.api.calls(); len(got) != 1 {
		t.Errorf("the API saw %v; only the one authenticated call should reach it", got)
	}
}

// TestCredentialLifetimes: an unused token expires after TokenTTL; a
// session after SessionIdle without requests, or after SessionMax
// however busy; logout and Revoke end sessions and tokens at once.
func TestCredentialLifetimes(t *testing.T) {
	t.Run("token expires unused", func(t *testing.T) {
		f := newFixture(t)
		path, _ := f.h.Login()
		f.clock.advance(web.TokenTTL)
		if resp, _ := f.do(t, req{path: path}); resp.StatusCode != 401 {
			t.Errorf("expired token = %d, want 401", resp.StatusCode)
		}
	})
	t.Run("token just before expiry", func(t *testing.T) {
		f := newFixture(t)
		path, _ := f.h.Login()
		f.clock.advance(web.TokenTTL - time.Second)
		if resp, _ := f.do(t, req{path: path}); resp.StatusCode != 303 {
			t.Errorf("token 1s before expiry = %d, want 303", resp.StatusCode)
		}
	})
	t.Run("idle session", func(t *testing.T) {
		f := newFixture(t)
		c := f.login(t)
		f.clock.advance(web.SessionIdle - time.Minute)
		if resp, _ := f.do(t, req{path: "/v1/vms", cookie: c}); resp.StatusCode != 200 {
			t.Fatalf("session used within its idle time = %d, want 200", resp.StatusCode)
		}
		f.clock.advance(web.SessionIdle - time.Minute) // idle counts from the last request
		if resp, _ := f.do(t, req{path: "/v1/vms", cookie: c}); resp.StatusCode != 200 {
			t.Fatalf("session used again within its idle time = %d, want 200", resp.StatusCode)
		}
		f.clock.advance(web.SessionIdle)
		if resp, body := f.do(t, req{path: "/v1/vms", cookie: c}); resp.StatusCode != 401 || apiError(t, body).Code != api.CodeUnauthenticated {
			t.Errorf("idle session = %d %s, want 401 unauthenticated", resp.StatusCode, body)
		}
	})
	t.Run("absolute lifetime", func(t *testing.T) {
		f := newFixture(t)
		c := f.login(t)
		for elapsed := time.Duration(0); elapsed+web.SessionIdle/2 < web.SessionMax; elapsed += web.SessionIdle / 2 {
			f.clock.advance(web.SessionIdle / 2)
			if resp, _ := f.do(t, req{path: "/v1/vms", cookie: c}); resp.StatusCode != 200 {
				t.Fatalf("busy session after %v = %d, want 200", elapsed, resp.StatusCode)
			}
		}
		f.clock.advance(web.SessionIdle / 2)
		if resp, _ := f.do(t, req{path: "/v1/vms", cookie: c}); resp.StatusCode != 401 {
			t.Errorf("session past SessionMax = %d, want 401", resp.StatusCode)
		}
	})
	t.Run("logout", func(t *testing.T) {
		f := newFixture(t)
		c := f.login(t)
		resp, body := f.do(t, req{path: "/logout", cookie: c})
		if resp.StatusCode != 200 || !strings.Contains(body, "banger web") || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
			t.Errorf("logout = %d %q (Set-Cookie %q)", resp.StatusCode, body, resp.Header.Get("Set-Cookie"))
		}
		if resp, _ := f.do(t, req{path: "/", cookie: c}); resp.StatusCode != 401 {
			t.Errorf("cookie after logout = %d, want 401", resp.StatusCode)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		f := newFixture(t)
		c1, c2 := f.login(t), f.login(t)
		unused, _ := f.h.Login()
		if s, tk := f.h.Revoke(); s != 2 || tk != 1 {
			t.Errorf("Revoke() = %d sessions, %d tokens; want 2, 1", s, tk)
		}
		for _, c := range []*http.Cookie{c1, c2} {
			if resp, _ := f.do(t, req{path: "/v1/vms", cookie: c}); resp.StatusCode != 401 {
				t.Errorf("cookie after revoke = %d, want 401", resp.StatusCode)
			}
		}
		if resp, _ := f.do(t, req{path: unused}); resp.StatusCode != 401 {
			t.Errorf("token after revoke = %d, want 401", resp.StatusCode)
		}
		if s, tk := f.h.Revoke(); s != 0 || tk != 0 {
			t.Errorf("second Revoke() = %d, %d; want 0, 0", s, tk)
		}
	})
}

// TestRevokeEndsStreams: a stream a browser follows (the event feed)
// ends when its session is revoked, not at its next request.
func TestRevokeEndsStreams(t *testing.T) {
	f := newFixture(t)
	c := f.login(t)
	hr, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/v1/stream", nil)
	hr.AddCookie(c)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "{\"hello\":1}\n" {
		t.Fatalf("stream's first line = %q, %v", line, err)
	}
	f.h.Revoke()
	select {
	case <-f.api.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's request went on after its session was revoked")
	}
}

// TestHostAndOrigin: a Host that is not this listener on loopback (DNS
// rebinding) is refused whatever the cookie; a state-changing request
// needs the listener's own Origin; a browser's cross-site or
// other-port fetch is refused unless it navigates; and nothing refused
// reaches the API.
func TestHostAndOrigin(t *testing.T) {
	f := newFixture(t)
	c := f.login(t)
	other := strconv.Itoa(f.port + 1)
	if f.port == 65535 {
		other = "1"
	}
	port := strconv.Itoa(f.port)
	tests := []struct {
		name   string
		r      req
		status int
	}{
		{"foreign host", req{path: "/v1/vms", host: "evil.example:" + port, cookie: c}, 403},
		{"foreign host, page", req{path: "/", host: "evil.example:" + port, cookie: c}, 403},
		{"foreign host, login", req{path: "/login?token=x", host: "evil.example:" + port}, 403},
		{"other port", req{path: "/v1/vms", host: "127.0.0.1:" + other, cookie: c}, 403},
		{"no port", req{path: "/v1/vms", host: "127.0.0.1", cookie: c}, 403},
		{"loopback name", req{path: "/v1/vms", host: "localhost:" + port, cookie: c}, 200},
		{"other loopback address", req{path: "/v1/vms", host: "127.0.0.2:" + port, cookie: c}, 200},
		{"ipv6 loopback", req{path: "/v1/vms", host: "[::1]:" + port, cookie: c}, 200},
		{"subdomain of localhost", req{path: "/v1/vms", host: "evil.localhost:" + port, cookie: c}, 403},
		{"POST without Origin", req{method: "POST", path: "/v1/vms", cookie: c, body: "{}"}, 403},
		{"POST cross-origin", req{method: "POST", path: "/v1/vms", cookie: c, origin: "http://evil.example", body: "{}"}, 403},
		{"POST from another port", req{method: "POST", path: "/v1/vms", cookie: c, origin: "http://127.0.0.1:" + other, body: "{}"}, 403},
		{"POST origin null", req{method: "POST", path: "/v1/vms", cookie: c, origin: "null", body: "{}"}, 403},
		{"POST https origin", req{method: "POST", path: "/v1/vms", cookie: c, origin: "https://127.0.0.1:" + port, body: "{}"}, 403},
		{"DELETE without Origin", req{method: "DELETE", path: "/v1/vms/dev", cookie: c}, 403},
		{"PUT cross-origin", req{method: "PUT", path: "/v1/vms/dev/files", cookie: c, origin: "http://evil.example"}, 403},
		{"PATCH without Origin", req{method: "PATCH", path: "/v1/vms/dev", cookie: c}, 403},
		{"WebSocket upgrade without Origin", req{path: "/v1/vms/dev/sessions/s/terminal", cookie: c,
			header: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}}, 403},
		{"WebSocket upgrade cross-origin", req{path: "/v1/vms/dev/sessions/s/terminal", cookie: c, origin: "http://evil.example",
			header: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}}, 403},
		{"fetch from another port (same-site)", req{path: "/v1/vms", cookie: c,
			header: http.Header{"Sec-Fetch-Site": {"same-site"}, "Sec-Fetch-Mode": {"cors"}}}, 403},
		{"script include from another site", req{path: "/static/app.js", cookie: c,
			header: http.Header{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"no-cors"}}}, 403},
		{"navigation from another site", req{path: "/", cookie: c,
			header: http.Header{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"navigate"}}}, 200},
		{"same-origin fetch", req{path: "/v1/vms", cookie: c,
			header: http.Header{"Sec-Fetch-Site": {"same-origin"}, "Sec-Fetch-Mode": {"cors"}}}, 200},
		{"POST same origin", req{method: "POST", path: "/v1/vms", cookie: c, origin: f.origin, body: "{}"}, 200},
		{"GET cross-origin", req{path: "/v1/vms", cookie: c, origin: "http://evil.example"}, 403},
		{"GET same origin", req{path: "/v1/vms", cookie: c, origin: f.origin}, 200},
		{"POST same origin by name", req{method: "POST", path: "/v1/vms", host: "localhost:" + port, cookie: c, origin: "http://localhost:" + port, body: "{}"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.api.calls())
			resp, body := f.do(t, tt.r)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			reached := len(f.api.calls()) > before
			if tt.status == 403 {
				if reached {
					t.Errorf("a refused request reached the API")
				}
				if strings.HasPrefix(tt.r.path, "/v1/") && apiError(t, body).Code != api.CodePermissionDenied {
					t.Errorf("refusal %s, want permission_denied", body)
				}
			}
		})
	}
}

// TestNoCORS: a preflight, with or without the cookie, gets no
// Access-Control-* header (checkHeaders looks at every answer), and a
// cross-origin preflight cannot make a browser send the real request.
func TestNoCORS(t *testing.T) {
	f := newFixture(t)
	c := f.login(t)
	pre := http.Header{"Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"content-type"}}
	for _, r := range []req{
		{method: "OPTIONS", path: "/v1/vms", origin: "http://evil.example", header: pre},
		{method: "OPTIONS", path: "/v1/vms", origin: "http://evil.example", header: pre, cookie: c},
		{method: "OPTIONS", path: "/", origin: "http://evil.example", header: pre, cookie: c},
		{method: "GET", path: "/v1/vms", origin: "http://evil.example", cookie: c},
		{method: "POST", path: "/v1/vms", origin: "http://evil.example", cookie: c},
	} {
		resp, _ := f.do(t, r) // checkHeaders fails on any Access-Control-* header
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s %s allowed origin %q", r.method, r.path, got)
		}
	}
	if got := f.api.calls(); len(got) != 0 {
		t.Errorf("the API saw %v; a request from another origin must not reach it", got)
	}
}

func decodeB64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// TestSecurityHeaders: the policy names the listener's ws:// origin for
// the terminal, and the answers of the UI and the API carry it.
func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	c := f.login(t)
	for _, path := range []string{"/", "/v1/vms", "/login?token=nope", "/logout"} {
		resp, _ := f.do(t, req{path: path, cookie: c})
		csp := resp.Header.Get("Content-Security-Policy")
		if want := "connect-src 'self' ws://127.0.0.1:" + strconv.Itoa(f.port); !strings.Contains(csp, want) {
			t.Errorf("GET %s: policy %q lacks %q", path, csp, want)
		}
	}
}

// TestLogsHoldNoSecrets: logins, refused tokens, refused requests and
// revocation are logged, and no token or cookie value is.
func TestLogsHoldNoSecrets(t *testing.T) {
	f := newFixture(t)
	var secrets []string
	for range 3 {
		path, _ := f.h.Login()
		secrets = append(secrets, strings.TrimPrefix(path, "/login?token="))
		resp, _ := f.do(t, req{path: path})
		for _, c := range resp.Cookies() {
			secrets = append(secrets, c.Value)
			f.do(t, req{path: "/v1/vms", cookie: c})
			f.do(t, req{method: "POST", path: "/v1/vms", cookie: c, origin: "http://evil.example"})
			f.do(t, req{path: "/v1/vms", cookie: c, host: "evil.example:1"})
		}
		f.do(t, req{path: path}) // refused: spent
	}
	f.h.Revoke()
	log := f.log.String()
	for _, want := range []string{"web session started", "web login refused", "web request refused", "web sessions revoked"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	for _, s := range secrets {
		if len(s) < 40 {
			t.Fatalf("secret %q too short to be one", s)
		}
		if strings.Contains(log, s) || strings.Contains(log, url.QueryEscape(s)) {
			t.Errorf("the log holds a secret %q:\n%s", s, log)
		}
	}
}
