package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGuestOpsProbeAndKeys(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	ops := guestOps{sshDir: t.TempDir()}
	if r := ops.ProbeTCP(context.Background(), port); !r.Open {
		t.Errorf("open port: %+v", r)
	}
	l.Close()
	if r := ops.ProbeTCP(context.Background(), port); r.Open || r.Error == "" {
		t.Errorf("closed port: %+v", r)
	}

	os.WriteFile(filepath.Join(ops.sshDir, "ssh_host_rsa_key.pub"), []byte("ssh-rsa BBBB root@banger\n"), 0o644)
	os.WriteFile(filepath.Join(ops.sshDir, "ssh_host_ed25519_key.pub"), []byte("ssh-ed25519 AAAA root@banger\n"), 0o644)
	os.WriteFile(filepath.Join(ops.sshDir, "ssh_host_ed25519_key"), []byte("PRIVATE"), 0o600)
	keys, err := ops.HostKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ssh-ed25519 AAAA root@banger", "ssh-rsa BBBB root@banger"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}
