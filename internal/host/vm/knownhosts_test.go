package vm

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/google/go-cmp/cmp"
)

const (
	testEd25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJjtgb0Z/V+yx8hfpQBQBr1m1H2JmJIiwnF4T3WxE16x"
	testECDSA   = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNxP1vBIixv8A6GTMxG3p2gk8e96dVaZmt/Ar8/Oa6m6AP7uSkqV8chZsR4eU6g+Va2qS8pP9rXg4xn+zxDTN3s="
)

func TestKnownHostsFile(t *testing.T) {
	tests := []struct {
		name        string
		keys        []string
		want        string
		wantSkipped int
	}{
		{"valid keys, comments dropped", []string{testEd25519 + " root@guest", testECDSA},
			"172.30.0.5 " + testEd25519 + "\n172.30.0.5 " + testECDSA + "\n", 0},
		{"a newline injects a wildcard line", []string{testEd25519 + "\n* " + testECDSA},
			"", 1},
		{"a newline hides a second key after junk", []string{"junk\n" + testECDSA},
			"", 1},
		{"a carriage return", []string{testEd25519 + "\r* " + testECDSA},
			"", 1},
		{"not a key", []string{"hello world", "", "ssh-ed25519 not-base64!"},
			"", 3},
		{"options", []string{`cert-authority ` + testEd25519},
			"", 1},
		{"marker-like comment stays out", []string{testEd25519 + " @revoked \x1b[2J"},
			"172.30.0.5 " + testEd25519 + "\n", 0},
		{"huge", []string{testEd25519 + " " + strings.Repeat("x", maxHostKeyLine)},
			"", 1},
		{"one bad among good", []string{"bogus", testECDSA},
			"172.30.0.5 " + testECDSA + "\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped := knownHostsFile("172.30.0.5", tt.keys)
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("content mismatch (-want +got):\n%s", diff)
			}
			if len(skipped) != tt.wantSkipped {
				t.Errorf("skipped = %q, want %d entries", skipped, tt.wantSkipped)
			}
		})
	}
}

// TestWriteKnownHostsRefusesInjectedLines drives the method vm start
// calls with a guest's answer that smuggles a second line.
func TestWriteKnownHostsRefusesInjectedLines(t *testing.T) {
	root := t.TempDir()
	m := &Manager{
		Cfg: &config.Config{Paths: config.Paths{StateDir: root, DataDir: root, RuntimeDir: root}},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	v := &VM{VM: store.VM{ID: "vm1", Name: "demo"}, Lease: store.Lease{IP: "172.30.0.9"}}
	v.Runtime.HostKeys = []string{testEd25519 + "\n10.0.0.1 " + testECDSA, testECDSA + " root@guest"}
	if err := os.MkdirAll(filepath.Dir(m.KnownHosts(v.ID)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.writeKnownHosts(v); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(m.KnownHosts(v.ID))
	if err != nil {
		t.Fatal(err)
	}
	want := "172.30.0.9 " + testECDSA + "\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("known_hosts mismatch (-want +got):\n%s", diff)
	}
}
