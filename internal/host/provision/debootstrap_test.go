package provision

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fakeHost(euid int, have ...string) host {
	return host{
		geteuid: func() int { return euid },
		lookPath: func(name string) (string, error) {
			for _, h := range have {
				if h == name {
					return "/usr/bin/" + name, nil
				}
			}
			return "", exec.ErrNotFound
		},
	}
}

func TestDebootstrapRefusals(t *testing.T) {
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	tests := []struct {
		name    string
		h       host
		m       Manifest
		dest    string
		wantIs  error
		wantErr string
	}{
		{name: "not root", h: fakeHost(1000, "tar", "debootstrap"), m: DebianBase("bookworm"), wantIs: ErrNotRoot},
		{name: "no debootstrap", h: fakeHost(0, "tar"), m: DebianBase("bookworm"), wantIs: ErrDebootstrapMissing, wantErr: "apt-get install debootstrap"},
		{name: "no tar", h: fakeHost(0, "debootstrap"), m: DebianBase("bookworm"), wantIs: ErrTarMissing},
		{name: "bad manifest", h: fakeHost(0, "tar", "debootstrap"), m: Manifest{Distro: "debian"}, wantErr: "suite"},
		{name: "dest not empty", h: fakeHost(0, "tar", "debootstrap"), m: DebianBase("bookworm"), dest: full, wantErr: "not empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := tt.dest
			if dest == "" {
				dest = filepath.Join(t.TempDir(), "rootfs")
			}
			err := tt.h.debootstrap(context.Background(), tt.m, dest, t.TempDir(), func(string) {})
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error = %v, want %v", err, tt.wantIs)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// A cached tree is unpacked without debootstrap; an unusable cache file is
// removed and debootstrap is asked for (here: missing, so an error).
func TestDebootstrapCache(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("GNU tar is not installed")
	}
	m := DebianBase("bookworm")
	src := fakeRoot(t, "etc/ssh")
	os.WriteFile(filepath.Join(src, "etc/debian_version"), []byte("12.9\n"), 0o644)
	os.Symlink("usr/lib", filepath.Join(src, "lib"))
	os.Link(filepath.Join(src, "bin/sh"), filepath.Join(src, "bin/dash"))
	cacheDir := t.TempDir()
	cache := filepath.Join(cacheDir, m.Digest()+cacheSuffix)
	if err := packTar(context.Background(), src, cache); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(cacheDir, ".partial-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	t.Run("hit", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "rootfs")
		var log []string
		err := fakeHost(0, "tar").debootstrap(context.Background(), m, dest, cacheDir, func(s string) { log = append(log, s) })
		if err != nil {
			t.Fatalf("cache hit needed debootstrap: %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(dest, "etc/debian_version")); string(b) != "12.9\n" {
			t.Errorf("unpacked debian_version %q", b)
		}
		if l, _ := os.Readlink(filepath.Join(dest, "lib")); l != "usr/lib" {
			t.Errorf("symlink lost: %q", l)
		}
		a, _ := os.Stat(filepath.Join(dest, "bin/sh"))
		b, _ := os.Stat(filepath.Join(dest, "bin/dash"))
		if !os.SameFile(a, b) {
			t.Error("hard link lost")
		}
		if !strings.Contains(strings.Join(log, "\n"), "unpacking cached") {
			t.Errorf("log does not mention the cache: %v", log)
		}
	})

	t.Run("corrupt cache falls back to debootstrap", func(t *testing.T) {
		os.WriteFile(cache, []byte("not zstd"), 0o600)
		dest := filepath.Join(t.TempDir(), "rootfs")
		err := fakeHost(0, "tar").debootstrap(context.Background(), m, dest, cacheDir, func(string) {})
		if !errors.Is(err, ErrDebootstrapMissing) {
			t.Fatalf("error = %v, want ErrDebootstrapMissing (the fallback)", err)
		}
		if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
			t.Error("corrupt cache file kept")
		}
		if entries, _ := os.ReadDir(dest); len(entries) != 0 {
			t.Errorf("dest not left empty: %d entries", len(entries))
		}
	})
}

func TestFinishBase(t *testing.T) {
	root := fakeRoot(t, "etc/ssh", "var/cache/apt/archives/partial", "var/lib/apt/lists/partial", "var/lib/dbus")
	files := map[string]string{
		"etc/hostname":                     "buildhost\n",
		"etc/resolv.conf":                  "nameserver 10.1.1.1\n",
		"etc/machine-id":                   "0123456789abcdef0123456789abcdef\n",
		"var/lib/dbus/machine-id":          "0123456789abcdef0123456789abcdef\n",
		"etc/ssh/ssh_host_ed25519_key":     "secret",
		"etc/ssh/ssh_host_ed25519_key.pub": "public",
		"etc/ssh/sshd_config":              "Port 22\n",
		"usr/sbin/sshd":                    "ELF",
		"var/cache/apt/archives/git.deb":   "deb",
		"var/cache/apt/pkgcache.bin":       "bin",
		"var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease": "list",
		"var/lib/apt/lists/lock": "",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	if err := finishBase(root); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(root, p)
			b, _ := os.ReadFile(p)
			if fi.Mode()&os.ModeSymlink != 0 {
				l, _ := os.Readlink(p)
				b = []byte("-> " + l)
			}
			got = append(got, rel+" = "+string(b))
		}
		return nil
	})
	want := []string{
		"bin/sh = #!",
		"etc/hostname = localhost\n",
		"etc/machine-id = ",
		"etc/ssh/sshd_config = Port 22\n",
		"etc/systemd/system/banger-ssh-hostkeys.service = " + sshHostKeysUnit,
		"etc/systemd/system/multi-user.target.wants/banger-ssh-hostkeys.service = -> /etc/systemd/system/banger-ssh-hostkeys.service",
		"etc/systemd/system/ssh.service.wants/banger-ssh-hostkeys.service = -> /etc/systemd/system/banger-ssh-hostkeys.service",
		"usr/sbin/sshd = ELF",
		"var/lib/apt/lists/lock = ",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tree after finishBase (-want +got):\n%s", diff)
	}
}

// TestCleanAptStaysInTheRoot: cleanApt runs on the host after build
// commands, which may have replaced apt's directories with links out of
// the image. It must clean the image's own (a link resolved inside the
// root) and never the host's files.
func TestCleanAptStaysInTheRoot(t *testing.T) {
	outside := t.TempDir()
	victims := []string{"keep.deb", "pkgcache.bin", "important"}
	for _, v := range victims {
		os.WriteFile(filepath.Join(outside, v), []byte("host"), 0o644)
	}
	root := fakeRoot(t, "var/cache", "var/lib/apt", "inside/lists")
	os.WriteFile(filepath.Join(root, "inside/lists/InRelease"), []byte("list"), 0o644)
	// Absolute links: on the host they would lead to outside.
	os.Symlink(outside, filepath.Join(root, "var/cache/apt"))
	os.Symlink("/inside/lists", filepath.Join(root, "var/lib/apt/lists"))
	if err := cleanApt(root); err != nil {
		t.Fatal(err)
	}
	for _, v := range victims {
		if _, err := os.Stat(filepath.Join(outside, v)); err != nil {
			t.Errorf("the host's %s was removed: %v", v, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "inside/lists/InRelease")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the image's list (behind an absolute link inside it) was not cleaned: %v", err)
	}
}
