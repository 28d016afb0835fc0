package provision

import (
	"os"
	"testing"

	"github.com/bangerdev/banger/internal/host/buildsandbox"
	"github.com/bangerdev/banger/internal/host/buildsandbox/sandboxtest"
)

// The test binary is also the build sandbox's init (Chroot.Run re-executes
// it) and the probe the isolation tests run inside the sandbox.
func TestMain(m *testing.M) {
	if buildsandbox.IsInit() {
		os.Exit(buildsandbox.Init())
	}
	sandboxtest.RunIfProbe()
	os.Exit(m.Run())
}
