package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The .deb as a new user would meet it: `make deb` builds it from this
// tree; dpkg installs it into a Debian tree (the debootstrap tree the
// image tests cache) with the binaries, man pages, completions and units
// in place and banger answering; removing it keeps a root daemon's data,
// purging drops it. dpkg runs the maintainer scripts chrooted into the
// tree, and inside the env's network namespace, so the prerm's `banger
// host teardown` can only touch the test's network.
func TestDebPackage(t *testing.T) {
	for _, tool := range []string{"dpkg", "dpkg-deb", "make", "tar", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: apt-get install %s", tool, tool)
		}
	}
	needRootE2E(t, "dpkg --root runs the maintainer scripts in a chroot")
	e := vmEnv(t) // the image bootstrap leaves the debootstrap tree in the cache
	trees, _ := filepath.Glob(filepath.Join(sharedCache(), "debootstrap", "*.tar.zst"))
	if len(trees) == 0 {
		t.Fatalf("no debootstrap tree in %s after an image bootstrap", sharedCache())
	}

	deb := filepath.Join(t.TempDir(), "banger.deb")
	mk := exec.Command("make", "-C", moduleRoot(), "deb", "DEB="+deb, "GEN="+t.TempDir())
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, tail(string(out), 40))
	}

	tree := t.TempDir()
	if out, err := exec.Command("tar", "--zstd", "-xf", trees[0], "-C", tree).CombinedOutput(); err != nil {
		t.Fatalf("unpacking the debootstrap tree: %v\n%s", err, out)
	}
	inNS := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", e.netns}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := inNS("dpkg", "--root="+tree, "--force-depends", "-i", deb); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	for _, rel := range []string{
		"usr/bin/banger", "usr/bin/bangerd", "usr/bin/banger-agent",
		"usr/share/man/man1/banger.1", "usr/share/man/man1/banger-vm-pull.1", "usr/share/man/man1/bangerd.1",
		"usr/lib/systemd/system/bangerd.service", "usr/lib/systemd/user/bangerd.service",
		"usr/share/bash-completion/completions/banger",
	} {
		if _, err := os.Stat(filepath.Join(tree, rel)); err != nil {
			t.Errorf("the package did not install %s: %v", rel, err)
		}
	}
	if out, err := exec.Command("chroot", tree, "/usr/bin/banger", "version").CombinedOutput(); err != nil || !strings.Contains(string(out), "banger") {
		t.Errorf("banger version in the tree: %v %q", err, out)
	}
	if _, err := exec.LookPath("man"); err == nil {
		out, err := exec.Command("man", "-l", filepath.Join(tree, "usr/share/man/man1/banger-vm-pull.1")).Output()
		if err != nil || !strings.Contains(string(out), "banger/") {
			t.Errorf("man -l banger-vm-pull.1: %v\n%s", err, tail(string(out), 10))
		}
	}
	if out, err := exec.Command("chroot", tree, "dpkg-query", "-W", "-f=${Status} ${Depends}", "banger").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "install ok installed") || !strings.Contains(string(out), "qemu-system-x86") {
		t.Errorf("dpkg-query: %v %q", err, out)
	}

	// Data a root daemon kept survives a remove, not a purge.
	data := filepath.Join(tree, "root/.local/state/banger")
	os.MkdirAll(data, 0o700)
	os.WriteFile(filepath.Join(data, "banger.db"), []byte("x"), 0o600)
	if out, err := inNS("dpkg", "--root="+tree, "-r", "banger"); err != nil {
		t.Fatalf("dpkg -r: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(tree, "usr/bin/banger")); err == nil {
		t.Error("banger is still installed after dpkg -r")
	}
	if _, err := os.Stat(filepath.Join(data, "banger.db")); err != nil {
		t.Errorf("a remove dropped the daemon's data: %v", err)
	}
	if out, err := inNS("dpkg", "--root="+tree, "--purge", "banger"); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("a purge kept the daemon's data")
	}
}

// make uninstall removes every file make install put (binaries, man
// pages, completions, units), and nothing else.
func TestInstallUninstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed: apt-get install make")
	}
	dest, gen := t.TempDir(), t.TempDir()
	keep := filepath.Join(dest, "usr", "share", "man", "man1", "other.1")
	os.MkdirAll(filepath.Dir(keep), 0o755)
	os.WriteFile(keep, []byte("not banger's"), 0o644)
	make := func(target string) {
		t.Helper()
		out, err := exec.Command("make", "-C", moduleRoot(), target, "DESTDIR="+dest, "PREFIX=/usr", "GEN="+gen).CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, tail(string(out), 30))
		}
	}
	files := func() []string {
		var out []string
		filepath.WalkDir(dest, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dest, p)
				out = append(out, rel)
			}
			return nil
		})
		return out
	}
	make("install")
	installed := files()
	if len(installed) < 10 {
		t.Fatalf("make install put only %v", installed)
	}
	make("uninstall")
	if left := files(); len(left) != 1 || left[0] != "usr/share/man/man1/other.1" {
		t.Errorf("after make uninstall: %v (installed %d files)", left, len(installed))
	}
}
