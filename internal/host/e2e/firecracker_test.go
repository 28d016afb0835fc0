package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker/fctest"
)

// With `hypervisor = "auto"` and a firecracker on the host, banger picks
// Firecracker where the KVM probe booted a guest and QEMU where it did
// not. The firecracker here is fctest's stand-in (it checks every API
// request against Firecracker's documented API and plays the guest's agent
// over hybrid vsock); the "KVM boots" case is a host where the cached probe
// says so.
func TestAutoPicksFirecrackerOnlyWhereKVMBoots(t *testing.T) {
	fake := fctest.FakeBinary(t, fctest.Config{OpenPorts: []int{22}})
	// No jailer can be had here: the jailed path (the default under a
	// root daemon) is proven against a stand-in jailer in the driver's
	// conformance suite (TestConformanceJailed).
	useFake := func(e *env) {
		writeConfig(t, e, fmt.Sprintf("firecracker_bin = %q\nhypervisor = \"auto\"\njailer = false\n", fake))
		e.must("daemon", "restart")
	}

	t.Run("kvm-cannot-boot", func(t *testing.T) {
		e := vmEnv(t) // this host: the probe times out
		useFake(e)
		doc := e.runWith(e.extra, "doctor")
		if !strings.Contains(squash(doc.stdout), "ok firecracker Firecracker v") {
			t.Errorf("doctor does not see the firecracker:\n%s", doc.stdout)
		}
		e.must("vm", "create", "--name", "q", "--memory", "512MiB", "--disk", "1GiB")
		if v := vmShow(t, e, "q"); v.Hypervisor != "qemu" {
			t.Errorf("auto chose %s where KVM cannot boot guests", v.Hypervisor)
		}
		r := e.runWith(e.extra, "vm", "create", "--hypervisor", "firecracker", "--memory", "512MiB", "--disk", "1GiB")
		if r.code == 0 || !strings.Contains(r.stderr, "--hypervisor firecracker needs KVM") {
			t.Errorf("explicit firecracker without KVM: exit %d %q", r.code, r.stderr)
		}
		e.must("vm", "delete", "q")
		verifyClean(t, e)
	})

	t.Run("kvm-boots", func(t *testing.T) {
		cache := kvmBootsCache(t)
		e := vmEnvCache(t, cache)
		useFake(e)
		r := e.must("vm", "create", "--name", "f", "--memory", "512MiB", "--disk", "1GiB")
		if !strings.Contains(r.stderr, "✓ launch firecracker") {
			t.Errorf("create stages:\n%s", r.stderr)
		}
		v := vmShow(t, e, "f")
		if v.Hypervisor != "firecracker" || v.State != api.VMRunning || v.Accel != "kvm" {
			t.Fatalf("vm = %+v", v)
		}
		if doc := e.runWith(e.extra, "doctor"); !strings.Contains(squash(doc.stdout), "ok kvm-boot") {
			t.Errorf("doctor kvm-boot:\n%s", doc.stdout)
		}
		e.must("vm", "stop", "f") // Ctrl-Alt-Del; the stand-in guest powers off
		if v := vmShow(t, e, "f"); v.State != api.VMStopped {
			t.Errorf("after stop: %s", v.State)
		}
		e.must("vm", "delete", "f")
		verifyClean(t, e)
	})
}
