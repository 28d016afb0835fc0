package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bangerdev/banger/internal/shared/filedigest"
)

// Digest returns the sha256 and size of a file, or of a directory tree
// (a digest over every entry's relative path, type, mode, size and content,
// in sorted order; its size is the total of the file sizes).
func Digest(path string) (string, int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", 0, err
	}
	if !fi.IsDir() {
		return filedigest.SHA256Size(path)
	}
	return treeDigest(path)
}

func treeDigest(root string) (string, int64, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	sort.Strings(paths)
	h := sha256.New()
	var total int64
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return "", 0, err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return "", 0, err
			}
			fmt.Fprintf(h, "L %s %s\n", rel, target)
		case fi.IsDir():
			fmt.Fprintf(h, "D %s %o\n", rel, fi.Mode().Perm())
		default:
			sum, n, err := filedigest.SHA256Size(p)
			if err != nil {
				return "", 0, err
			}
			total += n
			fmt.Fprintf(h, "F %s %o %d %s\n", rel, fi.Mode().Perm(), n, sum)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), total, nil
}

// fingerprintScheme versions the fingerprint recipe; bumping it makes every
// recorded fingerprint stale, and images heal on their next use.
const fingerprintScheme = "banger-image-fingerprint/v1"

// Fingerprint summarises everything that makes an image what it is: every
// artifact's digest, the agent version and the provisioning manifest.
func Fingerprint(img Image) string {
	var b strings.Builder
	b.WriteString(fingerprintScheme + "\n")
	for _, k := range Kinds {
		if a, ok := img.Artifacts[k]; ok {
			fmt.Fprintf(&b, "artifact %s %s %d\n", k, a.SHA256, a.Size)
		}
	}
	m := img.Manifest
	fmt.Fprintf(&b, "agent %s\n", m.AgentVersion)
	fmt.Fprintf(&b, "distro %s %s %s\n", m.Distro, m.Suite, m.Libc)
	fmt.Fprintf(&b, "kernel %s\n", m.Kernel.Release)
	for _, s := range m.Provisioning {
		fmt.Fprintf(&b, "step %s\n", s)
	}
	for _, s := range m.Services {
		fmt.Fprintf(&b, "service %s %d\n", s.Name, s.Port)
	}
	for _, p := range m.Probes {
		fmt.Fprintf(&b, "probe %s %s %d\n", p.Name, p.Kind, p.Port)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return "sha256:" + hex.EncodeToString(sum[:])
}
