package main

import (
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

//go:embed scripts
var scripts embed.FS

// Depends are the host packages bangerd and its images need at run time
// (scripts/install-deps.sh installs the same for a plain install).
var Depends = []string{
	"qemu-system-x86", "qemu-utils", "e2fsprogs", "xfsprogs", "debootstrap",
	"iproute2", "nftables", "kmod", "cpio", "util-linux", "openssh-client",
	"git", "lz4", "xz-utils", "zstd", "ca-certificates",
}

// Recommends are what some commands use when present.
var Recommends = []string{"tmux"}

// debVersion makes a git describe version a Debian one: a leading "v"
// dropped, "-N-gHASH" (commits since the tag) as "+N.gHASH" so it sorts
// after the tag, and a version without a leading digit prefixed "0~".
func debVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	v = regexp.MustCompile(`-(\d+)-g([0-9a-f]+)`).ReplaceAllString(v, "+$1.g$2")
	v = strings.ReplaceAll(v, "-dirty", "+dirty")
	if v == "" || v[0] < '0' || v[0] > '9' {
		v = "0~" + v
	}
	return v
}

// info describes the package: every regular file and symlink under root
// at its path, owned by root, with its mode.
func info(root, version string, scriptDir string) (*nfpm.Info, error) {
	var contents files.Contents
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		c := &files.Content{Source: p, Destination: "/" + filepath.ToSlash(rel),
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: fi.Mode().Perm()}}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			c.Type, c.Source = files.TypeSymlink, target
		} else if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is neither a file nor a symlink", p)
		}
		contents = append(contents, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(contents) == 0 {
		return nil, fmt.Errorf("%s holds nothing to package: run make install DESTDIR=%s PREFIX=/usr first", root, root)
	}
	i := &nfpm.Info{
		Name: "banger", Arch: "amd64", Platform: "linux",
		Version: debVersion(version), VersionSchema: "none",
		Section: "admin", Priority: "optional",
		Maintainer:  "banger developers <banger@localhost>",
		Description: "disposable microVMs for coding agents\nbanger runs coding agents (opencode, claude, pi) in QEMU or Firecracker\nmicroVMs with a checkout at /root/repo: banger (CLI and TUI), bangerd\n(the daemon, with a web UI) and banger-agent (the guest agent).",
		Homepage:    "https://github.com/bangerdev/banger",
		License:     "Apache-2.0",
		MTime:       time.Unix(0, 0).UTC(),
		Overridables: nfpm.Overridables{
			Depends: Depends, Recommends: Recommends, Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(scriptDir, "postinst"),
				PreRemove:   filepath.Join(scriptDir, "prerm"),
				PostRemove:  filepath.Join(scriptDir, "postrm"),
			},
		},
	}
	return nfpm.WithDefaults(i), nil
}

// writeDeb packs root into the package file out.
func writeDeb(root, version, out string) error {
	dir, err := os.MkdirTemp("", "mkdeb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"postinst", "prerm", "postrm"} {
		b, err := scripts.ReadFile("scripts/" + name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			return err
		}
	}
	i, err := info(root, version, dir)
	if err != nil {
		return err
	}
	if err := nfpm.PrepareForPackager(i, "deb"); err != nil {
		return err
	}
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return err
	}
	defer os.Remove(out + ".tmp")
	if err := deb.Default.Package(i, io.Writer(f)); err != nil {
		f.Close()
		return fmt.Errorf("packing %s: %w", root, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(out+".tmp", out)
}
