package firecracker

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
)

var versionRE = regexp.MustCompile(`v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?`)

// ParseVersion reads a version from "1.10.1", "v1.10.1" or the output of
// `firecracker --version` ("Firecracker v1.10.1", followed in older
// releases by the snapshot versions it supports). Versions are compared
// by semantic-version precedence, so a pre-release such as 1.13.0-dev is
// older than 1.13.0: a development build is not assumed to have what the
// release will have.
func ParseVersion(s string) (*semver.Version, error) {
	line := strings.TrimSpace(s)
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = strings.TrimSpace(line[:i])
	}
	line = strings.TrimPrefix(line, "Firecracker ")
	m := versionRE.FindStringSubmatch(line)
	if m == nil || m[0] != line {
		return nil, fmt.Errorf("%q is not a Firecracker version (want something like \"Firecracker v1.10.1\")", firstLine(s))
	}
	v, err := semver.StrictNewVersion(strings.TrimPrefix(line, "v"))
	if err != nil {
		return nil, fmt.Errorf("%q is not a Firecracker version: %w", firstLine(s), err)
	}
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
	MinVersion = semver.New(1, 1, 0, "", "")
	// EntropySince added the virtio-rng device, PUT /entropy (v1.4.0).
	EntropySince = semver.New(1, 4, 0, "", "")
	// NetworkOverridesSince added network_overrides to PUT /snapshot/load
	// (v1.12.0).
	NetworkOverridesSince = semver.New(1, 12, 0, "", "")
	// PCISince added PCI (--enable-pci): from then on Firecracker adds
	// pci=off to the kernel command line itself when PCI is off, and no
	// longer has it in its default command line (v1.13.0).
	PCISince = semver.New(1, 13, 0, "", "")
	// TrackDirtyPagesOnLoadSince added track_dirty_pages to PUT
	// /snapshot/load, deprecating enable_diff_snapshots (v1.13.0).
	TrackDirtyPagesOnLoadSince = semver.New(1, 13, 0, "", "")
	// VsockOverrideSince added vsock_override to PUT /snapshot/load
	// (v1.16.0).
	VsockOverrideSince = semver.New(1, 16, 0, "", "")
)

// versionTimeout bounds `firecracker --version`.
const versionTimeout = 10 * time.Second

// Version runs `bin --version` and parses what it prints.
func Version(ctx context.Context, bin string) (*semver.Version, error) {
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
			return nil, fmt.Errorf("running %s --version: %w: %s", bin, err, firstLine(msg))
		}
		return nil, fmt.Errorf("running %s --version: %w", bin, err)
	}
	v, err := ParseVersion(stdout.String())
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", bin, err)
	}
	return v, nil
}

// checkVersion refuses releases older than MinVersion.
func checkVersion(bin string, v *semver.Version) error {
	if v.LessThan(MinVersion) {
		return fmt.Errorf("%s is Firecracker v%s, older than v%s, the oldest release banger drives: install a newer release from https://github.com/firecracker-microvm/firecracker/releases or configure firecracker_bin", bin, v, MinVersion)
	}
	return nil
}
