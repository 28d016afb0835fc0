// Package kernelstage turns any distro's kernel image and modules tree into a
// banger boot set: an uncompressed ELF vmlinux, the compressed kernel, and an
// initramfs holding exactly the modules the hypervisors' devices need plus
// banger-agent as /init.
//
// It owns three things: getting the vmlinux out of a bzImage (ExtractVmlinux:
// the x86 boot protocol header, the payload's compression, the check that the
// result is an x86-64 ELF), resolving which module files a set of module names
// needs and in which order (ModuleClosure, from modules.dep or, when a package
// ships none, from each module's own depends= field), and the verdict on
// which hypervisors can boot a kernel (ParseConfig and Judge). Stage combines
// them into the files an image directory holds.
//
// The initramfs layout is a contract with the init inside banger-agent:
//
//	/init                          banger-agent (0755), run as PID 1 without arguments
//	/etc/banger/modules            "# release <release>", then one module per line,
//	                               in load order, relative to /lib/modules/<release>/,
//	                               followed by " optional" for BootOptional ones
//	/lib/modules/<release>/<path>  the module files, always uncompressed .ko
//	/dev/console (c 5:1), /dev/null (c 1:3), and /proc /sys /run /newroot /tmp
//
// The archive is written uncompressed: the kernel unpacks a plain newc archive
// without any decompressor, and doing so is faster than decompressing.
package kernelstage

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
	"github.com/bangerdev/banger/internal/shared/initramfs"
)

// NeededModules are the module names (as in modules.dep, without .ko) the
// hypervisors' devices need; their dependencies are added. Names built into
// the kernel (modules.builtin, or =y in the config) need no file. Of these,
// virtio_blk, ext4 and one of virtio_pci and virtio_mmio are essential
// (Stage fails without them); the others are optional and reported in
// Result.Absent when a kernel lacks them.
//
// Why each is here: virtio/virtio_ring are the core (usually pulled in as
// dependencies anyway); virtio_pci is QEMU's transport and virtio_mmio
// Firecracker's; virtio_blk carries the root and work disks, ext4 their file
// system, and crc32c_generic the crc32c that ext4's metadata checksums need
// when ext4 is a module (nothing in an initramfs could load it on demand;
// the faster crc32c_intel is left to udev after switch_root, because it
// fails with ENODEV on CPUs without SSE4.2, QEMU's default TCG CPU among
// them); virtio_net is the guest NIC; vsock and its virtio transport
// carry banger-agent's channel, virtio_console its fallback (virtio-serial)
// where the host has no vhost-vsock; overlay assembles the root from the
// image's shared read-only rootfs and the VM's upper disk when the command
// line says banger.rootfs=overlay (guestinit), so it is listed optional in
// the initramfs (BootOptional): a boot without the flag never depends on
// it, and one with the flag on a kernel without it stops with the cause.
// Everything else (af_packet, netfilter,
// file systems for other disks) is loaded after switch_root from the modules
// tree in the rootfs.
var NeededModules = []string{
	"virtio", "virtio_ring",
	"virtio_pci", "virtio_mmio",
	"virtio_blk", "ext4", "crc32c_generic",
	"virtio_net",
	"vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport",
	"virtio_console",
	"overlay",
}

// BootOptional are the needed modules the initramfs lists as optional
// (guestinit.Module.Optional): their failure to load is logged and the
// boot goes on, because only some boots use them.
var BootOptional = []string{"overlay"}

// configSymbol is the config symbol that builds a needed module, for kernels
// whose modules tree cannot tell whether a module is built in.
func configSymbol(name string) string {
	switch name {
	case "virtio", "virtio_ring":
		return "CONFIG_VIRTIO"
	case "virtio_pci":
		return "CONFIG_VIRTIO_PCI"
	case "virtio_mmio":
		return "CONFIG_VIRTIO_MMIO"
	case "virtio_blk":
		return "CONFIG_VIRTIO_BLK"
	case "virtio_net":
		return "CONFIG_VIRTIO_NET"
	case "virtio_console":
		return "CONFIG_VIRTIO_CONSOLE"
	case "vsock":
		return "CONFIG_VSOCKETS"
	case "vmw_vsock_virtio_transport":
		return "CONFIG_VIRTIO_VSOCKETS"
	case "vmw_vsock_virtio_transport_common":
		return "CONFIG_VIRTIO_VSOCKETS_COMMON"
	case "ext4":
		return "CONFIG_EXT4_FS"
	case "crc32c_generic":
		return "CONFIG_CRYPTO_CRC32C"
	case "overlay":
		return "CONFIG_OVERLAY_FS"
	}
	return ""
}

// checkEssentials fails when the kernel lacks what no guest can boot
// without: virtio-blk for the disks, ext4 for their file system, and a
// virtio transport (virtio_pci for QEMU, virtio_mmio for Firecracker; Judge
// says which hypervisor the one present serves).
func checkEssentials(in Input, res Result, cfg map[string]string) error {
	lacks := func(name string) bool { return slices.Contains(res.Absent, name) }
	fail := func(name, symbol string) error {
		if in.ModulesDir == "" && cfg[symbol] == "m" {
			return fmt.Errorf("kernelstage: kernel %s builds %s as a module and no modules dir was given; pass the kernel's lib/modules/%s directory", res.Release, symbol, res.Release)
		}
		where := "the kernel config"
		if in.ModulesDir != "" {
			where = fmt.Sprintf("%s (modules, modules.builtin) or the config", in.ModulesDir)
		}
		return fmt.Errorf("kernelstage: kernel %s lacks %s: it is neither a module nor built in according to %s; banger's guests need it: use a kernel built with %s=y or =m", res.Release, name, where, symbol)
	}
	for _, name := range []string{"virtio_blk", "ext4"} {
		if lacks(name) {
			return fail(name, configSymbol(name))
		}
	}
	if lacks("virtio_pci") && lacks("virtio_mmio") {
		return fail("a virtio transport (virtio_pci or virtio_mmio)", "CONFIG_VIRTIO_PCI or CONFIG_VIRTIO_MMIO")
	}
	return nil
}

// Input names the kernel files to stage. Paths are read only.
type Input struct {
	Kernel     string // compressed bzImage (or an already-uncompressed ELF vmlinux)
	ModulesDir string // lib/modules/<release> tree; "" for a kernel with everything built in
	Config     string // kernel .config (optional: "" = <ModulesDir>/config if present, else unknown)
	AgentBin   string // static banger-agent, becomes /init
}

// Result describes the staged boot set. Paths are absolute.
type Result struct {
	Release     string   // from the kernel's version string; the modules dir name when the kernel has none
	Vmlinux     string   // path of the ELF written to outDir/vmlinux
	Vmlinuz     string   // outDir/vmlinuz (copy of the compressed kernel; for an ELF-only input, "")
	Initrd      string   // outDir/initrd.img
	Compression string   // "gzip" | "xz" | "zstd" | "lz4" | "lzma" | "bzip2" | "none"
	Modules     []string // module files in the initramfs, in load order (deps first), relative to lib/modules/<release>; always .ko (compressed sources are decompressed)
	Builtin     []string // needed modules that are built into the kernel
	Absent      []string // optional needed modules the kernel lacks altogether
	Suitability Suitability
}

// Output file names inside outDir.
const (
	vmlinuxName = "vmlinux"
	vmlinuzName = "vmlinuz"
	initrdName  = "initrd.img"
	modulesList = "etc/banger/modules"
)

// Stage writes the boot set for in into outDir (created if missing):
// outDir/vmlinux, outDir/vmlinuz (unless the input is already an ELF) and
// outDir/initrd.img. Everything that can be checked without decompressing
// the kernel (the agent, the config, the module closure, each module's
// vermagic) is checked before anything is written. Each file is written
// under a temporary name and renamed into place when complete, so a failed
// or cancelled Stage leaves no partial file under a final name, and
// re-running it is safe.
func Stage(ctx context.Context, in Input, outDir string) (Result, error) {
	if in.Kernel == "" {
		return Result{}, errors.New("kernelstage: no kernel image given; pass the distro's vmlinuz (bzImage) or a vmlinux")
	}
	if in.AgentBin == "" {
		return Result{}, errors.New("kernelstage: no banger-agent binary given; it becomes the initramfs /init")
	}
	if err := checkAgent(in.AgentBin); err != nil {
		return Result{}, err
	}
	outDir, err := filepath.Abs(outDir)
	if err != nil {
		return Result{}, fmt.Errorf("kernelstage: output directory: %w", err)
	}

	// 1. What the kernel is and offers: release, config, modules.
	img, err := openKernel(in.Kernel)
	if err != nil {
		return Result{}, err
	}
	defer img.Close()
	res := Result{Compression: img.compression, Release: img.release}
	if res.Release == "" && !img.bzImage {
		if res.Release, err = bannerRelease(in.Kernel); err != nil {
			return Result{}, err
		}
		if res.Release == "" && in.ModulesDir == "" {
			return Result{}, errNoRelease(in.Kernel)
		}
	}
	cfg, err := kernelConfig(in)
	if err != nil {
		return Result{}, err
	}
	var tree *moduleTree
	var ordered, missing []string
	switch {
	case in.ModulesDir != "":
		if res.Release == "" {
			// A bzImage without a version string; checked against the
			// vmlinux banner once it is extracted.
			res.Release = filepath.Base(filepath.Clean(in.ModulesDir))
		}
		if tree, err = loadTree(in.ModulesDir); err != nil {
			return Result{}, err
		}
		if ordered, res.Builtin, missing, err = tree.closure(NeededModules); err != nil {
			return Result{}, err
		}
	case cfg != nil:
		missing = NeededModules
	}
	// A tree without modules.builtin (or no tree) cannot say what is built
	// in; the config can.
	for _, name := range missing {
		if cfg[configSymbol(name)] == "y" {
			res.Builtin = append(res.Builtin, name)
		} else {
			res.Absent = append(res.Absent, name)
		}
	}
	if in.ModulesDir != "" || cfg != nil {
		if err := checkEssentials(in, res, cfg); err != nil {
			return Result{}, err
		}
	}
	mods := make([]stagedModule, 0, len(ordered))
	for _, rel := range ordered {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("kernelstage: %w", err)
		}
		src := filepath.Join(in.ModulesDir, filepath.FromSlash(rel))
		data, err := readModule(src)
		if err != nil {
			return Result{}, err
		}
		vermagic, err := moduleRelease(src, data)
		if err != nil {
			return Result{}, err
		}
		mods = append(mods, stagedModule{rel: plainKO(rel), data: data, vermagic: vermagic, src: src})
		res.Modules = append(res.Modules, plainKO(rel))
	}
	if res.Release != "" {
		if err := checkVermagic(mods, res.Release); err != nil {
			return Result{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("kernelstage: %w", err)
	}

	// 2. The files.
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("kernelstage: creating output directory: %w", err)
	}
	res.Vmlinux = filepath.Join(outDir, vmlinuxName)
	err = writeAtomic(res.Vmlinux, func(w io.Writer) error {
		return img.extract(&ctxWriter{ctx: ctx, w: w})
	})
	if err != nil {
		return Result{}, fmt.Errorf("kernelstage: writing vmlinux from %s: %w", in.Kernel, err)
	}
	if img.bzImage && img.release == "" {
		banner, err := bannerRelease(res.Vmlinux)
		if err != nil {
			return Result{}, err
		}
		if banner != "" {
			res.Release = banner
		}
		if res.Release == "" {
			os.Remove(res.Vmlinux)
			return Result{}, errNoRelease(in.Kernel)
		}
		if err := checkVermagic(mods, res.Release); err != nil {
			os.Remove(res.Vmlinux)
			return Result{}, err
		}
	}
	if img.bzImage {
		res.Vmlinuz = filepath.Join(outDir, vmlinuzName)
		err := writeAtomic(res.Vmlinuz, func(w io.Writer) error {
			_, err := io.Copy(&ctxWriter{ctx: ctx, w: w}, io.NewSectionReader(img.f, 0, img.size))
			return err
		})
		if err != nil {
			return Result{}, fmt.Errorf("kernelstage: copying %s: %w", in.Kernel, err)
		}
	}
	res.Initrd = filepath.Join(outDir, initrdName)
	err = writeAtomic(res.Initrd, func(w io.Writer) error {
		return writeInitramfs(ctx, w, res.Release, in.AgentBin, mods)
	})
	if err != nil {
		return Result{}, fmt.Errorf("kernelstage: writing %s: %w", initrdName, err)
	}

	// 3. The verdict.
	available := append([]string(nil), res.Modules...)
	available = append(available, res.Builtin...)
	if tree != nil {
		available = append(available, tree.builtinPaths()...)
	}
	res.Suitability = Judge(cfg, available)
	return res, nil
}

func errNoRelease(kernel string) error {
	return fmt.Errorf("kernelstage: cannot tell the release of %s (no version string found) and no modules dir was given; pass the kernel's lib/modules/<release> directory", kernel)
}

// kernelConfig parses in.Config, or <ModulesDir>/config when in.Config is
// empty (Fedora's kernel-core ships it there); nil when there is none.
func kernelConfig(in Input) (map[string]string, error) {
	p := in.Config
	if p == "" && in.ModulesDir != "" {
		if fi, err := os.Stat(filepath.Join(in.ModulesDir, "config")); err == nil && fi.Mode().IsRegular() {
			p = filepath.Join(in.ModulesDir, "config")
		}
	}
	if p == "" {
		return nil, nil
	}
	return ParseConfig(p)
}

// stagedModule is one module file bound for the initramfs.
type stagedModule struct {
	src      string // file in the modules tree, possibly compressed
	rel      string // path below lib/modules/<release>/ in the archive, always .ko
	data     []byte // uncompressed contents
	vermagic string // the release the module was built for
}

// checkVermagic refuses modules built for another kernel release: the
// kernel would refuse to load them, and the guest would find no disk.
func checkVermagic(mods []stagedModule, release string) error {
	for _, m := range mods {
		if m.vermagic != release {
			return fmt.Errorf("kernelstage: module %s was built for kernel %s, but the kernel is %s; pass the modules tree shipped with this kernel", m.src, m.vermagic, release)
		}
	}
	return nil
}

// writeInitramfs writes the archive described in the package comment.
func writeInitramfs(ctx context.Context, out io.Writer, release, agentBin string, mods []stagedModule) error {
	w := initramfs.NewWriter(out)
	dirs := []struct {
		name string
		mode os.FileMode
	}{
		{"dev", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"run", 0o755},
		{"newroot", 0o755}, {"tmp", 0o777 | os.ModeSticky}, {"etc", 0o755}, {"etc/banger", 0o755},
	}
	for _, d := range dirs {
		if err := w.AddDir(d.name, d.mode); err != nil {
			return err
		}
	}
	if err := w.AddCharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := w.AddCharDev("dev/null", 0o666, 1, 3); err != nil {
		return err
	}

	var list strings.Builder
	fmt.Fprintf(&list, "# release %s\n", release)
	for _, m := range mods {
		list.WriteString(m.rel)
		if slices.Contains(BootOptional, moduleName(m.rel)) {
			list.WriteString(" optional")
		}
		list.WriteString("\n")
	}
	if err := w.AddFile(modulesList, 0o644, []byte(list.String())); err != nil {
		return err
	}

	base := path.Join("lib/modules", release)
	if err := w.AddDirAll(base, 0o755); err != nil {
		return err
	}
	for _, m := range mods {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := path.Join(base, m.rel)
		if err := w.AddDirAll(path.Dir(name), 0o755); err != nil {
			return err
		}
		if err := w.AddFile(name, 0o644, m.data); err != nil {
			return err
		}
	}
	if err := w.AddFileFrom("init", 0o755, agentBin); err != nil {
		return err
	}
	return w.Close()
}

// checkAgent makes sure the agent can run as /init in an initramfs that
// holds nothing else: a static x86-64 ELF executable.
func checkAgent(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("kernelstage: banger-agent %s is not a readable ELF executable (%v); pass the built banger-agent binary", p, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("kernelstage: banger-agent %s is built for %v %v, the guests are x86-64; build it with GOOS=linux GOARCH=amd64", p, f.Class, f.Machine)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("kernelstage: banger-agent %s is dynamically linked, but the initramfs has no libc or loader; build it with CGO_ENABLED=0", p)
		}
	}
	return nil
}

// writeAtomic writes a file (mode 0644) through fill under a temporary
// name, syncs it and renames it to name. On failure the temporary file is removed.
func writeAtomic(name string, fill func(io.Writer) error) error {
	tmp, err := atomicfile.Create(name, 0o644, 0)
	if err != nil {
		return err
	}
	defer tmp.Abort() // a no-op after Commit
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := fill(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return tmp.Commit()
}

// ctxWriter fails writes once ctx is done, so long copies stop on cancel.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
