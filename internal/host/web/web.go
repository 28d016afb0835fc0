// Package web is the handler of bangerd's web listener: a loopback TCP
// address where any local user can connect, so it serves nothing without
// a valid session cookie, and nothing to a page of another origin.
//
// A browser logs in by opening the URL `banger web` prints: GET
// /login?token=T spends a one-time token (32 random bytes, base64url,
// valid for TokenTTL, minted by the daemon over its owner-only socket
// with Login) for a session cookie, CookieName (32 random bytes;
// HttpOnly, SameSite=Strict, Path=/, not Secure since this is http on
// loopback), and is redirected to /. A session ends after SessionIdle
// without a request, SessionMax after its login, at GET /logout, or at
// Revoke. Tokens and cookies are kept by their SHA-256 only and never
// logged.
//
// Every request, before anything else:
//   - its Host must be a loopback name or address with the listener's
//     port (a DNS-rebinding page names its own host): else 403;
//   - a state-changing one (POST, PUT, PATCH, DELETE, a WebSocket
//     upgrade) must carry an Origin equal to the listener's origin
//     ("http://" + Host), and any other that carries an Origin too:
//     else 403;
//   - one a browser marks as sent by another site or another port of
//     this host (Sec-Fetch-Site) is refused unless it is a top-level
//     navigation: 403;
//   - without a live session it gets 401: an api.Error with code
//     unauthenticated under /v1, a page saying to run `banger web`
//     elsewhere.
//
// No answer carries an Access-Control-* header, and every answer carries
// the security headers (Content-Security-Policy, nosniff, no referrer,
// no framing); /v1 answers are not stored.
//
// Behind the session: /v1/… is the daemon's own API handler, the one its
// Unix socket serves (the daemon has it act for its owner, whom the
// cookie stands for here); GET /v1/vms/{name}/sessions/{id}/terminal is
// the WebSocket terminal (see Terminals); everything else is the UI
// handler (package ui).
//
// # Terminal protocol
//
// GET /v1/vms/{name}/sessions/{id}/terminal?since=N upgrades to a
// WebSocket joined to a new attachment of the session, output replayed
// from offset N (absent or -1: everything still buffered). Several
// browsers may hold terminals to one session: each is its own attachment.
// From the server: first a text message {"type":"session","session":S}
// (the session as the attach began: tty, output_bytes, buffered_from);
// then binary messages, the output bytes in order (stdout and stderr of a
// pipe session interleaved), and text messages {"type":"gap","offset":O,
// "dropped":D} where output is no longer buffered; {"type":"error",
// "error":E} for a refused message or a failed attach; at the end
// {"type":"exit","session":S} and a normal close ("session ended"). From
// the browser, text messages: {"type":"input","data":"…"} (at most
// MaxInput bytes), {"type":"resize","rows":R,"cols":C} (TTY sessions;
// ignored for pipe sessions) and {"type":"detach"} (closed normally,
// "detached"; the session goes on). A message over MaxMessage closes the
// connection (1009). Close codes: 1000 session ended or detached, 1001
// bangerd is shutting down, 1008 the web session ended, 1011 an error
// (the error message before it says which).
package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
)

// CookieName is the session cookie.
const CookieName = "banger_session"

// DefaultPolicy is the Content-Security-Policy sent when Options.Policy
// is empty: everything from the listener itself, nothing inline, no
// framing.
const DefaultPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Options configure a Handler.
type Options struct {
	// Port is the listener's TCP port: requests must name it in Host.
	Port int
	// API serves /v1/… (the daemon's API handler).
	API http.Handler
	// UI serves the pages and assets.
	UI http.Handler
	// Terminals opens the terminal endpoint's streams; nil answers 501.
	Terminals Terminals
	// Policy is the Content-Security-Policy of the pages; "" is
	// DefaultPolicy. Its connect-src 'self' is extended with the
	// listener's ws:// origin, which not every browser counts as 'self'.
	Policy string
	// Log receives refusals and logins (never a token or a cookie).
	Log *slog.Logger
	// Now is the clock of the credentials' lifetimes; nil is time.Now.
	Now func() time.Time
}

// Handler is the web listener's handler.
type Handler struct {
	port   string
	api    http.Handler
	ui     http.Handler
	terms  Terminals
	policy string
	log    *slog.Logger
	auth   *auth
	mux    *http.ServeMux

	// ctx ends at Close, and with it every session and terminal.
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	conns  sync.WaitGroup // terminals
}

// New returns the handler of a listener on o.Port.
func New(o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Policy == "" {
		o.Policy = DefaultPolicy
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handler{
		port: strconv.Itoa(o.Port), api: o.API, ui: o.UI, terms: o.Terminals, policy: o.Policy,
		log: o.Log, auth: newAuth(ctx, o.Now), ctx: ctx, cancel: cancel,
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /"+api.Version+"/vms/{name}/sessions/{id}/terminal", h.terminal)
	if o.API != nil {
		h.mux.Handle("/"+api.Version+"/", o.API)
	}
	if o.UI != nil {
		h.mux.Handle("/", o.UI)
	}
	return h
}

// Login mints a one-time login token and returns the path that spends it
// ("/login?token=…") and when it expires unused.
func (h *Handler) Login() (path string, expires time.Time) {
	token, exp := h.auth.mint()
	return "/login?token=" + token, exp
}

// Revoke ends every browser session (their streams and terminals too)
// and drops every unused token; it returns how many of each.
func (h *Handler) Revoke() (sessions, tokens int) {
	sessions, tokens = h.auth.revoke()
	h.log.Info("web sessions revoked", "sessions", sessions, "tokens", tokens)
	return sessions, tokens
}

// Close ends every session and terminal (terminals close with 1001,
// "bangerd is shutting down") and waits for the terminals, at most until
// ctx ends. Call it before shutting the http.Server down: terminals are
// hijacked connections the server does not track.
func (h *Handler) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	done := make(chan struct{})
	go func() { h.conns.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// track counts a terminal in, unless the handler is closing.
func (h *Handler) track() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns.Add(1)
	return true
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
	if !h.loopbackHost(r.Host) {
		hdr.Set("Content-Security-Policy", h.policy)
		h.refuse(w, r, http.StatusForbidden, "wrong host",
			"This address does not serve banger's web UI",
			"banger's web UI answers only to a loopback address with its own port, e.g. http://127.0.0.1:"+h.port+"/: open the URL `banger web` prints.")
		return
	}
	hdr.Set("Content-Security-Policy", strings.Replace(h.policy, "connect-src 'self'", "connect-src 'self' ws://"+r.Host, 1))
	// A browser names the page behind a cross-origin request (and any
	// WebSocket's) in Origin; a state-changing request must name ours.
	if origin, ok := r.Header["Origin"]; (ok || changesState(r)) && (len(origin) != 1 || origin[0] != "http://"+r.Host) {
		h.refuse(w, r, http.StatusForbidden, "foreign origin",
			"Refused: request from another page",
			"banger's web UI takes changes only from its own pages (the request's Origin must be http://"+r.Host+").")
		return
	}
	if fromElsewhere(r) {
		h.refuse(w, r, http.StatusForbidden, "cross-site fetch",
			"Refused: request from another site",
			"banger's web UI serves its own pages only; open it from the URL `banger web` prints.")
		return
	}
	switch r.URL.Path {
	case "/login":
		h.login(w, r)
		return
	case "/logout":
		h.logout(w, r)
		return
	}
	s, ok := h.session(r)
	if !ok {
		h.unauthenticated(w, r)
		return
	}
	// The request lasts no longer than its web session.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	if isAPI(r.URL.Path) {
		hdr.Set("Cache-Control", "no-store")
	}
	h.mux.ServeHTTP(w, r.WithContext(ctx))
}

// loopbackHost reports whether a Host header names this listener by a
// loopback name or address.
func (h *Handler) loopbackHost(host string) bool {
	name, port, err := net.SplitHostPort(host)
	if err != nil {
		name, port = host, "80" // a browser leaves the default port out
	}
	return port == h.port && config.IsLoopbackHost(name)
}

// changesState reports whether r may change something: a method other
// than GET, HEAD and OPTIONS, or a WebSocket upgrade.
func changesState(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return r.Header.Get("Upgrade") != ""
	}
	return true
}

// fromElsewhere reports whether the browser says r was made by a page of
// another site, or of the same site on another port (Sec-Fetch-Site
// "cross-site" or "same-site": cookies ignore ports, so a page another
// user serves on another loopback port is "same-site"), other than a
// top-level navigation. Browsers that send no Sec-Fetch-Site rely on the
// other checks.
func fromElsewhere(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return false
	}
	return !(r.Method == http.MethodGet && r.Header.Get("Sec-Fetch-Mode") == "navigate" && !isAPI(r.URL.Path))
}

func isAPI(path string) bool {
	return path == "/"+api.Version || strings.HasPrefix(path, "/"+api.Version+"/")
}

// session returns the live session r's cookie names.
func (h *Handler) session(r *http.Request) (*session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil, false
	}
	return h.auth.session(c.Value)
}

// login spends the token of GET /login?token=T for a session cookie.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		h.refuse(w, r, http.StatusMethodNotAllowed, "login method", "Method not allowed", "Open the login URL in a browser.")
		return
	}
	cookie, ok := h.auth.redeem(r.URL.Query().Get("token"))
	if !ok {
		if _, in := h.session(r); in {
			// Already logged in (a reload of the spent URL, say).
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		h.log.Warn("web login refused: the token is unknown, used or expired", "remote", r.RemoteAddr)
		writePage(w, http.StatusUnauthorized, "This login link is not valid",
			"A login link works once, within 5 minutes. Run `banger web` and open the new URL it prints.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: cookie, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	h.log.Info("web session started", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends the request's session and forgets its cookie.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if c, err := r.Cookie(CookieName); err == nil {
		h.auth.end(c.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	writePage(w, http.StatusOK, "Logged out",
		"This browser is logged out of banger. Run `banger web` and open the URL it prints to log in again.")
}

// unauthenticated answers a request without a live session.
func (h *Handler) unauthenticated(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if isAPI(r.URL.Path) {
		writeAPIError(w, api.Errorf(api.CodeUnauthenticated,
			"this request carries no live banger web session: run `banger web` and open the URL it prints"))
		return
	}
	writePage(w, http.StatusUnauthorized, "Log in to banger",
		"This browser is not logged in, or its session ended: run `banger web` and open the URL it prints.")
}

// refuse answers a request the checks refused: an api.Error under /v1, a
// page elsewhere. The log says why, with the Host and path, never a
// header's or the query's secrets.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, why, title, message string) {
	h.log.Warn("web request refused", "reason", why, "method", r.Method, "host", r.Host, "path", r.URL.Path,
		"origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
	w.Header().Set("Cache-Control", "no-store")
	if isAPI(r.URL.Path) {
		code := api.CodePermissionDenied
		if status == http.StatusMethodNotAllowed {
			code = api.CodeInvalidArgument
		}
		e := api.Errorf(code, "%s", message)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(api.ErrorBody{Error: e})
		return
	}
	writePage(w, status, title, message)
}

// writeAPIError answers with an api.Error and its status.
func writeAPIError(w http.ResponseWriter, err error) {
	e := api.FromError(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.Code.HTTPStatus())
	json.NewEncoder(w).Encode(api.ErrorBody{Error: e})
}
