package firecracker

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// SemVer is a Firecracker release: major.minor.patch and an optional
// pre-release label ("dev" in "1.17.0-dev"). A pre-release sorts before
// its release, as semantic versioning says, so a development build is not
// assumed to have what the release will have.
type SemVer struct {
	Major, Minor, Patch int
	Pre                 string
}

// String returns the version as Firecracker prints it: "v1.10.1".
func (v SemVer) String() string {
	s := fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre != "" {
		s += "-" + v.Pre
	}
	return s
}

// Compare returns -1, 0 or 1 as v is older than, the same as or newer
// than o.
func (v SemVer) Compare(o SemVer) int {
	for _, d := range [...]int{v.Major - o.Major, v.Minor - o.Minor, v.Patch - o.Patch} {
		switch {
		case d < 0:
			return -1
		case d > 0:
			return 1
		}
	}
	switch {
	case v.Pre == o.Pre:
		return 0
	case v.Pre == "":
		return 1
	case o.Pre == "":
		return -1
	case v.Pre < o.Pre:
		return -1
	}
	return 1
}

// AtLeast reports whether v is o or newer.
func (v SemVer) AtLeast(o SemVer) bool { return v.Compare(o) >= 0 }

var versionRE = regexp.MustCompile(`v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?`)

// ParseVersion reads a version from "1.10.1", "v1.10.1" or the output of
// `firecracker --version` ("Firecracker v1.10.1", followed in older
// releases by the snapshot versions it supports).
func ParseVersion(s string) (SemVer, error) {
	line := strings.TrimSpace(s)
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = strings.TrimSpace(line[:i])
	}
	line = strings.TrimPrefix(line, "Firecracker ")
	m := versionRE.FindStringSubmatch(line)
	if m == nil || m[0] != line {
		return SemVer{}, fmt.Errorf("%q is not a Firecracker version (want something like \"Firecracker v1.10.1\")", firstLine(s))
	}
	var v SemVer
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Patch, _ = strconv.Atoi(m[3])
	v.Pre = m[4]
	return v, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// Releases that changed what the driver sends. Each is the first release
// with the change, read from Firecracker's CHANGELOG.md and its API
// definition (src/firecracker/swagger/firecracker.yaml) at the release
// tags.
var (
	// MinVersion is the oldest release the driver drives. From v1.1.0 on,
	// every request the driver makes at launch has the shape it sends:
	// PUT /machine-config needs exactly vcpu_count and mem_size_mib (smt
	// optional since v1.0.0), PUT /vsock needs no vsock_id (deprecated
	// in v1.0.0) and PUT /snapshot/load takes mem_backend (v1.1.0).
	MinVersion = SemVer{Major: 1, Minor: 1}
	// EntropySince added the virtio-rng device, PUT /entropy (v1.4.0).
	EntropySince = SemVer{Major: 1, Minor: 4}
	// NetworkOverridesSince added network_overrides to PUT /snapshot/load
	// (v1.12.0).
	NetworkOverridesSince = SemVer{Major: 1, Minor: 12}
	// PCISince added PCI (--enable-pci): from then on Firecracker adds
	// pci=off to the kernel command line itself when PCI is off, and no
	// longer has it in its default command line (v1.13.0).
	PCISince = SemVer{Major: 1, Minor: 13}
	// TrackDirtyPagesOnLoadSince added track_dirty_pages to PUT
	// /snapshot/load, deprecating enable_diff_snapshots (v1.13.0).
	TrackDirtyPagesOnLoadSince = SemVer{Major: 1, Minor: 13}
	// VsockOverrideSince added vsock_override to PUT /snapshot/load
	// (v1.16.0).
	VsockOverrideSince = SemVer{Major: 1, Minor: 16}
)

// versionTimeout bounds `firecracker --version`.
const versionTimeout = 10 * time.Second

// Version runs `bin --version` and parses what it prints.
func Version(ctx context.Context, bin string) (SemVer, error) {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if msg != "" {
			return SemVer{}, fmt.Errorf("running %s --version: %w: %s", bin, err, firstLine(msg))
		}
		return SemVer{}, fmt.Errorf("running %s --version: %w", bin, err)
	}
	v, err := ParseVersion(stdout.String())
	if err != nil {
		return SemVer{}, fmt.Errorf("%s --version: %w", bin, err)
	}
	return v, nil
}

// checkVersion refuses releases older than MinVersion.
func checkVersion(bin string, v SemVer) error {
	if !v.AtLeast(MinVersion) {
		return fmt.Errorf("%s is Firecracker %s, older than %s, the oldest release banger drives: install a newer release from https://github.com/firecracker-microvm/firecracker/releases or configure firecracker_bin", bin, v, MinVersion)
	}
	return nil
}
