package kernelstage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bangerdev/banger/internal/guest/guestinit"
	"github.com/bangerdev/banger/internal/shared/initramfs"
)

// archiveEntry is what a test compares of one initramfs member.
type archiveEntry struct {
	Mode fs.FileMode
	Rdev string // "major:minor" for device nodes
	Data string
}

// readArchive lists an initramfs with the initramfs package's Reader.
func readArchive(t *testing.T, p string) (map[string]archiveEntry, []string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := initramfs.NewReader(f)
	entries := map[string]archiveEntry{}
	var order []string
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", p, err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		e := archiveEntry{Mode: h.Mode, Data: string(data)}
		if h.Mode&fs.ModeDevice != 0 {
			e.Rdev = fmt.Sprintf("%d:%d", h.RdevMajor, h.RdevMinor)
		}
		if h.UID != 0 || h.GID != 0 {
			t.Errorf("%s is owned by %d:%d, want root", h.Name, h.UID, h.GID)
		}
		entries[h.Name] = e
		order = append(order, h.Name)
	}
	return entries, order
}

// fixedEntries are the archive members every banger initramfs has, apart
// from the modules and their directories.
func fixedEntries(release, modulesList string, agent []byte) map[string]archiveEntry {
	dir := func(perm fs.FileMode) archiveEntry { return archiveEntry{Mode: fs.ModeDir | perm} }
	return map[string]archiveEntry{
		"dev":                    dir(0o755),
		"dev/console":            {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Rdev: "5:1"},
		"dev/null":               {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Rdev: "1:3"},
		"proc":                   dir(0o555),
		"sys":                    dir(0o555),
		"run":                    dir(0o755),
		"newroot":                dir(0o755),
		"tmp":                    dir(0o777 | fs.ModeSticky),
		"etc":                    dir(0o755),
		"etc/banger":             dir(0o755),
		"etc/banger/modules":     {Mode: 0o644, Data: modulesList},
		"lib":                    dir(0o755),
		"lib/modules":            dir(0o755),
		"lib/modules/" + release: dir(0o755),
		"init":                   {Mode: 0o755, Data: string(agent)},
	}
}

// addModuleDirs adds the directories above each module path.
func addModuleDirs(want map[string]archiveEntry, release string, mods []string) {
	for _, m := range mods {
		for d := path.Dir(m); d != "."; d = path.Dir(d) {
			want[path.Join("lib/modules", release, d)] = archiveEntry{Mode: fs.ModeDir | 0o755}
		}
	}
}

// stageFixture is a synthetic distro kernel: a bzImage or ELF, a modules
// tree (some modules compressed), a config and an agent.
type stageFixture struct {
	vmlinux  []byte
	kernel   []byte
	mods     []fixtureModule
	builtin  []string
	config   map[string]string
	agent    []byte
	vermagic map[string]string // module name -> vermagic release, default fixtureRelease
	noMods   bool              // no modules dir at all
}

func newStageFixture(t *testing.T) *stageFixture {
	vmlinux := fakeELF(fakeKernelBody(fixtureRelease, 64<<10), "")
	cfg := debianLikeConfig()
	cfg["CONFIG_VIRTIO_MMIO"] = "n"
	cfg["CONFIG_CRYPTO_CRC32C"] = "y"
	return &stageFixture{
		vmlinux: vmlinux,
		kernel:  fakeBzImage(gzipBytes(t, vmlinux), fixtureRelease),
		mods: []fixtureModule{
			{"kernel/drivers/virtio/virtio_ring.ko.xz", nil},
			{"kernel/drivers/virtio/virtio.ko", []string{"virtio_ring"}},
			{"kernel/drivers/virtio/virtio_pci_modern_dev.ko.gz", []string{"virtio"}},
			{"kernel/drivers/virtio/virtio_pci.ko.zst", []string{"virtio", "virtio_ring", "virtio_pci_modern_dev"}},
			{"kernel/drivers/block/virtio_blk.ko", []string{"virtio", "virtio_ring"}},
			{"kernel/net/core/failover.ko", nil},
			{"kernel/drivers/net/net_failover.ko", []string{"failover"}},
			{"kernel/drivers/net/virtio_net.ko", []string{"net_failover", "virtio", "virtio_ring"}},
			{"kernel/net/vmw_vsock/vsock.ko", nil},
			{"kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko", []string{"vsock", "virtio", "virtio_ring"}},
			{"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko", []string{"vmw_vsock_virtio_transport_common", "vsock", "virtio", "virtio_ring"}},
			{"kernel/fs/overlayfs/overlay.ko", nil},
			{"kernel/fs/btrfs/btrfs.ko", nil}, // not needed: must stay out
		},
		builtin: []string{"kernel/fs/ext4/ext4.ko", "kernel/crypto/crc32c_generic.ko", "kernel/drivers/tty/serial/8250/8250.ko", "kernel/drivers/acpi/button.ko"},
		config:  cfg,
		agent:   fakeELF([]byte("banger-agent"), ""),
	}
}

// koFor is the uncompressed module file the fixture writes for m.
func (f *stageFixture) koFor(m fixtureModule) []byte {
	rel := fixtureRelease
	if v, ok := f.vermagic[moduleName(m.path)]; ok {
		rel = v
	}
	return fakeKO("name="+moduleName(m.path), "depends="+strings.Join(m.deps, ","), "vermagic="+rel+" SMP mod_unload modversions ")
}

// write puts the fixture's files under dir and returns the Input.
func (f *stageFixture) write(t *testing.T, dir string) Input {
	t.Helper()
	in := Input{
		Kernel:   writeFile(t, filepath.Join(dir, "boot/vmlinuz-"+fixtureRelease), f.kernel),
		AgentBin: writeFile(t, filepath.Join(dir, "banger-agent"), f.agent),
	}
	if f.config != nil {
		var b strings.Builder
		for k, v := range f.config {
			if v == "n" {
				fmt.Fprintf(&b, "# %s is not set\n", k)
			} else {
				fmt.Fprintf(&b, "%s=%s\n", k, v)
			}
		}
		in.Config = writeFile(t, filepath.Join(dir, "boot/config-"+fixtureRelease), []byte(b.String()))
	}
	if !f.noMods {
		in.ModulesDir = filepath.Join(dir, "lib/modules", fixtureRelease)
		for _, m := range f.mods {
			writeFile(t, filepath.Join(in.ModulesDir, m.path), compressModule(t, m.path, f.koFor(m)))
		}
		writeFile(t, filepath.Join(in.ModulesDir, "modules.builtin"), []byte(strings.Join(f.builtin, "\n")+"\n"))
	}
	return in
}

func TestStageFixture(t *testing.T) {
	wantOrder := []string{
		"kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
		"kernel/drivers/virtio/virtio_pci.ko",
		"kernel/drivers/block/virtio_blk.ko",
		"kernel/net/core/failover.ko",
		"kernel/drivers/net/net_failover.ko",
		"kernel/drivers/net/virtio_net.ko",
		"kernel/net/vmw_vsock/vsock.ko",
		"kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
		"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
		"kernel/fs/overlayfs/overlay.ko",
	}
	tests := []struct {
		name    string
		modify  func(f *stageFixture)
		want    func(out string) Result // without Suitability
		wantFit Suitability             // reasons ignored
		fcHas   string
	}{
		{
			name: "bzImage, compressed modules, config",
			want: func(out string) Result {
				return Result{
					Release: fixtureRelease, Compression: compGzip,
					Vmlinux: filepath.Join(out, "vmlinux"), Vmlinuz: filepath.Join(out, "vmlinuz"), Initrd: filepath.Join(out, "initrd.img"),
					Modules: wantOrder, Builtin: []string{"ext4", "crc32c_generic"}, Absent: []string{"virtio_mmio", "virtio_console"},
				}
			},
			wantFit: Suitability{
				QEMU: true, ConfigKnown: true, ACPI: true, VirtioPCI: true, VirtioBlk: true, VirtioNet: true, Vsock: true, SerialConsole: true,
			},
			fcHas: "kernel lacks virtio-mmio",
		},
		{
			name: "bzImage without a version string: release from the vmlinux banner",
			modify: func(f *stageFixture) {
				binary.LittleEndian.PutUint16(f.kernel[offKernelVersion:], 0)
			},
			want: func(out string) Result {
				return Result{
					Release: fixtureRelease, Compression: compGzip,
					Vmlinux: filepath.Join(out, "vmlinux"), Vmlinuz: filepath.Join(out, "vmlinuz"), Initrd: filepath.Join(out, "initrd.img"),
					Modules: wantOrder, Builtin: []string{"ext4", "crc32c_generic"}, Absent: []string{"virtio_mmio", "virtio_console"},
				}
			},
			wantFit: Suitability{
				QEMU: true, ConfigKnown: true, ACPI: true, VirtioPCI: true, VirtioBlk: true, VirtioNet: true, Vsock: true, SerialConsole: true,
			},
			fcHas: "kernel lacks virtio-mmio",
		},
		{
			name: "ELF vmlinux input, no config: release from the banner, verdict inferred",
			modify: func(f *stageFixture) {
				f.kernel = f.vmlinux
				f.config = nil
			},
			want: func(out string) Result {
				return Result{
					Release: fixtureRelease, Compression: compNone,
					Vmlinux: filepath.Join(out, "vmlinux"), Initrd: filepath.Join(out, "initrd.img"),
					Modules: wantOrder, Builtin: []string{"ext4", "crc32c_generic"}, Absent: []string{"virtio_mmio", "virtio_console"},
				}
			},
			wantFit: Suitability{
				QEMU: true, ACPI: true, VirtioPCI: true, VirtioBlk: true, VirtioNet: true, Vsock: true, SerialConsole: true,
			},
			fcHas: "inferred from the modules (no kernel config given): kernel lacks virtio-mmio",
		},
		{
			name: "everything built in, no PCI, no modules dir (a Firecracker guest kernel)",
			modify: func(f *stageFixture) {
				f.noMods = true
				f.config = firecrackerGuestConfig()
			},
			want: func(out string) Result {
				return Result{
					Release: fixtureRelease, Compression: compGzip,
					Vmlinux: filepath.Join(out, "vmlinux"), Vmlinuz: filepath.Join(out, "vmlinuz"), Initrd: filepath.Join(out, "initrd.img"),
					Builtin: []string{"virtio", "virtio_ring", "virtio_mmio", "virtio_blk", "ext4", "crc32c_generic", "virtio_net",
						"vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport"},
					Absent: []string{"virtio_pci", "virtio_console", "overlay"},
				}
			},
			wantFit: Suitability{
				Firecracker: true, ConfigKnown: true, VirtioMMIO: true, VirtioMMIOCmdline: true,
				VirtioBlk: true, VirtioNet: true, Vsock: true, SerialConsole: true,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newStageFixture(t)
			if tt.modify != nil {
				tt.modify(f)
			}
			in := f.write(t, t.TempDir())
			out := filepath.Join(t.TempDir(), "boot-set")
			res, err := Stage(context.Background(), in, out)
			if err != nil {
				t.Fatalf("Stage: %v", err)
			}
			if diff := cmp.Diff(tt.want(out), res, cmpopts.IgnoreFields(Result{}, "Suitability"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Result (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantFit, res.Suitability, cmpopts.IgnoreFields(Suitability{}, "FirecrackerReason", "QEMUReason")); diff != "" {
				t.Errorf("Suitability (-want +got):\n%s", diff)
			}
			if tt.fcHas != "" && !strings.Contains(res.Suitability.FirecrackerReason, tt.fcHas) {
				t.Errorf("FirecrackerReason = %q, want it to contain %q", res.Suitability.FirecrackerReason, tt.fcHas)
			}

			// The files: exactly these, nothing temporary left over.
			wantFiles := []string{"initrd.img", "vmlinux"}
			if res.Vmlinuz != "" {
				wantFiles = append(wantFiles, "vmlinuz")
			}
			if diff := cmp.Diff(wantFiles, dirNames(t, out)); diff != "" {
				t.Errorf("files in %s (-want +got):\n%s", out, diff)
			}
			if got, _ := os.ReadFile(res.Vmlinux); !bytes.Equal(got, f.vmlinux) {
				t.Errorf("vmlinux differs from the kernel's ELF (%d bytes, want %d)", len(got), len(f.vmlinux))
			}
			if res.Vmlinuz != "" {
				if got, _ := os.ReadFile(res.Vmlinuz); !bytes.Equal(got, f.kernel) {
					t.Error("vmlinuz is not a copy of the input kernel")
				}
			}

			// The archive: exactly the expected members.
			list := wantModulesFile(fixtureRelease, res.Modules)
			want := fixedEntries(fixtureRelease, list, f.agent)
			addModuleDirs(want, fixtureRelease, res.Modules)
			for _, m := range f.mods {
				if slices.Contains(res.Modules, plainKO(m.path)) {
					want[path.Join("lib/modules", fixtureRelease, plainKO(m.path))] = archiveEntry{Mode: 0o644, Data: string(f.koFor(m))}
				}
			}
			got, _ := readArchive(t, res.Initrd)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("initramfs members (-want +got):\n%s", diff)
			}

			// Staging again into the same directory gives the same bytes.
			first, _ := os.ReadFile(res.Initrd)
			if _, err := Stage(context.Background(), in, out); err != nil {
				t.Fatalf("second Stage: %v", err)
			}
			if second, _ := os.ReadFile(res.Initrd); !bytes.Equal(first, second) {
				t.Error("staging twice gave different initramfs bytes; the archive must be reproducible")
			}
		})
	}
}

// wantModulesFile is the modules list the initramfs must carry for
// modules, as guestinit's init reads it: every module required, except
// BootOptional ones (overlay), which only banger.rootfs=overlay boots use.
func wantModulesFile(release string, modules []string) string {
	var mods []guestinit.Module
	for _, m := range modules {
		mods = append(mods, guestinit.Module{Path: m, Optional: moduleName(m) == "overlay"})
	}
	return string(guestinit.FormatModules(release, mods))
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestStageErrors checks that Stage refuses inputs that cannot boot, says
// why, and writes nothing.
func TestStageErrors(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(f *stageFixture)
		wantErr string
	}{
		{
			name: "essential module missing",
			modify: func(f *stageFixture) {
				f.mods = slices.DeleteFunc(f.mods, func(m fixtureModule) bool { return strings.Contains(m.path, "virtio_blk") })
			},
			wantErr: "lacks virtio_blk: it is neither a module nor built in according to",
		},
		{
			name: "essential module neither present nor known (no builtin list, no config)",
			modify: func(f *stageFixture) {
				f.builtin = nil
				f.config = nil
			},
			wantErr: "lacks ext4",
		},
		{
			name:    "dynamically linked agent",
			modify:  func(f *stageFixture) { f.agent = fakeELF([]byte("agent"), "/lib64/ld-linux-x86-64.so.2") },
			wantErr: "dynamically linked, but the initramfs has no libc or loader; build it with CGO_ENABLED=0",
		},
		{
			name:    "agent is a script",
			modify:  func(f *stageFixture) { f.agent = []byte("#!/bin/sh\necho hi\n") },
			wantErr: "is not a readable ELF executable",
		},
		{
			name:    "modules from another kernel",
			modify:  func(f *stageFixture) { f.vermagic = map[string]string{"virtio_blk": "9.9.8-other"} },
			wantErr: "was built for kernel 9.9.8-other, but the kernel is " + fixtureRelease,
		},
		{
			name: "dependency missing from the tree",
			modify: func(f *stageFixture) {
				f.mods = slices.DeleteFunc(f.mods, func(m fixtureModule) bool { return strings.Contains(m.path, "/failover.ko") })
			},
			wantErr: "net_failover depends on failover, which is neither",
		},
		{
			name: "ELF without a version banner and no modules dir",
			modify: func(f *stageFixture) {
				f.kernel = fakeELF([]byte("no banner here"), "")
				f.noMods = true
			},
			wantErr: "cannot tell the release",
		},
		{
			name: "no virtio transport at all",
			modify: func(f *stageFixture) {
				f.mods = slices.DeleteFunc(f.mods, func(m fixtureModule) bool { return strings.Contains(m.path, "virtio_pci.ko") })
			},
			wantErr: "lacks a virtio transport (virtio_pci or virtio_mmio)",
		},
		{
			name: "module-less kernel whose config builds virtio_blk as a module",
			modify: func(f *stageFixture) {
				f.noMods = true
			},
			wantErr: "builds CONFIG_VIRTIO_BLK as a module and no modules dir was given",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newStageFixture(t)
			tt.modify(f)
			in := f.write(t, t.TempDir())
			out := t.TempDir()
			_, err := Stage(context.Background(), in, out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Stage error = %v, want one containing %q", err, tt.wantErr)
			}
			if names := dirNames(t, out); len(names) != 0 {
				t.Errorf("Stage wrote %v before finding the input unusable; it must check first", names)
			}
		})
	}
}

func TestStageCancelled(t *testing.T) {
	f := newStageFixture(t)
	in := f.write(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := t.TempDir()
	if _, err := Stage(ctx, in, out); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stage with a cancelled context: error = %v, want context.Canceled", err)
	}
	if names := dirNames(t, out); len(names) != 0 {
		t.Errorf("cancelled Stage left %v", names)
	}
}

// TestDebianStage stages Debian's real cloud kernel and checks the boot set.
func TestDebianStage(t *testing.T) {
	k := debianKernel(t)
	agent := writeFile(t, filepath.Join(t.TempDir(), "banger-agent"), fakeELF([]byte("banger-agent"), ""))
	in := Input{Kernel: k.Vmlinuz, ModulesDir: k.ModulesDir, Config: k.Config, AgentBin: agent}
	out := t.TempDir()

	start := time.Now()
	res, err := Stage(context.Background(), in, out)
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	took := time.Since(start)
	start = time.Now()
	if _, err := Stage(context.Background(), in, out); err != nil {
		t.Fatalf("second Stage: %v", err)
	}
	t.Logf("Stage took %v (again into the same directory: %v)", took, time.Since(start))
	t.Logf("release %s, compression %s", res.Release, res.Compression)
	t.Logf("modules in load order: %s", strings.Join(res.Modules, " "))
	t.Logf("built in: %v; absent: %v", res.Builtin, res.Absent)
	t.Logf("suitability: %+v", res.Suitability)

	if res.Release != k.Release {
		t.Errorf("Release = %q, want %q", res.Release, k.Release)
	}
	if res.Compression != compLZ4 {
		t.Errorf("Compression = %q; Debian 12's cloud kernel is lz4 (CONFIG_KERNEL_LZ4)", res.Compression)
	}
	checkVmlinux(t, res.Vmlinux, k.Vmlinuz)
	if got, want := fileSum(t, res.Vmlinuz), fileSum(t, k.Vmlinuz); got != want {
		t.Error("vmlinuz is not a copy of the package's kernel")
	}

	// The archive holds exactly the fixed entries, the listed modules and
	// their directories.
	list := wantModulesFile(k.Release, res.Modules)
	agentBytes, _ := os.ReadFile(agent)
	want := fixedEntries(k.Release, list, agentBytes)
	addModuleDirs(want, k.Release, res.Modules)
	for _, m := range res.Modules {
		want[path.Join("lib/modules", k.Release, m)] = archiveEntry{Mode: 0o644}
	}
	got, order := readArchive(t, res.Initrd)
	staged := map[string][]byte{}
	for name, e := range got {
		if rel, ok := strings.CutPrefix(name, "lib/modules/"+k.Release+"/"); ok && e.Mode.IsRegular() {
			staged[rel] = []byte(e.Data)
			e.Data = ""
			got[name] = e
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("initramfs members (-want +got):\n%s", diff)
	}
	if cpio, err := exec.LookPath("cpio"); err == nil {
		f, err := os.Open(res.Initrd)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(cpio, "-t", "--quiet")
		cmd.Stdin = f
		listing, err := cmd.Output()
		f.Close()
		if err != nil {
			t.Fatalf("cpio -t: %v", err)
		}
		if diff := cmp.Diff(order, strings.Fields(string(listing))); diff != "" {
			t.Errorf("cpio -t lists differently from the Reader (-reader +cpio):\n%s", diff)
		}
	} else {
		t.Log("cpio not installed; listing checked with the initramfs Reader only")
	}

	// /etc/banger/modules is in dependency order, every staged module is for
	// this kernel, and everything needed is there.
	tree, err := loadTree(k.ModulesDir)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range res.Modules {
		pos[moduleName(m)] = i
	}
	for i, m := range res.Modules {
		info, err := modinfo(m, staged[m])
		if err != nil {
			t.Fatal(err)
		}
		if v := strings.Fields(info["vermagic"]); len(v) == 0 || v[0] != k.Release {
			t.Errorf("%s: vermagic %q, want release %s", m, info["vermagic"], k.Release)
		}
		for _, d := range strings.Split(info["depends"], ",") {
			if d == "" {
				continue
			}
			j, ok := pos[moduleName(d)]
			_, builtin := tree.builtin[moduleName(d)]
			if (!ok && !builtin) || (ok && j > i) {
				t.Errorf("%s needs %s loaded first (positions %d, %d; built in %v)", m, d, i, j, builtin)
			}
		}
	}
	names := modNames(res.Modules)
	for _, n := range []string{"virtio_pci", "virtio_blk", "virtio_net", "net_failover", "failover", "virtio_mmio", "vsock", "vmw_vsock_virtio_transport", "virtio_console"} {
		if !slices.Contains(names, n) {
			t.Errorf("initramfs lacks %s", n)
		}
	}
	if len(res.Absent) != 0 {
		t.Errorf("Debian's cloud kernel has every needed module, but Absent = %v", res.Absent)
	}

	wantFit := Suitability{
		Firecracker: true, FirecrackerMinVersion: "1.8", QEMU: true, ConfigKnown: true,
		VirtioMMIO: true, ACPI: true, VirtioPCI: true, VirtioBlk: true, VirtioNet: true,
		Vsock: true, VirtioConsole: true, SerialConsole: true,
	}
	if diff := cmp.Diff(wantFit, res.Suitability, cmpopts.IgnoreFields(Suitability{}, "FirecrackerReason", "QEMUReason")); diff != "" {
		t.Errorf("Suitability (-want +got):\n%s", diff)
	}
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// TestDebianBootQEMU boots the staged ELF vmlinux (through its PVH entry
// point) with the staged initramfs under QEMU's software emulation, with a
// test /init that loads /etc/banger/modules in order and waits for the
// virtio disk: the end-to-end check that the list, the order and the
// decompressed files work in a real kernel.
func TestDebianBootQEMU(t *testing.T) {
	k := debianKernel(t)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 is not installed (apt-get install -y qemu-system-x86), so no guest can be booted")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not in PATH, so the test /init cannot be built")
	}
	dir := t.TempDir()
	initBin := filepath.Join(dir, "modinit")
	build := exec.Command(goBin, "build", "-o", initBin, "./testdata/modinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/modinit: %v\n%s", err, out)
	}
	res, err := Stage(context.Background(), Input{Kernel: k.Vmlinuz, ModulesDir: k.ModulesDir, Config: k.Config, AgentBin: initBin}, filepath.Join(dir, "boot"))
	if err != nil {
		t.Fatal(err)
	}
	disk := writeFile(t, filepath.Join(dir, "disk.img"), make([]byte, 1<<20))

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-machine", "q35", "-accel", "tcg", "-m", "512", "-smp", "1",
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", res.Vmlinux, "-initrd", res.Initrd,
		"-append", "console=ttyS0 panic=-1",
		"-drive", "file="+disk+",if=virtio,format=raw",
	)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	console := string(out)
	if ctx.Err() != nil {
		t.Fatalf("guest did not power off within 120 s; console tail:\n%s", tail(console, 30))
	}
	if err != nil {
		t.Fatalf("qemu: %v; console tail:\n%s", err, tail(console, 30))
	}
	i := strings.Index(console, "KS-OK ")
	if i < 0 {
		t.Fatalf("the test init did not report success; console tail:\n%s", tail(console, 30))
	}
	line, _, _ := strings.Cut(console[i:], "\n")
	t.Logf("booted in %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(line))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
