package guestinit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guest/guestinit"
	"github.com/bangerdev/banger/internal/guest/guestinit/boottest"
)

// TestInitBoot boots Debian's cloud kernel under QEMU (software emulation)
// with banger-agent as the initramfs /init: it must load the virtio
// modules, mount /dev/vda, switch root and start the root filesystem's
// /sbin/init, which prints a marker and powers off.
func TestInitBoot(t *testing.T) {
	qemu := boottest.RequireQEMU(t)
	k := boottest.RequireKernel(t)
	order, err := boottest.ModuleOrder(k, "virtio_pci", "virtio_blk")
	if err != nil {
		t.Fatalf("resolving module dependencies: %v", err)
	}
	var mods []guestinit.Module
	for _, p := range order {
		mods = append(mods, guestinit.Module{Path: p})
	}
	initrd := boottest.Initramfs(t, boottest.BuildAgent(t), k, mods,
		guestinit.Module{Path: "kernel/net/vmw_vsock/not_in_this_initramfs.ko", Optional: true})
	root := boottest.RootFS(t, 32<<20, map[string]string{"sbin/init": boottest.BuildRootInit(t)})

	vm := boottest.Boot(t, boottest.Options{
		QEMU:   qemu,
		Kernel: k.Vmlinuz,
		Initrd: initrd,
		Disks:  []string{root},
		Append: "console=ttyS0 root=/dev/vda panic=-1 -- single",
	})
	elapsed, err := vm.WaitFor(boottest.RootMarker, 2*time.Minute)
	if err != nil {
		t.Fatalf("%v; console:\n%s", err, vm.Console())
	}
	t.Logf("kernel %s: /sbin/init of the root filesystem ran %v after QEMU started", k.Release, elapsed.Round(time.Millisecond))
	if err := vm.WaitExit(time.Minute); err != nil {
		t.Errorf("%v; console:\n%s", err, vm.Console())
	}

	console := vm.Console()
	line := lineWith(console, boottest.RootMarker)
	for _, l := range strings.Split(console, "\n") {
		if strings.HasPrefix(l, "banger-init: ") || strings.HasPrefix(l, boottest.RootMarker) {
			t.Logf("guest: %s", strings.TrimSpace(l))
		}
	}
	want := boottest.RootMarker + ` pid=1 args=["single"] root=ext4 proc=proc sys=sysfs dev=devtmpfs initramfs-visible=false`
	if strings.TrimSpace(line) != want {
		t.Errorf("marker line\n got %q\nwant %q", strings.TrimSpace(line), want)
	}
	for _, want := range []string{
		"banger-init: optional module not_in_this_initramfs is not in the initramfs",
		"banger-init: freed the initramfs (",
		"banger-init: starting /sbin/init",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s", want, console)
		}
	}
}

// TestInitBootFailure boots without the disk driver: init must say why on
// the console and power off, not hang and not panic the kernel.
func TestInitBootFailure(t *testing.T) {
	qemu := boottest.RequireQEMU(t)
	k := boottest.RequireKernel(t)
	initrd := boottest.Initramfs(t, boottest.BuildAgent(t), k, nil)
	root := boottest.RootFS(t, 32<<20, map[string]string{"sbin/init": boottest.BuildRootInit(t)})
	vm := boottest.Boot(t, boottest.Options{
		QEMU: qemu, Kernel: k.Vmlinuz, Initrd: initrd, Disks: []string{root},
		Append: "console=ttyS0 root=/dev/vda panic=-1 banger.rootwait=2",
	})
	if err := vm.WaitExit(2 * time.Minute); err != nil {
		t.Fatalf("%v; console:\n%s", err, vm.Console())
	}
	console := vm.Console()
	want := "banger-init: root device /dev/vda did not appear within 2s; is its driver (e.g. virtio_blk) in /etc/banger/modules and does the VM have that disk? modules loaded: none"
	if !strings.Contains(console, want) {
		t.Errorf("console lacks %q:\n%s", want, console)
	}
	if strings.Contains(console, "Kernel panic") {
		t.Errorf("the kernel panicked; init must power off instead:\n%s", console)
	}
	t.Logf("guest: %s", lineWith(console, "banger-init: root device"))
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
