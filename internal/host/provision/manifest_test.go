package provision

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestManifestDigest(t *testing.T) {
	base := DebianBase("bookworm")
	with := func(f func(*Manifest)) Manifest {
		m := base
		m.Packages = append([]string(nil), base.Packages...)
		f(&m)
		return m
	}
	tests := []struct {
		name string
		m    Manifest
		same bool // same digest as base
	}{
		{"identical", with(func(*Manifest) {}), true},
		{"packages reordered", with(func(m *Manifest) {
			for i, j := 0, len(m.Packages)-1; i < j; i, j = i+1, j-1 {
				m.Packages[i], m.Packages[j] = m.Packages[j], m.Packages[i]
			}
		}), true},
		{"duplicate package", with(func(m *Manifest) { m.Packages = append(m.Packages, "git", " git ") }), true},
		{"defaults spelled out", with(func(m *Manifest) { m.Variant = ""; m.Mirror = DefaultMirror + "/"; m.Arch = "" }), true},
		{"empty mirror means the default", with(func(m *Manifest) { m.Mirror = "" }), true},
		{"other suite", with(func(m *Manifest) { m.Suite = "trixie" }), false},
		{"extra package", with(func(m *Manifest) { m.Packages = append(m.Packages, "vim") }), false},
		{"package removed", with(func(m *Manifest) { m.Packages = m.Packages[1:] }), false},
		{"other variant", with(func(m *Manifest) { m.Variant = "buildd" }), false},
		{"other mirror", with(func(m *Manifest) { m.Mirror = "http://ftp.de.debian.org/debian" }), false},
		{"other arch", with(func(m *Manifest) { m.Arch = "riscv64" }), false},
		{"other distro", with(func(m *Manifest) { m.Distro = "ubuntu" }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Digest() == base.Digest(); got != tt.same {
				t.Errorf("digest equal to base = %v, want %v (%s vs %s)", got, tt.same, tt.m.Digest(), base.Digest())
			}
		})
	}
}

// The digest of DebianBase keys caches that outlive a build of banger: it
// must change only when the manifest or the encoding changes on purpose.
// When it does, update the value here.
func TestDebianBaseDigestIsStable(t *testing.T) {
	m := DebianBase("bookworm")
	m.Arch = "amd64" // independent of the machine running the test
	const want = "da53c1715a2e0989e173b22fb310ce2ded31d52b9b8abd9af507a24cb386ce2d"
	if got := m.Digest(); got != want {
		t.Errorf("DebianBase(bookworm).Digest() = %s, want %s; if the manifest changed on purpose, update want", got, want)
	}
	if len(m.Digest()) != 64 || strings.Trim(m.Digest(), "0123456789abcdef") != "" {
		t.Errorf("digest %q is not 64 hex digits", m.Digest())
	}
}

func TestManifestValidate(t *testing.T) {
	tests := []struct {
		name    string
		m       Manifest
		wantErr string
	}{
		{"base", DebianBase("bookworm"), ""},
		{"ubuntu", Manifest{Distro: "ubuntu", Suite: "noble"}, ""},
		{"no suite", Manifest{Distro: "debian"}, "suite"},
		{"bad suite", Manifest{Distro: "debian", Suite: "../x"}, "suite"},
		{"bad distro", Manifest{Distro: "alpine", Suite: "edge"}, "debian or ubuntu"},
		{"bad mirror", Manifest{Distro: "debian", Suite: "bookworm", Mirror: "ftp://x"}, "mirror"},
		{"option injection", Manifest{Distro: "debian", Suite: "bookworm", Packages: []string{"--foo"}}, "plain Debian package names"},
		{"comma injection", Manifest{Distro: "debian", Suite: "bookworm", Packages: []string{"a,b"}}, "plain Debian package names"},
		{"version not allowed", Manifest{Distro: "debian", Suite: "bookworm", Packages: []string{"git=1"}}, "plain Debian package names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDebootstrapArgs(t *testing.T) {
	m := Manifest{Distro: "debian", Suite: "bookworm", Arch: "amd64", Packages: []string{"udev", "systemd", "udev"}}
	want := []string{"--variant=minbase", "--arch=amd64", "--include=systemd,udev", "bookworm", "/dest", DefaultMirror}
	if diff := cmp.Diff(want, debootstrapArgs(m, "/dest")); diff != "" {
		t.Errorf("debootstrapArgs (-want +got):\n%s", diff)
	}
}

func TestDebianBaseHasWhatTheImageNeeds(t *testing.T) {
	have := map[string]bool{}
	for _, p := range DebianBase("bookworm").Packages {
		have[p] = true
	}
	for _, p := range []string{"systemd", "systemd-sysv", "udev", "kmod", "openssh-server", "ca-certificates", "iproute2", "git", "curl", "libstdc++6", "sudo", "e2fsprogs"} {
		if !have[p] {
			t.Errorf("DebianBase lacks %s", p)
		}
	}
	if err := DebianBase("bookworm").Validate(); err != nil {
		t.Error(err)
	}
}
