package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/localsock"
	"github.com/bangerdev/banger/internal/host/web"
	"github.com/bangerdev/banger/internal/host/web/ui"
)

// webListener is the web UI's loopback listener while it runs. Any local
// user can connect to it: package web refuses everything that lacks a
// session cookie, which only a login token minted over the owner-only
// socket (POST /v1/web/login) yields.
type webListener struct {
	mu      sync.Mutex
	addr    string // the bound address, "127.0.0.1:7180"
	handler *web.Handler
	srv     *http.Server
	served  chan struct{} // closed when Serve returned
	closed  bool          // the daemon is shutting down: no new listener
}

// startWeb turns the web listener on at listen ("" = the default), or
// returns the one that runs, when listen is "" or names its address.
func (d *Daemon) startWeb(listen string) (*webListener, error) {
	wl := &d.webUI
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if wl.closed {
		return nil, api.Errorf(api.CodeUnavailable, "bangerd is shutting down: run the command again to start a new one")
	}
	if listen != "" {
		if err := config.CheckWebListen(listen); err != nil {
			return nil, api.FieldErrorf("listen", "a loopback address, e.g. "+api.DefaultWebListen, "listen: %v", err)
		}
	}
	if wl.handler != nil {
		if listen != "" && !sameListen(listen, wl.addr) {
			return nil, api.FieldErrorf("listen", "", "the web UI already listens on %s, not %s: use that address (a daemon serves one web listener; web.listen says where it starts)", wl.addr, listen)
		}
		return wl, nil
	}
	if listen == "" {
		listen = api.DefaultWebListen
	}
	ln, err := net.Listen("tcp", listen)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, api.FieldErrorf("listen", "", "cannot serve the web UI on %s: the address is in use: give another port (listen, or web.listen in %s)", listen, d.cfg.Paths.ConfigFile)
	}
	if err != nil {
		return nil, fmt.Errorf("serving the web UI on %s: %w", listen, err)
	}
	// A name could resolve to another address: check what was bound.
	tcp := ln.Addr().(*net.TCPAddr)
	if !tcp.IP.IsLoopback() {
		ln.Close()
		return nil, api.FieldErrorf("listen", "", "listen %s bound %s, which is not a loopback address: give 127.0.0.1:PORT", listen, tcp)
	}
	log := d.log.With("listener", "web")
	h := web.New(web.Options{
		Port:      tcp.Port,
		API:       d.routes(),
		UI:        ui.Handler(),
		Terminals: web.GuestTerminals(d.guest),
		Policy:    ui.ContentSecurityPolicy,
		Log:       log,
	})
	uid := os.Getuid()
	srv := &http.Server{
		Handler: h,
		// The API handler checks the caller's uid; on this listener the
		// web handler has checked the session cookie, which stands for
		// the owner, before the API sees a request.
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, peer{cred: localsock.Cred{UID: uid}, web: true})
		},
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("serving the web UI", "error", err)
		}
	}()
	wl.addr, wl.handler, wl.srv, wl.served = ln.Addr().String(), h, srv, served
	log.Info("web UI listening", "addr", wl.addr)
	return wl, nil
}

// sameListen reports whether a listen address asks for the bound one:
// the same host (by address) and port, or any port for port 0.
func sameListen(listen, bound string) bool {
	lh, lp, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	bh, bp, _ := net.SplitHostPort(bound)
	if lp != "0" && lp != bp {
		return false
	}
	if lh == bh {
		return true
	}
	addrs, err := net.DefaultResolver.LookupHost(context.Background(), lh)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a == bh {
			return true
		}
	}
	return false
}

// stopWeb closes the web listener, its terminals and its connections,
// and refuses to start another.
func (d *Daemon) stopWeb(ctx context.Context) {
	wl := &d.webUI
	wl.mu.Lock()
	wl.closed = true
	h, srv, served := wl.handler, wl.srv, wl.served
	wl.mu.Unlock()
	if h == nil {
		return
	}
	// Terminals are hijacked connections, which Shutdown does not wait
	// for: the handler closes them first.
	if err := h.Close(ctx); err != nil {
		d.log.Warn("closing web terminals", "error", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		d.log.Warn("closing web connections", "error", err)
		srv.Close()
	}
	<-served
}

// onSocket refuses a request that did not come over the Unix socket: a
// browser session must not mint login tokens or end other sessions.
func onSocket(r *http.Request) error {
	if p, _ := r.Context().Value(peerKey{}).(peer); p.web {
		return api.Errorf(api.CodePermissionDenied, "%s is served on bangerd's socket only: run `banger web` on the host", r.URL.Path)
	}
	return nil
}

// postWebLogin turns the web listener on if needed and answers a one-time
// login URL.
func (d *Daemon) postWebLogin(w http.ResponseWriter, r *http.Request) error {
	if err := onSocket(r); err != nil {
		return err
	}
	var req api.WebLoginRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	listen := req.Listen
	if listen == "" {
		listen = d.cfg.Web.Listen
	}
	wl, err := d.startWeb(listen)
	if err != nil {
		return err
	}
	path, exp := wl.handler.Login()
	d.log.Info("web login token minted", "addr", wl.addr, "expires_at", exp.UTC())
	return writeJSON(w, http.StatusOK, api.WebLogin{URL: "http://" + wl.addr + path, Listen: wl.addr, ExpiresAt: exp.UTC()})
}

// postWebRevoke ends every web session and drops every unused token.
func (d *Daemon) postWebRevoke(w http.ResponseWriter, r *http.Request) error {
	if err := onSocket(r); err != nil {
		return err
	}
	var res api.WebRevoked
	wl := &d.webUI
	wl.mu.Lock()
	h := wl.handler
	wl.mu.Unlock()
	if h != nil {
		res.Sessions, res.Tokens = h.Revoke()
	}
	return writeJSON(w, http.StatusOK, res)
}
