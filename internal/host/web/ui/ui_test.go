package ui

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func serve(t *testing.T, method, target string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec
}

// embedded lists every file under static/ with the URL path it is served at.
func embedded(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files["/"+p] = p
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestRoutes: every app route is the index page, every asset is served
// with its content type, and what is neither is a 404 — never the index.
func TestRoutes(t *testing.T) {
	index, err := fs.ReadFile(static, "static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path     string
		status   int
		ctype    string
		wantBody []byte // nil: not compared
	}{
		{"/", 200, "text/html; charset=utf-8", index},
		{"/index.html", 200, "text/html; charset=utf-8", index},
		{"/vm/brisk-otter", 200, "text/html; charset=utf-8", index},
		{"/vm/brisk-otter/session/s-1234", 200, "text/html; charset=utf-8", index},
		{"/vm/brisk-otter/diff", 200, "text/html; charset=utf-8", index},
		{"/vm/brisk-otter/anything/below", 200, "text/html; charset=utf-8", index},
		{"/images", 200, "text/html; charset=utf-8", index},
		{"/images/agents", 200, "text/html; charset=utf-8", index},
		{"/images/build", 200, "text/html; charset=utf-8", index},
		{"/images/bootstrap", 200, "text/html; charset=utf-8", index},
		{"/images/register", 200, "text/html; charset=utf-8", index},
		{"/operations", 200, "text/html; charset=utf-8", index},
		{"/operations?id=op-1", 200, "text/html; charset=utf-8", index},
		{"/create", 200, "text/html; charset=utf-8", index},
		{"/static/js/app.js", 200, "text/javascript; charset=utf-8", nil},
		{"/static/css/app.css", 200, "text/css; charset=utf-8", nil},
		{"/static/vendor/xterm/xterm.mjs", 200, "text/javascript; charset=utf-8", nil},
		{"/static/vendor/xterm/addon-fit.mjs", 200, "text/javascript; charset=utf-8", nil},
		{"/static/vendor/xterm/xterm.css", 200, "text/css; charset=utf-8", nil},
		{"/static/vendor/xterm/xterm.LICENSE", 200, "text/plain; charset=utf-8", nil},
		{"/static/js/missing.js", 404, "", nil},
		{"/static/", 404, "", nil},
		{"/static", 404, "", nil},
		{"/favicon.ico", 404, "", nil},
		{"/vmx", 404, "", nil},
		{"/etc/passwd", 404, "", nil},
		{"/static/../ui.go", 404, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			rec := serve(t, "GET", tc.path, nil)
			if rec.Code != tc.status {
				t.Fatalf("GET %s: status %d, want %d (%s)", tc.path, rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				if bytes.Equal(rec.Body.Bytes(), index) {
					t.Errorf("GET %s: a 404 must not be the index page", tc.path)
				}
				return
			}
			if got := rec.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if tc.wantBody != nil && !bytes.Equal(rec.Body.Bytes(), tc.wantBody) {
				t.Errorf("GET %s: not the index page", tc.path)
			}
			for k, want := range map[string]string{"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"} {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestEveryAssetIsServed: each embedded file is served, byte for byte,
// with a content type from the table; a file type without one would be
// silently unreachable.
func TestEveryAssetIsServed(t *testing.T) {
	for url, p := range embedded(t) {
		ct := ContentType(p)
		if ct == "" {
			t.Errorf("%s has no content type: add its extension to contentTypes", p)
			continue
		}
		want, _ := fs.ReadFile(static, p)
		rec := serve(t, "GET", url, nil)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != ct || !bytes.Equal(rec.Body.Bytes(), want) {
			t.Errorf("GET %s: status %d, type %q, %d bytes; want 200, %q, %d bytes", url, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len(), ct, len(want))
		}
	}
}

// TestRevalidation: an ETag answers If-None-Match with 304; HEAD has no
// body; other methods are refused.
func TestRevalidation(t *testing.T) {
	first := serve(t, "GET", "/static/js/app.js", nil)
	etag := first.Header().Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(etag) {
		t.Fatalf("ETag %q is not a quoted digest", etag)
	}
	tests := []struct {
		name   string
		method string
		path   string
		hdr    http.Header
		status int
		body   bool
	}{
		{"same etag", "GET", "/static/js/app.js", http.Header{"If-None-Match": {etag}}, 304, false},
		{"weak and listed", "GET", "/static/js/app.js", http.Header{"If-None-Match": {`"x", W/` + etag}}, 304, false},
		{"other etag", "GET", "/static/js/app.js", http.Header{"If-None-Match": {`"0000"`}}, 200, true},
		{"index etag is not app.js's", "GET", "/", http.Header{"If-None-Match": {etag}}, 200, true},
		{"head", "HEAD", "/vm/x", nil, 200, false},
		{"post", "POST", "/", nil, 405, true},
		{"delete", "DELETE", "/static/js/app.js", nil, 405, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(t, tc.method, tc.path, tc.hdr)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if got := rec.Body.Len() > 0; got != tc.body {
				t.Errorf("body present %v, want %v", got, tc.body)
			}
		})
	}
}

func TestIsAppRoute(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/vm/a": true, "/vm": true, "/images/x/y": true, "/operations": true, "/create": true,
		"/v1/vms": false, "/login": false, "/logout": false, "/static/x": false, "/createx": false, "/vms": false,
	} {
		if got := IsAppRoute(p); got != want {
			t.Errorf("IsAppRoute(%q) = %v, want %v", p, got, want)
		}
	}
}

// externalRefs finds what in a text file could make a browser reach
// beyond the listener: absolute URLs with a scheme, and protocol-relative
// references in src/href/url(). URLs inside comments are documentation
// and XML namespace names (the SVG and XHTML namespaces) are identifiers,
// never fetched; both are left out.
func externalRefs(name, text string) []string {
	var found []string
	scheme := regexp.MustCompile(`(?i)\b(?:https?|wss?|ftp)://[^\s"'<>)]*`)
	for _, m := range scheme.FindAllStringIndex(text, -1) {
		u := text[m[0]:m[1]]
		if strings.HasPrefix(u, "http://www.w3.org/") || inComment(name, text, m[0]) {
			continue
		}
		found = append(found, u)
	}
	rel := regexp.MustCompile(`(?i)(?:\b(?:src|href|action)\s*=\s*["']?|url\(\s*["']?|\bfrom\s+["']|\bimport\s*\(?\s*["'])//[^\s"'<>)]+`)
	for _, m := range rel.FindAllStringIndex(text, -1) {
		if !inComment(name, text, m[0]) {
			found = append(found, text[m[0]:m[1]])
		}
	}
	return found
}

// inComment reports whether offset i of a file lies inside a comment:
// /* … */ (JS, CSS), a line that starts with // or * (JS), or <!-- … -->
// (HTML). It is textual and strict: a URL after code on the same line
// counts as code.
func inComment(name, text string, i int) bool {
	before := text[:i]
	if open := strings.LastIndex(before, "/*"); open >= 0 && !strings.Contains(before[open:], "*/") {
		return true
	}
	if strings.HasSuffix(name, ".html") {
		if open := strings.LastIndex(before, "<!--"); open >= 0 && !strings.Contains(before[open:], "-->") {
			return true
		}
		return false
	}
	line := before[strings.LastIndex(before, "\n")+1:]
	trim := strings.TrimSpace(line)
	return strings.HasPrefix(trim, "//") || strings.HasPrefix(trim, "*")
}

func TestExternalRefsFinds(t *testing.T) {
	tests := []struct {
		name, file, text string
		want             []string
	}{
		{"fetch in code", "a.js", `fetch("https://cdn.example/x.js")`, []string{"https://cdn.example/x.js"}},
		{"script src", "a.html", `<script src="http://evil.example/a.js"></script>`, []string{"http://evil.example/a.js"}},
		{"protocol-relative", "a.html", `<link href="//fonts.example/css">`, []string{`href="//fonts.example/css`}},
		{"css url", "a.css", `a { background: url(//img.example/x.png) }`, []string{"url(//img.example/x.png"}},
		{"websocket", "a.js", `new WebSocket('wss://other.example/ws')`, []string{"wss://other.example/ws"}},
		{"import", "a.js", `import x from '//cdn.example/m.js';`, []string{"from '//cdn.example/m.js"}},
		{"block comment", "a.js", "/* from http://bellard.org/jslinux/ */ x()", nil},
		{"line comment", "a.js", "// see https://example.org/doc\nx()", nil},
		{"html comment", "a.html", "<!-- https://example.org -->", nil},
		{"svg namespace", "a.js", `createElementNS('http://www.w3.org/2000/svg', 'svg')`, nil},
		{"after a closed comment", "a.js", "/* c */ fetch('https://x.example/')", []string{"https://x.example/"}},
		{"same-origin path", "a.js", `fetch('/v1/vms')`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, externalRefs(tc.file, tc.text)); diff != "" {
				t.Errorf("externalRefs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNoExternalURLs: nothing the page loads reaches the internet. Only
// the licence files may name URLs freely.
func TestNoExternalURLs(t *testing.T) {
	for _, p := range embedded(t) {
		if strings.HasSuffix(p, ".LICENSE") || path.Base(p) == "SHA256SUMS" {
			continue
		}
		b, _ := fs.ReadFile(static, p)
		if refs := externalRefs(p, string(b)); len(refs) > 0 {
			t.Errorf("%s references outside the listener: %q", p, refs)
		}
	}
}

// ourJS lists the UI's own scripts (not the vendored ones).
func ourJS(t *testing.T) []string {
	var out []string
	for _, p := range embedded(t) {
		if strings.HasSuffix(p, ".js") && !strings.Contains(p, "/vendor/") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatal("no scripts embedded")
	}
	return out
}

// TestTextStaysText: the UI's own code never turns a string into markup
// or code, so guest and daemon text can only ever be text (SPEC §8), and
// nothing in the page needs the CSP relaxed for scripts: no inline
// script, inline handler or style attribute in the HTML, no innerHTML,
// outerHTML, insertAdjacentHTML, document.write, eval or Function in JS.
func TestTextStaysText(t *testing.T) {
	banned := regexp.MustCompile(`\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\s*\(|\bnew\s+Function\b|setAttribute\(\s*['"](?:style|on)|\.style\.cssText`)
	for _, p := range ourJS(t) {
		b, _ := fs.ReadFile(static, p)
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			if m := banned.FindString(line); m != "" {
				t.Errorf("%s:%d: %s turns text into markup or code; build elements with dom.js and insert text with textContent", p, n, m)
			}
		}
	}
	html, _ := fs.ReadFile(static, "static/index.html")
	for _, tag := range regexp.MustCompile(`(?i)<script\b[^>]*>`).FindAll(html, -1) {
		if !regexp.MustCompile(`(?i)\ssrc="/static/`).Match(tag) {
			t.Errorf("index.html: %s is not an embedded script file", tag)
		}
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?is)<script(?:\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`(?i)\sstyle\s*=`),
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
		regexp.MustCompile(`(?i)<style\b`),
		regexp.MustCompile(`(?i)javascript:`),
	} {
		if m := re.Find(html); m != nil {
			t.Errorf("index.html: %q breaks the page's CSP (no inline script, style or handler)", m)
		}
	}
}

// TestModuleImportsResolve: every import of the UI's modules names an
// embedded file, so a typo is caught here and not as a blank page.
func TestModuleImportsResolve(t *testing.T) {
	files := embedded(t)
	imp := regexp.MustCompile(`(?m)^\s*import\s+(?:[^'"]*\s+from\s+)?['"]([^'"]+)['"]`)
	for _, p := range ourJS(t) {
		b, _ := fs.ReadFile(static, p)
		ms := imp.FindAllSubmatch(b, -1)
		for _, m := range ms {
			spec := string(m[1])
			var target string
			switch {
			case strings.HasPrefix(spec, "/"):
				target = path.Clean(spec)
			case strings.HasPrefix(spec, "./"), strings.HasPrefix(spec, "../"):
				target = path.Join("/", path.Dir(p), spec)
			default:
				t.Errorf("%s imports %q: only paths (/…, ./…) load in a browser without a bundler", p, spec)
				continue
			}
			if _, ok := files[target]; !ok {
				t.Errorf("%s imports %q (%s), which is not embedded", p, spec, target)
			}
		}
	}
	html, _ := fs.ReadFile(static, "static/index.html")
	for _, m := range regexp.MustCompile(`(?:src|href)="(/[^"]*)"`).FindAllSubmatch(html, -1) {
		u := string(m[1])
		if strings.HasPrefix(u, StaticPrefix) {
			if _, ok := files[u]; !ok {
				t.Errorf("index.html loads %s, which is not embedded", u)
			}
		} else if !IsAppRoute(u) {
			t.Errorf("index.html links %s, which is neither an asset nor an app route", u)
		}
	}
}

// TestJavaScriptParses runs node --check on every script, as a module.
func TestJavaScriptParses(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the scripts' syntax is not checked here (apt-get install nodejs)")
	}
	var all []string
	for _, p := range embedded(t) {
		if strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".mjs") {
			all = append(all, p)
		}
	}
	sort.Strings(all)
	for _, p := range all {
		b, _ := fs.ReadFile(static, p)
		// From stdin with --input-type=module: node 20 does not report
		// a syntax error in a .js file it cannot classify.
		cmd := exec.Command(node, "--input-type=module", "--check")
		cmd.Stdin = bytes.NewReader(b)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s does not parse as a module: %v\n%s", p, err, out)
		}
	}
	// The check itself must be able to fail.
	cmd := exec.Command(node, "--input-type=module", "--check")
	cmd.Stdin = strings.NewReader("export const a = ;\n")
	if err := cmd.Run(); err == nil {
		t.Fatal("node --check accepted a syntax error: this test cannot see broken scripts")
	}
}

// vendorDir is where scripts/fetch-web-assets.sh puts xterm.js.
const vendorDir = "static/vendor/xterm"

// TestVendoredFiles: the committed xterm.js files are the ones
// scripts/fetch-web-assets.sh verified against its pinned integrity
// (SHA256SUMS, written by it), the pins in SHA256SUMS are the script's,
// and xterm is the version the UI is written for.
func TestVendoredFiles(t *testing.T) {
	sums, err := fs.ReadFile(static, vendorDir+"/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	var pins []string
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		if rest, ok := strings.CutPrefix(line, "# @"); ok {
			pins = append(pins, "@"+rest)
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS: cannot read %q", line)
		}
		listed[name] = sum
	}
	entries, err := fs.ReadDir(static, vendorDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "SHA256SUMS" {
			continue
		}
		b, _ := fs.ReadFile(static, vendorDir+"/"+e.Name())
		got := sha256.Sum256(b)
		want, ok := listed[e.Name()]
		delete(listed, e.Name())
		switch {
		case !ok:
			t.Errorf("%s/%s is not in SHA256SUMS: vendored files come only from scripts/fetch-web-assets.sh", vendorDir, e.Name())
		case hex.EncodeToString(got[:]) != want:
			t.Errorf("%s/%s differs from what scripts/fetch-web-assets.sh fetched: run scripts/fetch-web-assets.sh --check", vendorDir, e.Name())
		}
	}
	for name := range listed {
		t.Errorf("SHA256SUMS lists %s, which is not committed", name)
	}
	for _, want := range []string{"xterm.mjs", "xterm.css", "xterm.LICENSE", "addon-fit.mjs", "addon-fit.LICENSE"} {
		if _, err := fs.Stat(static, vendorDir+"/"+want); err != nil {
			t.Errorf("%s/%s is missing (the page loads it, or it is the licence it must carry)", vendorDir, want)
		}
	}

	script, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "scripts", "fetch-web-assets.sh"))
	if err != nil {
		t.Fatal(err)
	}
	pinned := regexp.MustCompile(`(?m)^\s*"(@[^|"]+)\|([^|"]+)\|(sha512-[A-Za-z0-9+/=]+)\|`).FindAllStringSubmatch(string(script), -1)
	var fromScript []string
	for _, m := range pinned {
		fromScript = append(fromScript, m[1]+"@"+m[2]+" "+m[3])
	}
	if diff := cmp.Diff(fromScript, pins); diff != "" {
		t.Errorf("SHA256SUMS was not written with the script's pins (-script +SHA256SUMS):\n%s", diff)
	}
	if len(fromScript) == 0 || !strings.HasPrefix(fromScript[0], "@xterm/xterm@6.0.0 ") {
		t.Errorf("the script pins %q; the UI is written for @xterm/xterm 6.0.0", fromScript)
	}
}

// TestContentSecurityPolicy: the policy package web sends keeps scripts to
// the listener itself.
func TestContentSecurityPolicy(t *testing.T) {
	dirs := map[string]string{}
	for _, d := range strings.Split(ContentSecurityPolicy, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(d), " ")
		dirs[k] = v
	}
	want := map[string]string{
		"default-src": "'self'", "script-src": "'self'", "connect-src": "'self'", "object-src": "'none'",
		"base-uri": "'none'", "frame-ancestors": "'none'", "form-action": "'self'",
	}
	for k, v := range want {
		if dirs[k] != v {
			t.Errorf("%s is %q, want %q", k, dirs[k], v)
		}
	}
}
