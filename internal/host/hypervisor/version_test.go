package hypervisor_test

import (
	"fmt"
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker"
	"github.com/bangerdev/banger/internal/host/npmfetch"
)

// TestVersionOrderAgrees pins one order for every caller that compares
// versions: image requirements (hypervisor.VersionLess, used by vm and
// doctor), the Firecracker driver's gates (firecracker.ParseVersion and
// its *Since releases) and npm ranges (npmfetch.ParseRange). The rule is
// semantic versioning's: a pre-release sorts before its release, so a
// Firecracker 1.10.0-dev is older than 1.10.0 for all of them.
func TestVersionOrderAgrees(t *testing.T) {
	tests := []struct {
		older, newer string
	}{
		{"1.10.0-dev", "1.10.0"},
		{"1.9.9", "1.10.0-dev"},
		{"1.13.0-dev", "1.13.0"},
		{"1.4.0-dev", "1.4.0"},
		{"1.10.0-dev", "1.10.0-rc.1"},
		{"1.10.0-rc.1", "1.10.0-rc.2"},
		{"1.10.0-rc.2", "1.10.0-rc.10"},
		{"1.8.0", "1.10.1"},
		{"1.10.1", "2.0.0-dev"},
	}
	for _, tt := range tests {
		t.Run(tt.older+"<"+tt.newer, func(t *testing.T) {
			// Image requirements, as vm and doctor ask, with and without
			// the "v" Firecracker prints.
			for _, f := range []string{"%s", "v%s"} {
				a, b := fmt.Sprintf(f, tt.older), fmt.Sprintf(f, tt.newer)
				if !hypervisor.VersionLess(a, b) || hypervisor.VersionLess(b, a) || hypervisor.VersionLess(a, a) {
					t.Errorf("VersionLess disagrees on %s < %s", a, b)
				}
			}
			// The Firecracker driver, from `firecracker --version`.
			fa, err := firecracker.ParseVersion("Firecracker v" + tt.older + "\n")
			if err != nil {
				t.Fatal(err)
			}
			fb, err := firecracker.ParseVersion("Firecracker v" + tt.newer + "\n")
			if err != nil {
				t.Fatal(err)
			}
			if fa.Compare(fb) != -1 || fb.Compare(fa) != 1 || fa.GreaterThanEqual(fb) {
				t.Errorf("firecracker.ParseVersion disagrees on %s < %s", fa, fb)
			}
			// npm ranges: ">=older" holds for newer and "<newer" for older
			// (a pre-release only where the range names one of its
			// major.minor.patch, as npm says); "<older" never holds for
			// newer.
			nb := semver.MustParse(tt.newer)
			na := semver.MustParse(tt.older)
			if r, _ := npmfetch.ParseRange("<" + tt.older); r.Match(nb) {
				t.Errorf("npm range <%s matches %s", tt.older, tt.newer)
			}
			if r, _ := npmfetch.ParseRange(">" + tt.newer); r.Match(na) {
				t.Errorf("npm range >%s matches %s", tt.newer, tt.older)
			}
			if nb.Prerelease() == "" {
				if r, _ := npmfetch.ParseRange(">=" + tt.older); !r.Match(nb) {
					t.Errorf("npm range >=%s does not match %s", tt.older, tt.newer)
				}
			}
			if na.Prerelease() == "" {
				if r, _ := npmfetch.ParseRange("<" + tt.newer); !r.Match(na) {
					t.Errorf("npm range <%s does not match %s", tt.newer, tt.older)
				}
			}
		})
	}
}

// TestVersionLessLoose pins what image manifests write ("1.8": missing
// parts are 0) and what is no version at all (0.0.0).
func TestVersionLessLoose(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"1.7.0", "1.8", true},
		{"1.10.1", "1.8", false},
		{"1.8", "1.8.0", false},
		{"v1.4.1", "1.5", true},
		{"1.8.0-dev", "1.8", true},
		{"garbage", "0.0.1", true},
		{"0.0.1", "garbage", false},
	}
	for _, tt := range tests {
		if got := hypervisor.VersionLess(tt.a, tt.b); got != tt.want {
			t.Errorf("VersionLess(%q, %q) = %t, want %t", tt.a, tt.b, got, tt.want)
		}
	}
}
