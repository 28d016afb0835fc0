// Package ui owns the web UI's front end: the HTML page, style sheets and
// JavaScript modules that bangerd serves on its loopback web listener, all
// embedded in the binary with go:embed, and the handler that serves them.
//
// The front end is plain HTML, CSS and vanilla JavaScript modules, with no
// framework, build step or bundler: the files under static/ are what the
// browser runs. Its only third-party code is xterm.js (@xterm/xterm and
// @xterm/addon-fit), vendored under static/vendor/xterm by
// scripts/fetch-web-assets.sh with pinned versions and integrity hashes.
// Nothing is loaded from the internet.
//
// The page talks to the daemon only through the same-origin JSON API under
// /v1 (which package web mounts beside this handler): it lists VMs, images
// and operations once, then follows GET /v1/events. Text that comes from a
// guest or the daemon is only ever inserted with textContent.
//
// Handler serves:
//   - /static/… : the embedded assets, with explicit content types;
//   - the app's routes (/, /vm/NAME, /vm/NAME/session/ID, /vm/NAME/diff, /images,
//     /images/NAME, /images/build, /images/bootstrap, /images/register,
//     /operations, /create, and anything below them): index.html, whose
//     JavaScript router draws the page the path names.
//
// Every answer carries an ETag and "Cache-Control: no-cache", so a browser
// revalidates each file and a new bangerd's files are used at once.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// ContentSecurityPolicy is the policy the page is written for; package web
// sends it on every answer. Scripts and everything else come only from the
// listener itself. Styles also allow 'unsafe-inline' because xterm.js 6's
// DOM renderer injects <style> elements and style attributes for the
// terminal's cells; the UI's own markup has no inline style, script or
// event handler.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// StaticPrefix is the URL path under which the assets are served.
const StaticPrefix = "/static/"

// AppRoutes are the first path segments the JavaScript router draws
// (besides "/" itself); any path at or below one of them gets index.html.
var AppRoutes = []string{"vm", "images", "operations", "create"}

// contentTypes are the media types of the files under static/, by
// extension. A file with another extension is not served.
var contentTypes = map[string]string{
	".html":    "text/html; charset=utf-8",
	".css":     "text/css; charset=utf-8",
	".js":      "text/javascript; charset=utf-8",
	".mjs":     "text/javascript; charset=utf-8",
	".svg":     "image/svg+xml",
	".LICENSE": "text/plain; charset=utf-8",
	".txt":     "text/plain; charset=utf-8",
}

// ContentType returns the media type Handler serves a file name with, or
// "" when it does not serve such files.
func ContentType(name string) string {
	if path.Base(name) == "SHA256SUMS" {
		return "text/plain; charset=utf-8"
	}
	return contentTypes[path.Ext(name)]
}

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// handler serves the embedded files.
type handler struct {
	assets map[string]asset // by URL path, "/static/js/app.js"
	index  asset
}

// Handler returns the handler of the UI's pages and assets. It answers GET
// and HEAD only.
func Handler() http.Handler {
	h, err := newHandler(static)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time; tests read all of it
	}
	return h
}

func newHandler(fsys fs.FS) (*handler, error) {
	h := &handler{assets: map[string]asset{}}
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct := ContentType(p)
		if ct == "" {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		a := asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		h.assets["/"+p] = a
		if p == "static/index.html" {
			h.index = a
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if h.index.body == nil {
		return nil, fs.ErrNotExist
	}
	return h, nil
}

// IsAppRoute reports whether p is a path the JavaScript router draws.
func IsAppRoute(p string) bool {
	if p == "/" || p == "/index.html" {
		return true
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	for _, r := range AppRoutes {
		if first == r {
			return true
		}
	}
	return false
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the web UI's pages and files are only read (GET)", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	a, ok := h.assets[p]
	switch {
	case ok:
	case strings.HasPrefix(p, StaticPrefix):
		http.Error(w, "no such file in this bangerd's web UI: "+p, http.StatusNotFound)
		return
	case IsAppRoute(p):
		a = h.index
	default:
		http.Error(w, "no such page: the web UI starts at /", http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Write(a.body)
}

// etagMatches reports whether an If-None-Match header names etag (or *).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		t = strings.TrimPrefix(t, "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
