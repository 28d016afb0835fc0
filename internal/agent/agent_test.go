package agent

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDispatch(t *testing.T) {
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(cmdline, []byte("console=ttyS0 banger.ip=172.30.0.5/24 banger.gw=172.30.0.1 banger.hostname=otter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(empty, []byte("console=ttyS0 root=/dev/vda\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(bad, []byte("banger.ip=nonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		argv       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{"no command", []string{"banger-agent"}, 2, "", "Usage:"},
		{"help", []string{"banger-agent", "--help"}, 0, "banger-agent serve", ""},
		{"version", []string{"banger-agent", "version"}, 0, "banger-agent ", ""},
		{"version json", []string{"banger-agent", "version", "--json"}, 0, `"build_id"`, ""},
		{"unknown", []string{"/usr/local/lib/banger/banger-agent", "frobnicate"}, 2, "", `banger-agent: unknown command "frobnicate": run ` + "`banger-agent --help`"},
		// Not PID 1: /init is not the init, and the probe refuses.
		{"named /init but not PID 1", []string{"/init"}, 2, "", "Usage:"},
		{"probe off PID 1", []string{"/init", "probe"}, 1, "", "runs only as PID 1"},
		{"net-up dry run", []string{"banger-agent", "net-up", "--dry-run", "--cmdline", cmdline}, 0, `address=172.30.0.5/24 gateway=172.30.0.1 dns=[] hostname="otter" mac=`, ""},
		{"net-up without parameters does nothing", []string{"banger-agent", "net-up", "--cmdline", empty}, 0, "", "leaving the network alone"},
		{"net-up with a bad parameter", []string{"banger-agent", "net-up", "--cmdline", bad}, 1, "", "banger.ip=nonsense: want an address with its prefix length, e.g. banger.ip=172.30.0.5/24; fix the VM's kernel command line"},
		{"net-up stray argument", []string{"banger-agent", "net-up", "eth0"}, 2, "", "Usage: banger-agent net-up"},
		{"serve stray argument", []string{"banger-agent", "serve", "now"}, 2, "", "Usage: banger-agent serve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(tt.argv, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr: %s)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

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
