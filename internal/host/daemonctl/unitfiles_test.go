package daemonctl

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitDir holds the systemd units `make install` installs (packaging/systemd).
var unitDir = filepath.Join("..", "..", "..", "packaging", "systemd")

// installUnit writes the unit at rel as `make install` does, @BINDIR@
// replaced by a directory holding a stand-in bangerd, and returns its path.
func installUnit(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(unitDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("@BINDIR@/bangerd")) {
		t.Fatalf("%s: ExecStart does not run @BINDIR@/bangerd, which make install replaces", rel)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "bangerd"), []byte("#!/bin/sh\n"), 0o755)
	path := filepath.Join(dir, filepath.Base(rel))
	if err := os.WriteFile(path, bytes.ReplaceAll(b, []byte("@BINDIR@"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// directives reads a unit's Key=Value lines.
func directives(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m
}

// The system and user units are named as the CLI asks systemctl for them,
// run bangerd logging to the journal, restart it on failure, and stop
// bangerd alone so that VMs survive; systemd-analyze verify finds nothing
// to say about them.
func TestUnitFiles(t *testing.T) {
	tests := []struct {
		rel      string
		user     bool
		wantedBy string
	}{
		{UnitName, false, "multi-user.target"},
		{filepath.Join("user", UnitName), true, "default.target"},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			path := installUnit(t, tt.rel)
			got := directives(t, path)
			want := map[string]string{
				"ExecStart":            filepath.Join(filepath.Dir(path), "bin", "bangerd") + " --log-to-stderr",
				"Restart":              "on-failure",
				"KillMode":             "process",
				"WantedBy":             tt.wantedBy,
				"Type":                 "exec",
				"RuntimeDirectory":     "banger",
				"RuntimeDirectoryMode": "0700",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s=%q, want %q", k, got[k], v)
				}
			}
			if !tt.user && got["Environment"] != "HOME=/root" {
				t.Errorf("system unit Environment=%q, want HOME=/root (root's default paths)", got["Environment"])
			}

			sa, err := exec.LookPath("systemd-analyze")
			if err != nil {
				t.Skip("systemd-analyze is not installed (Debian: systemd): the units are not verified")
			}
			args := []string{"verify", "--man=no", path}
			cmd := exec.Command(sa, args...)
			if tt.user {
				// A user manager's paths need a runtime directory.
				xdg := t.TempDir()
				cmd = exec.Command(sa, append([]string{"--user"}, args...)...)
				cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+xdg)
			}
			out, err := cmd.CombinedOutput()
			// verify exits 0 on a directive it ignores, but says so.
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
			}
		})
	}
}
