package hypervisor

import (
	"strings"

	"github.com/Masterminds/semver/v3"
)

// VersionLess reports whether release a is older than release b. Both are
// read as semantic versions with github.com/Masterminds/semver/v3, the one
// version type banger uses (the Firecracker driver and npm ranges use it
// too): a leading "v" is ignored, missing parts count as 0 ("1.8" is
// 1.8.0), and a pre-release sorts before its release (1.10.0-dev <
// 1.10.0), so a development build is not assumed to have what the release
// will have. A string that is not a version counts as 0.0.0.
func VersionLess(a, b string) bool {
	return parseLoose(a).LessThan(parseLoose(b))
}

// parseLoose reads s as a version, or 0.0.0 when it is none.
func parseLoose(s string) *semver.Version {
	v, err := semver.NewVersion(strings.TrimSpace(s))
	if err != nil {
		return semver.New(0, 0, 0, "", "")
	}
	return v
}
