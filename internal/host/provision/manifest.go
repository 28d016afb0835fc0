package provision

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
)

// DefaultMirror is the Debian mirror used when a Manifest names none.
const DefaultMirror = "http://deb.debian.org/debian"

// Manifest says what debootstrap installs. Manifests are Go values, built
// by functions such as DebianBase, never read from text files.
type Manifest struct {
	Distro   string   // "debian" (or "ubuntu": debootstrap knows both)
	Suite    string   // e.g. "bookworm"
	Variant  string   // debootstrap variant; "minbase" when empty
	Arch     string   // Debian architecture, e.g. "amd64"; the host's when empty
	Mirror   string   // DefaultMirror when empty
	Packages []string // extra packages (debootstrap --include)
}

// DebianBase is the base every banger Debian image starts from: enough for
// a systemd boot with sshd, git and curl, and for npm-installed agents
// later (ca-certificates; libstdc++6, which node links against).
func DebianBase(suite string) Manifest {
	return Manifest{
		Distro:  "debian",
		Suite:   suite,
		Variant: "minbase",
		Mirror:  DefaultMirror,
		Packages: []string{
			// boot and services
			"systemd", "systemd-sysv", "udev", "kmod", "dbus",
			// remote access
			"openssh-server",
			// network basics
			"iproute2", "iputils-ping", "netbase", "ca-certificates", "curl",
			// tools agents and users expect
			"git", "less", "procps", "sudo", "e2fsprogs",
			// node's runtime dependency
			"libstdc++6",
		},
	}
}

// canonical is the manifest with defaults filled in and packages sorted and
// deduplicated: two manifests that debootstrap the same tree have the same
// canonical form.
func (m Manifest) canonical() Manifest {
	c := Manifest{
		Distro:  strings.TrimSpace(m.Distro),
		Suite:   strings.TrimSpace(m.Suite),
		Variant: strings.TrimSpace(m.Variant),
		Arch:    strings.TrimSpace(m.Arch),
		Mirror:  strings.TrimRight(strings.TrimSpace(m.Mirror), "/"),
	}
	if c.Variant == "" {
		c.Variant = "minbase"
	}
	if c.Arch == "" {
		c.Arch = debianArch(runtime.GOARCH)
	}
	if c.Mirror == "" {
		c.Mirror = DefaultMirror
	}
	for _, p := range m.Packages {
		if p = strings.TrimSpace(p); p != "" {
			c.Packages = append(c.Packages, p)
		}
	}
	slices.Sort(c.Packages)
	c.Packages = slices.Compact(c.Packages)
	return c
}

// Digest is the sha256 (hex) of the manifest's canonical JSON encoding,
// prefixed with a schema tag so a change of encoding changes every digest.
// It keys the debootstrap cache and goes into image fingerprints.
func (m Manifest) Digest() string {
	c := m.canonical()
	b, err := json.Marshal(struct {
		Schema   string   `json:"schema"`
		Distro   string   `json:"distro"`
		Suite    string   `json:"suite"`
		Variant  string   `json:"variant"`
		Arch     string   `json:"arch"`
		Mirror   string   `json:"mirror"`
		Packages []string `json:"packages"`
	}{"banger-debootstrap-manifest/v1", c.Distro, c.Suite, c.Variant, c.Arch, c.Mirror, c.Packages})
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

var (
	suiteRE   = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	debNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// aptSpecRE also admits apt-get's name:arch and name=version forms.
	aptSpecRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+:~-]+)?$`)
	archRE    = regexp.MustCompile(`^[a-z0-9]+$`)
)

// Validate reports the first thing wrong with m, phrased as what to fix.
func (m Manifest) Validate() error {
	c := m.canonical()
	switch c.Distro {
	case "debian", "ubuntu":
	default:
		return fmt.Errorf("manifest distro %q: debootstrap builds debian or ubuntu", m.Distro)
	}
	if !suiteRE.MatchString(c.Suite) {
		return fmt.Errorf("manifest suite %q: give a suite name such as bookworm", m.Suite)
	}
	if !suiteRE.MatchString(c.Variant) {
		return fmt.Errorf("manifest variant %q: use minbase, buildd or fakechroot", m.Variant)
	}
	if !archRE.MatchString(c.Arch) {
		return fmt.Errorf("manifest arch %q: give a Debian architecture such as amd64", m.Arch)
	}
	if !strings.HasPrefix(c.Mirror, "http://") && !strings.HasPrefix(c.Mirror, "https://") && !strings.HasPrefix(c.Mirror, "file:///") {
		return fmt.Errorf("manifest mirror %q: give an http(s):// or file:/// URL such as %s", m.Mirror, DefaultMirror)
	}
	for _, p := range c.Packages {
		if !debNameRE.MatchString(p) {
			return fmt.Errorf("manifest package %q: debootstrap takes plain Debian package names (lowercase letters, digits, + - .)", p)
		}
	}
	return nil
}

// ValidPackage checks a package argument for apt-get install (a name,
// optionally :arch and =version) the way Packages.Apply will, so a
// request can be refused before a build starts.
func ValidPackage(p string) error { return validAptSpec(p) }

// validAptSpec checks a package argument for apt-get install.
func validAptSpec(p string) error {
	if !aptSpecRE.MatchString(p) {
		return fmt.Errorf("%q is not a Debian package name (lowercase letters, digits, + - .; optional :arch and =version)", p)
	}
	return nil
}

// debianArch maps a Go GOARCH to Debian's name for it.
func debianArch(goarch string) string {
	switch goarch {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	case "loong64":
		return "loong64"
	}
	return goarch // amd64, arm64, riscv64, s390x, mips64le match
}
