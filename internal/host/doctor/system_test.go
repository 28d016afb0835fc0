package doctor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemQEMUSandbox starts the real QEMU with banger's -sandbox, and a
// stand-in QEMU that refuses it as a QEMU without seccomp does.
func TestSystemQEMUSandbox(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 is not installed (scripts/install-deps.sh installs it)")
	}
	if err := (System{}).QEMUSandbox(context.Background(), bin); err != nil {
		t.Errorf("QEMU refused banger's sandbox: %v", err)
	}
	fake := filepath.Join(t.TempDir(), "qemu-no-seccomp")
	script := "#!/bin/sh\necho \"qemu: -sandbox on: There is no option group 'sandbox'\" >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err = (System{}).QEMUSandbox(context.Background(), fake)
	if err == nil || !strings.Contains(err.Error(), "no option group 'sandbox'") {
		t.Errorf("a QEMU without seccomp: err = %v, want its message", err)
	}
}
