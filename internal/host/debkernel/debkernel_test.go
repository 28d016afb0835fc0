package debkernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeApt plays apt-cache, apt-get and dpkg-deb and records every command.
type fakeApt struct {
	packages    map[string]string // name -> apt-cache show output
	debs        map[string]string // "name=version" -> .deb content
	downloadErr string            // stderr of a failing apt-get download
	noVmlinuz   bool              // dpkg-deb -x unpacks a tree without a kernel
	calls       []string
}

func (f *fakeApt) Run(ctx context.Context, dir, name string, args ...string) ([]byte, []byte, error) {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	fail := errors.New("exit status 100")
	switch name {
	case "apt-cache":
		out, ok := f.packages[args[len(args)-1]]
		if !ok {
			return nil, []byte("N: Unable to locate package " + args[len(args)-1] + "\nE: No packages found\n"), fail
		}
		return []byte(out), nil, nil
	case "apt-get":
		if f.downloadErr != "" {
			return nil, []byte(f.downloadErr), fail
		}
		content, ok := f.debs[args[1]]
		if !ok {
			return nil, []byte("E: Can't find a source to download version of " + args[1]), fail
		}
		file := strings.ReplaceAll(args[1], "=", "_") + "_amd64.deb"
		return nil, nil, os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644)
	case "dpkg-deb":
		tree := args[2]
		release := "6.1.0-99-cloud-amd64"
		files := map[string]string{
			"boot/config-" + release: "CONFIG_VIRTIO_BLK=m\n",
			"lib/modules/" + release + "/kernel/drivers/block/virtio_blk.ko.xz": "module",
			"usr/share/doc/linux-image/changelog.gz":                            "doc",
		}
		if !f.noVmlinuz {
			files["boot/vmlinuz-"+release] = "bzImage"
		}
		for p, c := range files {
			p = filepath.Join(tree, p)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, nil, err
			}
			if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
				return nil, nil, err
			}
		}
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("fake apt: unexpected command %s", name)
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

const (
	metaName = "linux-image-cloud-amd64"
	realName = "linux-image-6.1.0-99-cloud-amd64"
	realVer  = "6.1.999-1"
	debData  = "a kernel package"
)

// newFakeApt knows the metapackage and the kernel package it depends on.
func newFakeApt() *fakeApt {
	return &fakeApt{
		packages: map[string]string{
			metaName: "Package: " + metaName + "\nVersion: " + realVer + "\nDepends: " + realName + " (= " + realVer + ")\nDescription: Linux for x86-64 cloud (meta-package)\n SHA256: not-this-one\nSHA256: " + sum("meta") + "\n",
			realName: "Package: " + realName + "\nVersion: " + realVer + "\nDepends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool\nSHA256: " + sum(debData) + "\n",
		},
		debs: map[string]string{realName + "=" + realVer: debData},
	}
}

func newTestFetcher(apt *fakeApt, now time.Time) *fetcher {
	return &fetcher{
		run:      apt,
		lookPath: func(string) (string, error) { return "/usr/bin/x", nil },
		now:      func() time.Time { return now },
	}
}

func wantKernel(cacheDir string) Kernel {
	dir := filepath.Join(cacheDir, sum(debData))
	return Kernel{
		Package:    realName,
		Version:    realVer,
		Release:    "6.1.0-99-cloud-amd64",
		Vmlinuz:    filepath.Join(dir, "boot/vmlinuz-6.1.0-99-cloud-amd64"),
		ModulesDir: filepath.Join(dir, "lib/modules/6.1.0-99-cloud-amd64"),
		Config:     filepath.Join(dir, "boot/config-6.1.0-99-cloud-amd64"),
		DebSHA256:  sum(debData),
	}
}

// TestFetchFake covers resolution, download, unpack and the cache with a
// fake apt, comparing the commands run with the expected ones.
func TestFetchFake(t *testing.T) {
	showMeta := "apt-cache show --no-all-versions " + metaName
	showReal := "apt-cache show --no-all-versions " + realName
	download := "apt-get download " + realName + "=" + realVer

	tests := []struct {
		name      string
		pkg       string
		setup     func(t *testing.T, cacheDir string) // prepares the cache before Fetch
		wantCalls []string
	}{
		{
			name:      "empty cache: metapackage resolved, downloaded, unpacked",
			pkg:       "",
			wantCalls: []string{showMeta, showReal, download, "dpkg-deb -x"},
		},
		{
			name:      "real package name given",
			pkg:       realName,
			wantCalls: []string{showReal, download, "dpkg-deb -x"},
		},
		{
			name: "complete entry: no download, no unpack",
			pkg:  metaName,
			setup: func(t *testing.T, cacheDir string) {
				if _, err := newTestFetcher(newFakeApt(), time.Now()).fetch(context.Background(), cacheDir, metaName); err != nil {
					t.Fatal(err)
				}
			},
			wantCalls: []string{showMeta, showReal},
		},
		{
			name: "entry without sentinel (crash mid-unpack) is redone",
			pkg:  metaName,
			setup: func(t *testing.T, cacheDir string) {
				half := filepath.Join(cacheDir, sum(debData), "boot")
				if err := os.MkdirAll(half, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(half, "vmlinuz-6.1.0-99-cloud-amd64"), []byte("trunc"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantCalls: []string{showMeta, showReal, download, "dpkg-deb -x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cacheDir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, cacheDir)
			}
			apt := newFakeApt()
			k, err := newTestFetcher(apt, time.Now()).fetch(context.Background(), cacheDir, tt.pkg)
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if diff := cmp.Diff(wantKernel(cacheDir), k); diff != "" {
				t.Errorf("kernel (-want +got):\n%s", diff)
			}
			if got, err := os.ReadFile(k.Vmlinuz); err != nil || string(got) != "bzImage" {
				t.Errorf("vmlinuz = %q, %v; want the unpacked file", got, err)
			}
			// dpkg-deb's arguments hold a random directory; compare its verb.
			var calls []string
			for _, c := range apt.calls {
				if strings.HasPrefix(c, "dpkg-deb ") {
					c = "dpkg-deb -x"
				}
				calls = append(calls, c)
			}
			if diff := cmp.Diff(tt.wantCalls, calls); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
			entries, _ := filepath.Glob(filepath.Join(cacheDir, "*"))
			hidden, _ := filepath.Glob(filepath.Join(cacheDir, ".*"))
			if diff := cmp.Diff([]string{filepath.Join(cacheDir, sum(debData))}, append(entries, hidden...)); diff != "" {
				t.Errorf("cache directory holds more than the entry (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	tests := []struct {
		name     string
		pkg      string
		apt      func() *fakeApt
		noTools  bool
		wantIs   error  // nil: no sentinel expected
		wantText string // substring of the message
	}{
		{"apt missing", "", newFakeApt, true, ErrAptMissing, "apt-get not found in PATH"},
		{"unknown package", "linux-image-nope", newFakeApt, false, ErrUnknownPackage, "run `apt-get update`"},
		{"mirror unreachable", "", func() *fakeApt {
			a := newFakeApt()
			a.downloadErr = "Err:1 http://deb.debian.org/debian bookworm/main amd64 linux-image\n  Temporary failure resolving 'deb.debian.org'\nE: Failed to fetch http://deb.debian.org/x.deb  Temporary failure resolving 'deb.debian.org'\n"
			return a
		}, false, ErrMirrorUnreachable, "check network access"},
		{"download fails otherwise", "", func() *fakeApt {
			a := newFakeApt()
			a.downloadErr = "E: Hash Sum mismatch\n"
			return a
		}, false, nil, "run `apt-get update` and retry"},
		{"metapackage without kernel", "linux-headers-amd64", func() *fakeApt {
			a := newFakeApt()
			a.packages["linux-headers-amd64"] = "Package: linux-headers-amd64\nVersion: 1\nDepends: linux-headers-6.1.0-99-amd64\n"
			return a
		}, false, nil, "neither a kernel image"},
		{"package without vmlinuz", "", func() *fakeApt {
			a := newFakeApt()
			a.noVmlinuz = true
			return a
		}, false, nil, "holds 0 boot/vmlinuz-* files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFetcher(tt.apt(), time.Now())
			if tt.noTools {
				f.lookPath = func(name string) (string, error) { return "", exec.ErrNotFound }
			}
			cacheDir := t.TempDir()
			_, err := f.fetch(context.Background(), cacheDir, tt.pkg)
			if err == nil {
				t.Fatal("fetch succeeded, want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			left, _ := os.ReadDir(cacheDir)
			if len(left) != 0 {
				t.Errorf("failed fetch left %d entries in the cache", len(left))
			}
		})
	}
}

func TestRemoveStale(t *testing.T) {
	now := time.Now()
	cacheDir := t.TempDir()
	old := filepath.Join(cacheDir, ".partial-old")
	fresh := filepath.Join(cacheDir, ".partial-fresh")
	for _, d := range []string{old, fresh} {
		if err := os.MkdirAll(filepath.Join(d, "tree"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(old, now.Add(-2*time.Hour), now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := newTestFetcher(newFakeApt(), now).fetch(context.Background(), cacheDir, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover older than %v still there (%v)", staleAfter, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("recent work directory of another fetch was removed: %v", err)
	}
}

func TestKernelDependency(t *testing.T) {
	tests := []struct{ depends, want string }{
		{"linux-image-6.1.0-28-cloud-amd64 (= 6.1.119-1)", "linux-image-6.1.0-28-cloud-amd64"},
		{"linux-image-6.1.0-28-cloud-amd64-unsigned (= 6.1.119-1) | linux-image-6.1.0-28-cloud-amd64", "linux-image-6.1.0-28-cloud-amd64-unsigned"},
		{"kmod, linux-image-6.1.0-28-amd64:amd64, foo", "linux-image-6.1.0-28-amd64"},
		{"kmod, linux-base (>= 4.3~)", ""},
		{"linux-image-cloud-amd64", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := kernelDependency(tt.depends); got != tt.want {
			t.Errorf("kernelDependency(%q) = %q, want %q", tt.depends, got, tt.want)
		}
	}
}

func TestParseStanza(t *testing.T) {
	out := "Package: a\nVersion: 1.0\nDescription: first\n more text\nSHA256: abc\n\nPackage: b\nVersion: 2.0\n"
	want := map[string]string{"Package": "a", "Version": "1.0", "Description": "first\nmore text", "SHA256": "abc"}
	if diff := cmp.Diff(want, parseStanza([]byte(out))); diff != "" {
		t.Errorf("parseStanza (-want +got):\n%s", diff)
	}
}

// recorder wraps the real runner and records command names.
type recorder struct {
	runner
	calls []string
}

func (r *recorder) Run(ctx context.Context, dir, name string, args ...string) ([]byte, []byte, error) {
	r.calls = append(r.calls, name+" "+strings.Join(args, " "))
	return r.runner.Run(ctx, dir, name, args...)
}

// TestFetchReal downloads Debian's cloud kernel with the real apt, checks it
// is a bzImage with virtio_blk among its modules, and that a second fetch is
// served from the cache.
func TestFetchReal(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the real download of a kernel package (about 27 MB)")
	}
	cacheDir := t.TempDir()
	ctx := context.Background()
	k, err := Fetch(ctx, cacheDir, "", nil)
	if errors.Is(err, ErrAptMissing) || errors.Is(err, ErrMirrorUnreachable) || errors.Is(err, ErrUnknownPackage) {
		t.Skipf("cannot fetch a Debian kernel on this host: %v", err)
	}
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	t.Logf("fetched %s %s (release %s, sha256 %s)", k.Package, k.Version, k.Release, k.DebSHA256)

	if !regexp.MustCompile(`^\d+\.\d+\.\d+-\d+-cloud-amd64$`).MatchString(k.Release) {
		t.Errorf("Release = %q, want like 6.1.0-28-cloud-amd64", k.Release)
	}
	if k.Package != "linux-image-"+k.Release && k.Package != "linux-image-"+k.Release+"-unsigned" {
		t.Errorf("Package %q does not match release %q", k.Package, k.Release)
	}
	if k.Config == "" {
		t.Error("no boot/config-<release> found; Debian's kernel packages ship one")
	}
	checkBzImage(t, k.Vmlinuz)
	checkHasModule(t, k.ModulesDir, "virtio_blk")

	rec := &recorder{runner: execRunner{}}
	f := &fetcher{run: rec, lookPath: exec.LookPath, now: time.Now}
	again, err := f.fetch(ctx, cacheDir, "")
	if err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if diff := cmp.Diff(k, again); diff != "" {
		t.Errorf("second Fetch returned a different kernel (-first +second):\n%s", diff)
	}
	for _, c := range rec.calls {
		if !strings.HasPrefix(c, "apt-cache show") {
			t.Errorf("second Fetch ran %q; want only apt-cache lookups (a cache hit)", c)
		}
	}
}

// checkBzImage checks the x86 boot protocol magic "HdrS" at offset 0x202.
func checkBzImage(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := f.ReadAt(magic, 0x202); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if !bytes.Equal(magic, []byte("HdrS")) {
		t.Errorf("%s has %q at 0x202, want the bzImage magic \"HdrS\"", path, magic)
	}
}

// checkHasModule looks for <name>.ko (possibly compressed) under dir.
func checkHasModule(t *testing.T, dir, name string) {
	t.Helper()
	found := ""
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), name+".ko") {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == "" {
		t.Errorf("no %s.ko* under %s", name, dir)
	} else {
		t.Logf("found %s", found)
	}
}
