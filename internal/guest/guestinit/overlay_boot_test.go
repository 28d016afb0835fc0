package guestinit_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guest/guestinit"
	"github.com/bangerdev/banger/internal/guest/guestinit/boottest"
	"github.com/bangerdev/banger/internal/shared/filedigest"
)

// TestInitBootOverlay boots with banger.rootfs=overlay under QEMU: the
// base ext4 (vda) attached read-only, a work disk (vdb) and an upper disk
// (vdc, blank: init makes upper/ and work/). The root's /sbin/init
// (rootinit) reports what it sees, writes /etc/banger-probe and renames a
// directory of the base. Three boots: a fresh upper (nothing there yet),
// the same upper again (the write and the rename persisted), a fresh
// upper again (both gone). The base's digest never changes.
func TestInitBootOverlay(t *testing.T) {
	qemu := boottest.RequireQEMU(t)
	k := boottest.RequireKernel(t)
	order, err := boottest.ModuleOrder(k, "virtio_pci", "virtio_blk", "overlay")
	if err != nil {
		t.Fatalf("resolving module dependencies: %v", err)
	}
	var mods []guestinit.Module
	for _, p := range order {
		mods = append(mods, guestinit.Module{Path: p})
	}
	initrd := boottest.Initramfs(t, boottest.BuildAgent(t), k, mods)
	marker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(marker, []byte("from the base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := boottest.RootFS(t, 32<<20, map[string]string{
		"sbin/init":           boottest.BuildRootInit(t),
		"etc/banger-dir/file": marker,
	})
	work := boottest.BlankExt4(t, 8<<20)
	before := digest(t, base)

	boot := func(upper, token string) map[string]string {
		t.Helper()
		vm := boottest.Boot(t, boottest.Options{
			QEMU: qemu, Kernel: k.Vmlinuz, Initrd: initrd,
			Disks:    []string{base, work, upper},
			ReadOnly: map[string]bool{base: true},
			Append:   "console=ttyS0 root=/dev/vda rw banger.rootfs=overlay panic=-1 rootinit.overlay rootinit.token=" + token,
		})
		elapsed, err := vm.WaitFor(boottest.RootMarker, 2*time.Minute)
		if err != nil {
			t.Fatalf("%v; console:\n%s", err, vm.Console())
		}
		if err := vm.WaitExit(time.Minute); err != nil {
			t.Fatalf("%v; console:\n%s", err, vm.Console())
		}
		console := vm.Console()
		root := strings.TrimSpace(lineWith(console, boottest.RootMarker))
		line := strings.TrimSpace(lineWith(console, "BANGER-OVERLAY "))
		t.Logf("boot %s: /sbin/init ran %v after QEMU started\n  %s\n  %s", token, elapsed.Round(time.Millisecond), root, line)
		if !strings.Contains(root, " root=overlay ") {
			t.Errorf("/ is not an overlay: %s\n%s", root, console)
		}
		got := map[string]string{}
		for _, kv := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = v
		}
		if got["df-root"] == "" {
			t.Fatalf("no overlay report on the console:\n%s", console)
		}
		return got
	}
	check := func(name string, got map[string]string, want map[string]string) {
		t.Helper()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s=%s, want %s", name, k, got[k], v)
			}
		}
		for _, k := range []string{"lower-rw", "vda-write"} {
			if got[k] == "ok" || got[k] == "" {
				t.Errorf("%s: %s=%q: the guest changed the read-only base", name, k, got[k])
			}
		}
		if got["df-root"] != got["df-upper"] || got["df-root"] == got["df-lower"] {
			t.Errorf("%s: df / shows %s bytes; want the upper disk's %s, not the base's %s", name, got["df-root"], got["df-upper"], got["df-lower"])
		}
	}
	same := map[string]string{"remount": "ok", "fsconfig": "ok", "uniform-dev": "true", "upper-has-probe": "true", "vda-ro": "1"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range same {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	// The upper disk is a 96 MiB file system in a 100 GiB sparse file,
	// as vm create makes it: init grows the file system to the disk,
	// beyond the 1024-fold growth mkfs reserves descriptor blocks for
	// (statfs counts the blocks less the inode tables and journal: ~95 GiB).
	upper := boottest.BlankExt4(t, 96<<20)
	if err := os.Truncate(upper, 100<<30); err != nil {
		t.Fatal(err)
	}
	first := boot(upper, "one")
	check("first boot", first, with(map[string]string{"probe": "absent", "rename": "ok"}))
	if n, _ := strconv.ParseInt(first["df-upper"], 10, 64); n < 90<<30 {
		t.Errorf("first boot: the upper file system has %s bytes; init should have grown it to fill its 100 GiB disk", first["df-upper"])
	}
	check("same upper", boot(upper, "two"), with(map[string]string{"probe": "one", "rename": "absent"}))
	fresh := boot(boottest.BlankExt4(t, 96<<20), "three")
	check("fresh upper", fresh, with(map[string]string{"probe": "absent", "rename": "ok"}))
	if n, _ := strconv.ParseInt(fresh["df-upper"], 10, 64); n > 96<<20 || n < 64<<20 {
		t.Errorf("fresh upper that fills its disk: %s bytes, want its 96 MiB unchanged", fresh["df-upper"])
	}

	if after := digest(t, base); after != before {
		t.Errorf("the base changed: sha256 %s before the boots, %s after", before, after)
	}
}

func digest(t *testing.T, p string) string {
	t.Helper()
	sum, err := filedigest.SHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestInitBootOverlayNoModule boots banger.rootfs=overlay from an
// initramfs without the overlay module (an image staged before banger
// knew overlays): init must name the cause on one line and power off.
func TestInitBootOverlayNoModule(t *testing.T) {
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
	initrd := boottest.Initramfs(t, boottest.BuildAgent(t), k, mods)
	base := boottest.RootFS(t, 32<<20, map[string]string{"sbin/init": boottest.BuildRootInit(t)})
	upper := boottest.BlankExt4(t, 16<<20)
	vm := boottest.Boot(t, boottest.Options{
		QEMU: qemu, Kernel: k.Vmlinuz, Initrd: initrd,
		Disks:    []string{base, boottest.BlankExt4(t, 8<<20), upper},
		ReadOnly: map[string]bool{base: true},
		Append:   "console=ttyS0 root=/dev/vda rw banger.rootfs=overlay panic=-1",
	})
	if err := vm.WaitExit(2 * time.Minute); err != nil {
		t.Fatalf("%v; console:\n%s", err, vm.Console())
	}
	console := vm.Console()
	want := "banger-init: mounting the overlay root at /newroot: no such device: this kernel has no overlay file system"
	if !strings.Contains(console, want) {
		t.Errorf("console lacks %q:\n%s", want, console)
	}
	if strings.Contains(console, boottest.RootMarker) || strings.Contains(console, "Kernel panic") {
		t.Errorf("the guest booted on or panicked; init must power off:\n%s", console)
	}
	t.Logf("guest: %s", strings.TrimSpace(lineWith(console, "banger-init: mounting the overlay")))
}
