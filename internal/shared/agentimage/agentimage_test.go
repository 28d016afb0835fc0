package agentimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSystemdUnits(t *testing.T) {
	units := SystemdUnits()
	var names []string
	for name := range units {
		names = append(names, name)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"banger-agent.service", "banger-net.service"}, names); diff != "" {
		t.Errorf("units (-want +got):\n%s", diff)
	}
	tests := []struct {
		unit  string
		lines []string
	}{
		{"banger-agent.service", []string{
			"ExecStart=/usr/local/lib/banger/banger-agent serve",
			"Restart=always",
			"DefaultDependencies=no",
			"After=systemd-modules-load.service local-fs.target",
			"WantedBy=multi-user.target",
		}},
		{"banger-net.service", []string{
			"ExecStart=/usr/local/lib/banger/banger-agent net-up",
			"Type=oneshot",
			"RemainAfterExit=yes",
			"Before=network-pre.target ssh.service shutdown.target",
			"WantedBy=multi-user.target",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.unit, func(t *testing.T) {
			have := strings.Split(units[tt.unit], "\n")
			for _, l := range tt.lines {
				if !slices.Contains(have, l) {
					t.Errorf("%s lacks the line %q", tt.unit, l)
				}
			}
			// The agent must not wait for the network.
			if tt.unit == "banger-agent.service" && strings.Contains(units[tt.unit], "network") {
				t.Errorf("banger-agent.service mentions the network; it must start without it")
			}
		})
	}

	want := map[string]string{
		"/etc/systemd/system/multi-user.target.wants/banger-agent.service": "/etc/systemd/system/banger-agent.service",
		"/etc/systemd/system/multi-user.target.wants/banger-net.service":   "/etc/systemd/system/banger-net.service",
	}
	if diff := cmp.Diff(want, EnableLinks()); diff != "" {
		t.Errorf("EnableLinks (-want +got):\n%s", diff)
	}
	for link, target := range EnableLinks() {
		if _, ok := units[filepath.Base(target)]; !ok || filepath.Base(link) != filepath.Base(target) {
			t.Errorf("link %s -> %s does not enable a unit of SystemdUnits", link, target)
		}
	}
}

// TestSystemdUnitsVerify has systemd check the units, when this machine
// has systemd-analyze.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; apt-get install systemd to verify the units")
	}
	dir := t.TempDir()
	var paths []string
	for name, content := range SystemdUnits() {
		content = strings.ReplaceAll(content, InstallPath, "/bin/true") // ExecStart must exist
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, paths...)...)
	out, err := cmd.CombinedOutput()
	// Units they are ordered against (ssh.service) may be missing on this
	// machine; anything about our own files is a failure.
	var problems []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "banger-") {
			problems = append(problems, l)
		}
	}
	if len(problems) > 0 {
		t.Errorf("systemd-analyze verify (%v):\n%s", err, strings.Join(problems, "\n"))
	}
	t.Logf("systemd-analyze verify: %v\n%s", err, out)
}
