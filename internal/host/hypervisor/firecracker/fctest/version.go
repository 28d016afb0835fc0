package fctest

import (
	"fmt"
	"regexp"
	"strconv"
)

// version is the release the stand-in plays. (Its own parser, not the
// driver's: the stand-in checks the driver rather than sharing its code.)
type version struct {
	major, minor, patch int
	pre                 string
}

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$`)

func parseVersion(s string) (version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return version{}, fmt.Errorf("fctest: version %q is not major.minor.patch", s)
	}
	var v version
	v.major, _ = strconv.Atoi(m[1])
	v.minor, _ = strconv.Atoi(m[2])
	v.patch, _ = strconv.Atoi(m[3])
	v.pre = m[4]
	return v, nil
}

func (v version) zero() bool { return v == version{} }

// less reports whether v is older than o; a pre-release is older than its
// release.
func (v version) less(o version) bool {
	if v.major != o.major {
		return v.major < o.major
	}
	if v.minor != o.minor {
		return v.minor < o.minor
	}
	if v.patch != o.patch {
		return v.patch < o.patch
	}
	if v.pre == o.pre {
		return false
	}
	if v.pre == "" || o.pre == "" {
		return v.pre != ""
	}
	return v.pre < o.pre
}

func (v version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch)
	if v.pre != "" {
		s += "-" + v.pre
	}
	return s
}
