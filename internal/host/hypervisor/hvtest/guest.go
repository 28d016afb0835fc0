package hvtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bangerdev/banger/internal/guest/guestinit"
	"github.com/bangerdev/banger/internal/guest/guestinit/boottest"
	"github.com/bangerdev/banger/internal/host/kernelstage"
)

// LightPowerOffMarker is what LightGuest's init prints when the ACPI power
// button powers it off.
const LightPowerOffMarker = "HVTEST-POWER-BUTTON"

// lightModules are the modules LightGuest's initramfs loads: both virtio
// transports (q35's PCI, microvm's MMIO), disks, the virtio-serial and
// vsock agent channels, and the ACPI power button with the input events
// its init reads.
var lightModules = []string{
	"virtio_pci", "virtio_mmio", "virtio_blk", "virtio_console",
	"vmw_vsock_virtio_transport", "button", "evdev",
}

// LightGuest builds a small guest that boots in seconds under QEMU's
// software emulation: Debian's cloud kernel (from the cache the
// repository's tests share, $TMPDIR/banger-test-kernel-cache, as a bzImage
// and as the extracted ELF vmlinux), an initramfs whose /init is
// banger-agent with the modules above, a 64 MiB ext4 root filesystem whose
// /sbin/init (testdata/hvinit) mounts the work disk at /root, runs
// `banger-agent serve` and powers off on the ACPI power button (and, run
// as `/sbin/init probe-ro vda`, is the suite's ReadOnlyProbe), and a
// 16 MiB ext4 work disk. It skips the test, with the reason, when the
// kernel cannot be had, mkfs.ext4 is missing, or with -short.
func LightGuest(t testing.TB) Guest {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test that boots a Linux guest")
	}
	k := boottest.RequireKernel(t)
	order, err := boottest.ModuleOrder(k, lightModules...)
	if err != nil {
		t.Fatalf("resolving module dependencies: %v", err)
	}
	var mods []guestinit.Module
	for _, p := range order {
		mods = append(mods, guestinit.Module{Path: p})
	}
	agent := boottest.BuildAgent(t)
	initrd := boottest.Initramfs(t, agent, k, mods)
	root := boottest.RootFS(t, 64<<20, map[string]string{
		"sbin/init":            boottest.BuildStatic(t, "./internal/host/hypervisor/hvtest/testdata/hvinit"),
		boottest.AgentPath[1:]: agent,
	})
	work := boottest.RootFS(t, 16<<20, nil)

	vmlinux := filepath.Join(t.TempDir(), "vmlinux")
	f, err := os.Create(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kernelstage.ExtractVmlinux(k.Vmlinuz, f); err != nil {
		f.Close()
		t.Fatalf("extracting vmlinux from %s: %v", k.Vmlinuz, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return Guest{
		Vmlinuz:        k.Vmlinuz,
		Vmlinux:        vmlinux,
		Initrd:         initrd,
		Root:           root,
		Work:           work,
		Cmdline:        "root=/dev/vda ro",
		PowerOffMarker: LightPowerOffMarker,
		ReadOnlyProbe:  []string{"/sbin/init", "probe-ro"},
		BootIDProbe:    []string{"/sbin/init", "boot-id"},
	}
}
