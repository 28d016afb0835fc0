package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// listDir returns the names under dir (recursively), for "nothing was
// written" checks.
func listTree(t *testing.T, dir string) []string {
	var out []string
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && path != dir {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// Bad input gets one clear line that names the fix, a non-zero exit, and
// changes nothing.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env)
		args  []string
		want  []string // substrings of the single stderr line
	}{
		{
			name: "invalid config value",
			setup: func(t *testing.T, e *env) {
				writeConfig(t, e, "[vm]\nvcpus = 0\n")
			},
			args: []string{"daemon", "status"},
			want: []string{"config.toml", "vm.vcpus = 0", "want"},
		},
		{
			name: "unknown config key",
			setup: func(t *testing.T, e *env) {
				writeConfig(t, e, "[network]\ntap_pool = 3\n")
			},
			args: []string{"config", "validate"},
			want: []string{"network.tap_pool", `did you mean "tap_pool_size"`},
		},
		{
			name: "socket owned by another user",
			setup: func(t *testing.T, e *env) {
				if os.Getuid() != 0 {
					t.Skip("needs root to create a socket owned by another uid")
				}
				run := filepath.Join(e.home, "run")
				os.MkdirAll(run, 0o700)
				sock := filepath.Join(run, "bangerd.sock")
				l, err := net.Listen("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				if err := os.Chown(sock, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			},
			args: []string{"daemon", "status"},
			want: []string{"belongs to uid 65534", "but you are uid 0", "BANGER_HOME"},
		},
		{
			name: "missing bangerd binary",
			setup: func(t *testing.T, e *env) {
				dir := filepath.Join(e.home, "lonely")
				os.MkdirAll(dir, 0o755)
				data, _ := os.ReadFile(filepath.Join(binDir, "banger"))
				os.WriteFile(filepath.Join(dir, "banger"), data, 0o755)
				os.Chmod(filepath.Join(dir, "banger"), 0o755)
				e.bin = dir
			},
			args: []string{"daemon", "status"},
			want: []string{"bangerd is not installed next to banger or on PATH", "make install"},
		},
		{
			name: "relative BANGER_CONFIG",
			setup: func(t *testing.T, e *env) {
				e.extra = []string{"BANGER_CONFIG=conf.toml"}
			},
			args: []string{"daemon", "status"},
			want: []string{"BANGER_CONFIG", "absolute"},
		},
		{
			name:  "unknown command",
			setup: func(t *testing.T, e *env) {},
			args:  []string{"daemon", "explode"},
			want:  []string{"unknown command", "explode"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.setup(t, e)
			before := listTree(t, e.home)
			r := e.runWith(e.extra, tt.args...)
			if r.code == 0 {
				t.Fatalf("exit 0, want failure; stdout %q", r.stdout)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if len(lines) != 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", len(lines), r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
			if diff := strings.Join(listTree(t, e.home), ","); diff != strings.Join(before, ",") {
				t.Errorf("files changed:\nbefore %v\nafter  %v", before, diff)
			}
		})
	}
}

// A missing hypervisor binary is reported by doctor as one failing check
// with its fix, and doctor exits non-zero.
func TestDoctorReportsMissingBinary(t *testing.T) {
	e := newEnv(t)
	writeConfig(t, e, "qemu_bin = \"/opt/nowhere/qemu-system-x86_64\"\nhypervisor = \"qemu\"\n")
	r := e.run("doctor")
	if r.code != 1 {
		t.Fatalf("doctor exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(squash(r.stdout), "fail qemu /opt/nowhere/qemu-system-x86_64 not found") ||
		!strings.Contains(r.stdout, "apt-get install qemu-system-x86, or set qemu_bin") {
		t.Errorf("doctor output:\n%s", r.stdout)
	}
}

// With a broken config doctor still runs (in-process) and names the key.
func TestDoctorWithBrokenConfig(t *testing.T) {
	e := newEnv(t)
	writeConfig(t, e, "hypervisor = \"vmware\"\n")
	r := e.run("doctor")
	if r.code != 1 || !strings.Contains(squash(r.stdout), "fail config") || !strings.Contains(r.stdout, `hypervisor = "vmware"`) {
		t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(e.home, "state")); !os.IsNotExist(err) {
		t.Errorf("doctor with a broken config created the state dir")
	}
}

func writeConfig(t *testing.T, e *env, body string) {
	t.Helper()
	dir := filepath.Join(e.home, "config")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A bad name is refused at once with one line naming the rule and an
// example, and no image appears.
func TestBadNameRefused(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{
		{"image", "bootstrap", "debian", "--name", "Bad_Name"},
		{"image", "register", "--name", "-bad", "--kernel", "/nonexistent", "--rootfs", "/nonexistent", "--modules", "/nonexistent"},
		{"image", "build", "--from", "nothing", "--name", "x"},
	} {
		r := e.run(args...)
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		if r.code == 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "banger: ") {
			t.Errorf("%v: exit %d, stderr %q; want one error line", args, r.code, r.stderr)
		}
		t.Logf("%v -> %s", args[:2], lines[0])
	}
	if r := e.mustRun("image", "list", "--json"); !strings.Contains(r.stdout, `"images": []`) {
		t.Errorf("images after bad input: %s", r.stdout)
	}
}

// squash collapses runs of spaces, so assertions do not depend on column
// widths.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
