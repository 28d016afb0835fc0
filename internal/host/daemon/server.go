package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/localsock"
)

type peerKey struct{}

type peer struct {
	cred localsock.Cred
	err  error
	web  bool // the web listener's connection, authenticated by package web
}

// withPeer records the connection's peer credentials in its context; the
// handler chain checks them once, for every request.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	cred, err := localsock.PeerCred(c)
	return context.WithValue(ctx, peerKey{}, peer{cred: cred, err: err})
}

// routes is the whole /v1 surface.
func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.Handle(pattern, errorHandler(h))
	}
	v := "/" + api.Version
	handle("GET "+v+"/daemon", d.getDaemon)
	handle("POST "+v+"/daemon/shutdown", d.postShutdown)
	handle("GET "+v+"/operations", d.listOperations)
	handle("GET "+v+"/operations/{id}", d.getOperation)
	handle("GET "+v+"/operations/{id}/events", d.streamOperation)
	handle("POST "+v+"/operations/{id}/cancel", d.cancelOperation)
	handle("GET "+v+"/events", d.streamEvents)
	handle("GET "+v+"/images", d.listImages)
	handle("GET "+v+"/images/{name}", d.getImage)
	handle("DELETE "+v+"/images/{name}", d.deleteImage)
	handle("POST "+v+"/images/register", d.registerImage)
	handle("POST "+v+"/images/bootstrap", d.bootstrapImage)
	handle("POST "+v+"/images/build", d.buildImage)
	handle("POST "+v+"/images/{name}/promote", d.promoteImage)
	handle("POST "+v+"/images/{name}/warm", d.warmImage)
	handle("DELETE "+v+"/images/{name}/warm", d.unwarmImage)
	handle("GET "+v+"/vms", d.listVMs)
	handle("POST "+v+"/vms", d.createVM)
	handle("GET "+v+"/vms/{name}", d.getVM)
	handle("DELETE "+v+"/vms/{name}", d.deleteVM)
	handle("POST "+v+"/vms/{name}/start", d.startVM)
	handle("POST "+v+"/vms/{name}/stop", d.stopVM)
	handle("POST "+v+"/vms/{name}/restart", d.restartVM)
	handle("POST "+v+"/vms/{name}/pause", d.pauseVM)
	handle("POST "+v+"/vms/{name}/resume", d.resumeVM)
	handle("POST "+v+"/vms/{name}/fork", d.forkVM)
	handle("GET "+v+"/vms/{name}/ssh", d.sshVM)
	handle("GET "+v+"/vms/{name}/console", d.consoleVM)
	handle("POST "+v+"/vms/{name}/exec", d.execVM)
	handle("PUT "+v+"/vms/{name}/workspace", d.prepareWorkspace)
	handle("GET "+v+"/vms/{name}/workspace/diff", d.workspaceDiff)
	handle("GET "+v+"/vms/{name}/workspace/bundle", d.workspaceBundle)
	handle("GET "+v+"/vms/{name}/workspace/files", d.workspaceFiles)
	handle("PUT "+v+"/vms/{name}/files", d.copyIn)
	handle("GET "+v+"/vms/{name}/files", d.copyOut)
	handle("GET "+v+"/vms/{name}/sessions", d.listSessions)
	handle("POST "+v+"/vms/{name}/sessions", d.startSession)
	handle("GET "+v+"/vms/{name}/sessions/{id}", d.getSession)
	handle("DELETE "+v+"/vms/{name}/sessions/{id}", d.removeSession)
	handle("POST "+v+"/vms/{name}/sessions/{id}/signal", d.signalSession)
	handle("POST "+v+"/vms/{name}/sessions/{id}/attach", d.attachSession)
	handle("GET "+v+"/vms/{name}/stats", d.vmStats)
	d.portRoutes(handle)
	handle("GET "+v+"/stats", d.allStats)
	handle("GET "+v+"/verify", d.verify)
	handle("GET "+v+"/doctor", d.getDoctor)
	handle("POST "+v+"/doctor/deep", d.postDeepDoctor)
	handle("POST "+v+"/web/login", d.postWebLogin)
	handle("POST "+v+"/web/revoke", d.postWebRevoke)
	d.egressRoutes(handle)
	handle("/", func(w http.ResponseWriter, r *http.Request) error {
		return api.Errorf(api.CodeNotFound, "bangerd (build %s) has no endpoint %s %s: the banger CLI and bangerd are out of step; run `banger daemon restart`",
			d.build.BuildID, r.Method, r.URL.Path)
	})
	return d.middleware(mux)
}

// middleware checks the caller's identity, stamps the build headers, and
// turns a handler panic into an internal error instead of a dropped
// connection.
func (d *Daemon) middleware(next http.Handler) http.Handler {
	uid := os.Getuid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderBuildID, d.build.BuildID)
		w.Header().Set(api.HeaderVersion, d.build.Version)
		p, ok := r.Context().Value(peerKey{}).(peer)
		if !ok { // never read: fail closed rather than pass as uid 0
			p.err = fmt.Errorf("no peer credentials were recorded for the connection")
		}
		switch {
		case p.err != nil:
			writeError(w, api.Errorf(api.CodePermissionDenied, "bangerd could not identify the caller: %v", p.err))
			return
		case p.cred.UID != uid:
			d.log.Warn("refused connection from another user", "peer_uid", p.cred.UID, "peer_pid", p.cred.PID)
			writeError(w, api.Errorf(api.CodePermissionDenied,
				"this bangerd (socket %s) serves uid %d only and you are uid %d: run banger as uid %d, or use a daemon of your own (set BANGER_HOME or XDG_RUNTIME_DIR)",
				d.cfg.Paths.Socket(), uid, p.cred.UID, uid))
			return
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				d.log.Error("handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeError(w, api.Errorf(api.CodeInternal, "bangerd hit an internal error handling %s; details are in %s",
					r.URL.Path, d.logPlace()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func errorHandler(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, err)
		}
	})
}

func writeError(w http.ResponseWriter, err error) {
	e := api.FromError(err)
	writeJSON(w, e.Code.HTTPStatus(), api.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decodeBody reads a JSON request body into v; an empty body leaves v as is.
func decodeBody(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Errorf(api.CodeInvalidArgument, "bad request body: %v", err)
	}
	// One JSON value per body: anything after it is a malformed request,
	// not a second one to ignore.
	if _, err := dec.Token(); err != io.EOF {
		return api.Errorf(api.CodeInvalidArgument, "bad request body: more than one JSON value: send exactly one object")
	}
	return nil
}
