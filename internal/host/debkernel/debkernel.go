// Package debkernel fetches Debian kernel packages with apt-get download and
// unpacks them into a content-addressed cache.
//
// It owns the kernel cache: cacheDir/<sha256 of the .deb>/ holds the
// package's files exactly as dpkg-deb -x unpacks them (boot/vmlinuz-<release>,
// lib/modules/<release>/, ...) plus a sentinel file, written last, that marks
// the directory complete. Each unpack happens in a private directory that is
// renamed into place only when complete, so an interrupted fetch never leaves
// a half-filled cache entry and concurrent fetches of the same package are
// safe; leftovers of interrupted fetches are removed by a later Fetch.
//
// Fetch asks apt for the candidate version and its SHA256 first (a local
// lookup), so a package already in the cache is neither downloaded nor
// unpacked again.
package debkernel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/filedigest"
)

// DefaultPackage is the package Fetch uses when pkg is empty: the metapackage
// that depends on Debian's current cloud kernel for x86-64.
const DefaultPackage = "linux-image-cloud-amd64"

const (
	sentinelName = ".debkernel-complete.json"
	partialGlob  = ".partial-*"
	// staleAfter is how old a leftover partial directory must be before a
	// Fetch removes it; younger ones may belong to a fetch still running.
	staleAfter = time.Hour
	// maxMetaDepth bounds how many metapackages Fetch follows.
	maxMetaDepth = 4
)

// Errors that callers (and tests) can tell apart with errors.Is. Their
// messages, wrapped with detail, name the fix.
var (
	// ErrAptMissing: apt-get, apt-cache or dpkg-deb is not installed.
	ErrAptMissing = errors.New("apt-get, apt-cache and dpkg-deb are needed to fetch Debian kernels; run banger on a Debian or Ubuntu host (apt-get install apt dpkg)")
	// ErrUnknownPackage: apt has no such package (often: package lists never downloaded).
	ErrUnknownPackage = errors.New("apt does not know the package; run `apt-get update` (and check the package name)")
	// ErrMirrorUnreachable: apt-get could not download from the mirror.
	ErrMirrorUnreachable = errors.New("apt-get could not reach the Debian mirror; check network access to the mirrors in /etc/apt/sources.list, then retry")
)

// Kernel is an unpacked kernel package in the cache. Paths are absolute.
type Kernel struct {
	Package    string // the real kernel package, e.g. linux-image-6.1.0-28-cloud-amd64
	Version    string // its Debian version, e.g. 6.1.119-1
	Release    string // the kernel release (uname -r), e.g. 6.1.0-28-cloud-amd64
	Vmlinuz    string // the compressed kernel image (a bzImage on x86-64): boot/vmlinuz-<release>
	ModulesDir string // lib/modules/<release>
	Config     string // boot/config-<release>, or "" when the package has none
	DebSHA256  string // sha256 of the .deb, hex; also the cache directory's name
}

// Fetch returns the kernel package pkg (DefaultPackage if empty) unpacked in
// cacheDir, downloading and unpacking it only when the cache lacks it. pkg
// may be a metapackage such as linux-image-cloud-amd64: Fetch follows its
// dependency to the real linux-image-<release> package. log may be nil.
func Fetch(ctx context.Context, cacheDir, pkg string, log *slog.Logger) (Kernel, error) {
	f := &fetcher{run: execRunner{}, lookPath: exec.LookPath, now: time.Now, log: log}
	return f.fetch(ctx, cacheDir, pkg)
}

// runner runs a command in dir and returns its stdout and stderr.
type runner interface {
	Run(ctx context.Context, dir, name string, args ...string) (stdout, stderr []byte, err error)
}

type execRunner struct{}

func (execRunner) Run(ctx context.Context, dir, name string, args ...string) ([]byte, []byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	// Untranslated messages, so the error classification below works.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANGUAGE=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

type fetcher struct {
	run      runner
	lookPath func(string) (string, error)
	now      func() time.Time
	log      *slog.Logger
}

// pkgInfo is the part of an apt-cache show stanza Fetch uses.
type pkgInfo struct {
	Package string
	Version string
	Depends string
	SHA256  string
}

// meta is the sentinel's content: what the cache directory holds.
type meta struct {
	Package   string `json:"package"`
	Version   string `json:"version"`
	DebSHA256 string `json:"deb_sha256"`
}

func (f *fetcher) fetch(ctx context.Context, cacheDir, pkg string) (Kernel, error) {
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if pkg == "" {
		pkg = DefaultPackage
	}
	if cacheDir == "" {
		return Kernel{}, errors.New("debkernel: no cache directory given")
	}
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := f.lookPath(tool); err != nil {
			return Kernel{}, fmt.Errorf("debkernel: %s not found in PATH: %w", tool, ErrAptMissing)
		}
	}
	cacheDir, err := filepath.Abs(cacheDir)
	if err != nil {
		return Kernel{}, fmt.Errorf("debkernel: cache directory: %w", err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Kernel{}, fmt.Errorf("debkernel: creating cache directory: %w", err)
	}
	f.removeStale(cacheDir)

	start := f.now()
	info, err := f.resolve(ctx, pkg)
	if err != nil {
		return Kernel{}, err
	}
	f.log.Debug("resolved kernel package", "requested", pkg, "package", info.Package, "version", info.Version, "duration", f.now().Sub(start))

	// Cache hit on the digest apt's index promises: no download at all.
	if info.SHA256 != "" {
		if k, err := loadComplete(filepath.Join(cacheDir, info.SHA256)); err == nil {
			f.log.Info("kernel package cached", "package", k.Package, "release", k.Release, "sha256", k.DebSHA256)
			return k, nil
		}
	}

	partial, err := os.MkdirTemp(cacheDir, ".partial-")
	if err != nil {
		return Kernel{}, fmt.Errorf("debkernel: creating a work directory in the cache: %w", err)
	}
	defer os.RemoveAll(partial) // after a successful rename this is a no-op

	start = f.now()
	deb, err := f.download(ctx, partial, info)
	if err != nil {
		return Kernel{}, err
	}
	sum, err := filedigest.SHA256(deb)
	if err != nil {
		return Kernel{}, fmt.Errorf("debkernel: hashing %s: %w", deb, err)
	}
	f.log.Info("downloaded kernel package", "package", info.Package, "version", info.Version, "sha256", sum, "duration", f.now().Sub(start))
	if info.SHA256 != "" && sum != info.SHA256 {
		// apt verifies downloads against its index, so this means the index
		// changed in between; the file's own digest is what we cache under.
		f.log.Warn("downloaded package digest differs from the apt index", "index", info.SHA256, "file", sum)
	}

	final := filepath.Join(cacheDir, sum)
	if k, err := loadComplete(final); err == nil {
		return k, nil
	}

	start = f.now()
	tree := filepath.Join(partial, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return Kernel{}, fmt.Errorf("debkernel: %w", err)
	}
	if _, stderr, err := f.run.Run(ctx, partial, "dpkg-deb", "-x", deb, tree); err != nil {
		return Kernel{}, fmt.Errorf("debkernel: unpacking %s with dpkg-deb -x: %w: %s", filepath.Base(deb), err, lastLine(stderr))
	}
	m := meta{Package: info.Package, Version: info.Version, DebSHA256: sum}
	if _, err := kernelIn(tree, m); err != nil {
		return Kernel{}, fmt.Errorf("debkernel: package %s=%s: %w", info.Package, info.Version, err)
	}
	if err := writeSentinel(tree, m); err != nil {
		return Kernel{}, err
	}
	if err := f.publish(tree, final); err != nil {
		return Kernel{}, err
	}
	f.log.Info("unpacked kernel package", "package", info.Package, "dir", final, "duration", f.now().Sub(start))
	return loadComplete(final)
}

// resolve follows metapackages to the real kernel package and returns its
// candidate version.
func (f *fetcher) resolve(ctx context.Context, pkg string) (pkgInfo, error) {
	requested := pkg
	for range maxMetaDepth {
		info, err := f.show(ctx, pkg)
		if err != nil {
			return pkgInfo{}, err
		}
		if isKernelImage(info.Package) {
			return info, nil
		}
		dep := kernelDependency(info.Depends)
		if dep == "" {
			return pkgInfo{}, fmt.Errorf("debkernel: package %q is neither a kernel image (linux-image-<release>) nor a metapackage that depends on one; pass a package such as %s", info.Package, DefaultPackage)
		}
		pkg = dep
	}
	return pkgInfo{}, fmt.Errorf("debkernel: package %q: more than %d metapackages deep; pass the linux-image-<release> package itself", requested, maxMetaDepth)
}

// show returns the candidate version's stanza of apt-cache show.
func (f *fetcher) show(ctx context.Context, pkg string) (pkgInfo, error) {
	stdout, stderr, err := f.run.Run(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil || len(bytes.TrimSpace(stdout)) == 0 {
		if ctx.Err() != nil {
			return pkgInfo{}, fmt.Errorf("debkernel: apt-cache show %s: %w", pkg, ctx.Err())
		}
		return pkgInfo{}, fmt.Errorf("debkernel: package %q (%s): %w", pkg, lastLine(stderr), ErrUnknownPackage)
	}
	fields := parseStanza(stdout)
	info := pkgInfo{Package: fields["Package"], Version: fields["Version"], Depends: fields["Depends"], SHA256: fields["SHA256"]}
	if info.Package == "" || info.Version == "" {
		return pkgInfo{}, fmt.Errorf("debkernel: apt-cache show %s printed no Package or Version field; run `apt-get update`", pkg)
	}
	return info, nil
}

// download runs apt-get download for the exact version into dir and
// returns the path of the .deb.
func (f *fetcher) download(ctx context.Context, dir string, info pkgInfo) (string, error) {
	spec := info.Package + "=" + info.Version
	_, stderr, err := f.run.Run(ctx, dir, "apt-get", "download", spec)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("debkernel: apt-get download %s: %w", spec, ctx.Err())
		}
		msg := string(stderr)
		switch {
		case unreachableRE.MatchString(msg):
			return "", fmt.Errorf("debkernel: apt-get download %s: %s: %w", spec, firstMatchLine(msg, unreachableRE), ErrMirrorUnreachable)
		case unknownRE.MatchString(msg):
			return "", fmt.Errorf("debkernel: apt-get download %s: %s: %w", spec, lastLine(stderr), ErrUnknownPackage)
		}
		return "", fmt.Errorf("debkernel: apt-get download %s failed (%v: %s); run `apt-get update` and retry", spec, err, lastLine(stderr))
	}
	debs, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil || len(debs) != 1 {
		return "", fmt.Errorf("debkernel: apt-get download %s left %d .deb files in %s, want 1", spec, len(debs), dir)
	}
	return debs[0], nil
}

var (
	unreachableRE = regexp.MustCompile(`(?i)(failed to fetch|could not resolve|temporary failure|unable to connect|could not connect|connection (failed|refused|timed out)|network is unreachable)`)
	unknownRE     = regexp.MustCompile(`(?i)(unable to locate package|can't select|no packages found|has no installation candidate)`)
	kernelImageRE = regexp.MustCompile(`^linux-image-[0-9]`)
)

// isKernelImage reports whether name is a real kernel package
// (linux-image-<release>, where the release starts with a digit) rather
// than a metapackage such as linux-image-cloud-amd64.
func isKernelImage(name string) bool { return kernelImageRE.MatchString(name) }

// kernelDependency returns the first kernel image package named in a
// Depends field, e.g. "linux-image-6.1.0-28-cloud-amd64 (= 6.1.119-1)".
func kernelDependency(depends string) string {
	for _, group := range strings.Split(depends, ",") {
		for _, alt := range strings.Split(group, "|") {
			name := strings.TrimSpace(alt)
			if i := strings.IndexAny(name, " (:"); i >= 0 {
				name = name[:i]
			}
			if isKernelImage(name) {
				return name
			}
		}
	}
	return ""
}

// parseStanza parses the first deb822 stanza of out; continuation lines are
// appended to their field.
func parseStanza(out []byte) map[string]string {
	fields := map[string]string{}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if len(fields) > 0 {
				break
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last != "" {
				fields[last] += "\n" + strings.TrimSpace(line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = k
		fields[k] = strings.TrimSpace(v)
	}
	return fields
}

// writeSentinel makes the unpacked files durable, then writes the sentinel
// that marks dir complete.
func writeSentinel(dir string, m meta) error {
	if err := syncFS(dir); err != nil {
		return fmt.Errorf("debkernel: syncing unpacked files: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("debkernel: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, sentinelName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("debkernel: writing cache sentinel: %w", err)
	}
	return syncFS(dir)
}

func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

// publish renames the complete tree to final. If another fetch got there
// first with a complete entry, that one is kept; an incomplete entry (never
// made by this package, but possible after manual meddling) is replaced.
func (f *fetcher) publish(tree, final string) error {
	err := os.Rename(tree, final)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
		return fmt.Errorf("debkernel: moving unpacked package into the cache: %w", err)
	}
	if _, lerr := loadComplete(final); lerr == nil {
		return nil // a concurrent fetch finished first
	}
	f.log.Warn("replacing incomplete kernel cache entry", "dir", final)
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("debkernel: removing incomplete cache entry %s: %w", final, err)
	}
	if err := os.Rename(tree, final); err != nil {
		return fmt.Errorf("debkernel: moving unpacked package into the cache: %w", err)
	}
	return nil
}

// removeStale deletes partial directories that interrupted fetches left.
func (f *fetcher) removeStale(cacheDir string) {
	leftovers, _ := filepath.Glob(filepath.Join(cacheDir, partialGlob))
	for _, p := range leftovers {
		fi, err := os.Lstat(p)
		if err != nil || f.now().Sub(fi.ModTime()) < staleAfter {
			continue
		}
		f.log.Info("removing leftover of an interrupted kernel fetch", "dir", p)
		if err := os.RemoveAll(p); err != nil {
			f.log.Warn("cannot remove leftover kernel fetch", "dir", p, "err", err)
		}
	}
}

// loadComplete returns the Kernel in a complete cache directory, or an
// error if dir is missing, incomplete or damaged.
func loadComplete(dir string) (Kernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, sentinelName))
	if err != nil {
		return Kernel{}, fmt.Errorf("debkernel: cache entry %s is incomplete: %w", dir, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Kernel{}, fmt.Errorf("debkernel: cache entry %s: damaged sentinel: %w", dir, err)
	}
	return kernelIn(dir, m)
}

// kernelIn finds the kernel files in an unpacked package tree.
func kernelIn(dir string, m meta) (Kernel, error) {
	images, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return Kernel{}, fmt.Errorf("package holds %d boot/vmlinuz-* files, want 1: is it a kernel image package?", len(images))
	}
	release := strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	k := Kernel{
		Package:   m.Package,
		Version:   m.Version,
		Release:   release,
		Vmlinuz:   images[0],
		DebSHA256: m.DebSHA256,
	}
	// Debian 12 ships lib/modules; merged-/usr releases ship usr/lib/modules.
	for _, rel := range []string{"lib/modules", "usr/lib/modules"} {
		p := filepath.Join(dir, rel, release)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			k.ModulesDir = p
			break
		}
	}
	if k.ModulesDir == "" {
		return Kernel{}, fmt.Errorf("package has no lib/modules/%s directory", release)
	}
	if p := filepath.Join(dir, "boot", "config-"+release); fileExists(p) {
		k.Config = p
	}
	return k, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// lastLine returns the last non-empty line of command output, for errors.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return "no output"
}

// firstMatchLine returns the first line of s matching re.
func firstMatchLine(s string, re *regexp.Regexp) string {
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(s)
}
