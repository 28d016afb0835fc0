package archtest

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/bangerdev/banger/"

// The tree says which side of the VM a package runs on:
//
//	internal/host/...   bangerd and banger (the daemon, the CLI, their tests)
//	internal/guest/...  inside the VM (banger-agent: init, agent, network, sessions)
//	internal/shared/... what both ends link (wire formats, protocols, leaf libraries)
//
// internal/archtest, these tests, is the one package on no side.
const (
	hostDir   = "internal/host/"
	guestDir  = "internal/guest/"
	sharedDir = "internal/shared/"
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

// TestSidesDoNotMix: bangerd and banger link no guest-side package, and
// banger-agent links nothing of the host's.
func TestSidesDoNotMix(t *testing.T) {
	root := repoRoot(t)
	for _, c := range []string{"cmd/bangerd", "cmd/banger"} {
		var crossed []string
		for _, p := range deps(t, root, c) {
			if strings.HasPrefix(p, guestDir) {
				crossed = append(crossed, p)
			}
		}
		if len(crossed) > 0 {
			t.Errorf("%s links guest-side packages %v: move what both sides need under %s", c, crossed, sharedDir)
		}
	}
	var crossed []string
	for _, p := range deps(t, root, "cmd/banger-agent") {
		if strings.HasPrefix(p, "internal/") && !strings.HasPrefix(p, guestDir) && !strings.HasPrefix(p, sharedDir) {
			crossed = append(crossed, p)
		}
	}
	sort.Strings(crossed)
	if len(crossed) > 0 {
		t.Errorf("banger-agent links %v: keep host code out of the guest, or move what truly serves both ends under %s", crossed, sharedDir)
	}
}

// TestEveryPackageHasASide: every package under internal/ sits on one
// side, so its path tells a reader where it runs.
func TestEveryPackageHasASide(t *testing.T) {
	root := repoRoot(t)
	for _, d := range packageDirs(t, root) {
		rel := strings.TrimPrefix(strings.TrimPrefix(d, root), "/")
		if !strings.HasPrefix(rel, "internal/") || rel == "internal/archtest" {
			continue
		}
		if !strings.HasPrefix(rel, hostDir) && !strings.HasPrefix(rel, guestDir) && !strings.HasPrefix(rel, sharedDir) {
			t.Errorf("%s is on no side: move it under %s, %s or %s", rel, hostDir, guestDir, sharedDir)
		}
	}
}
