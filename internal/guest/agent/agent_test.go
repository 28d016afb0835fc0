package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
