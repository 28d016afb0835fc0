package archtest

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/bangerdev/banger/"

// Which side of the VM each package runs on. guestSide runs inside the VM
// (banger-agent and what it links); bothSides is what both ends share (wire
// formats and protocols, and small leaf libraries); every other package of
// the module is the host's (bangerd, banger and their tests). A new package
// under internal/ that links into banger-agent must be listed here.
var (
	guestSide = []string{
		"internal/agent", "internal/guestinit", "internal/guestnet", "internal/guestsession",
	}
	bothSides = []string{
		"internal/agentproto", "internal/agentmux", "internal/agentimage", "internal/bootpayload",
		"internal/workspace", "internal/initramfs",
		"internal/atomicfile", "internal/buildinfo", "internal/filedigest", "internal/poll",
	}
)

// deps lists the module's packages that the command at path links.
func deps(t *testing.T, root, path string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "./"+path)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("go list -deps %s: %v (needs the go command)", path, err)
	}
	var mine []string
	for _, p := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(p, module); ok {
			mine = append(mine, rel)
		}
	}
	return mine
}

func in(list []string, p string) bool {
	for _, x := range list {
		if x == p {
			return true
		}
	}
	return false
}

// TestSidesDoNotMix: bangerd and banger link no guest-side package, and
// banger-agent links nothing of the host's; every package banger-agent
// links is classified, so a new one has to pick its side.
func TestSidesDoNotMix(t *testing.T) {
	root := repoRoot(t)
	for _, c := range []string{"cmd/bangerd", "cmd/banger"} {
		var crossed []string
		for _, p := range deps(t, root, c) {
			if in(guestSide, p) {
				crossed = append(crossed, p)
			}
		}
		if len(crossed) > 0 {
			t.Errorf("%s links guest-side packages %v: move what both sides need into a package of bothSides", c, crossed)
		}
	}
	var crossed []string
	for _, p := range deps(t, root, "cmd/banger-agent") {
		if p != "cmd/banger-agent" && !in(guestSide, p) && !in(bothSides, p) {
			crossed = append(crossed, p)
		}
	}
	sort.Strings(crossed)
	if len(crossed) > 0 {
		t.Errorf("banger-agent links %v, which are neither guest-side nor shared: keep host code out of the guest, or list a package that truly serves both ends in bothSides", crossed)
	}
	// The lists name real packages.
	for _, p := range append(append([]string{}, guestSide...), bothSides...) {
		if !in(packageDirsRel(t, root), p) {
			t.Errorf("%s is listed but is not a package", p)
		}
	}
}

// packageDirsRel is packageDirs relative to the module root.
func packageDirsRel(t *testing.T, root string) []string {
	var out []string
	for _, d := range packageDirs(t, root) {
		out = append(out, strings.TrimPrefix(strings.TrimPrefix(d, root), "/"))
	}
	return out
}
