package daemontest

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// FakeKernelRelease is the release of the kernel a fake daemon's images
// are staged from.
const FakeKernelRelease = "6.1.0-fake"

// The fake kernel set is what banger's kernel staging (package
// kernelstage, through the daemon's real KernelStager) accepts, made of
// the smallest real files: a bzImage whose gzip payload is an x86-64 ELF
// vmlinux with a version banner, and a lib/modules/<release> tree with a
// config, modules.builtin and modules.dep, in which everything banger's
// guests need is built in except overlay, a module (a relocatable ELF
// whose .modinfo names the release). From it the catalog stages the
// image's vmlinux, vmlinuz and initramfs, and image heal can restage that
// initramfs, which is what makes an image a shared base (image.Catalog.
// Repair). Nothing here is ever booted: the fake hypervisor only checks
// that the boot files exist.

// fakeKernelConfig is the kernel config of the fake modules tree: what
// kernelstage.Judge needs to say both hypervisors can boot it.
var fakeKernelConfig = []string{
	"CONFIG_PCI=y", "CONFIG_ACPI=y",
	"CONFIG_VIRTIO=y", "CONFIG_VIRTIO_PCI=y", "CONFIG_VIRTIO_MMIO=y", "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y",
	"CONFIG_VIRTIO_BLK=y", "CONFIG_VIRTIO_NET=y", "CONFIG_VIRTIO_CONSOLE=y",
	"CONFIG_VSOCKETS=y", "CONFIG_VIRTIO_VSOCKETS=y", "CONFIG_VIRTIO_VSOCKETS_COMMON=y",
	"CONFIG_SERIAL_8250=y", "CONFIG_SERIAL_8250_CONSOLE=y",
	"CONFIG_EXT4_FS=y", "CONFIG_CRYPTO_CRC32C=y",
	"CONFIG_OVERLAY_FS=m",
}

// fakeBuiltin is the fake tree's modules.builtin.
var fakeBuiltin = []string{
	"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/virtio/virtio_mmio.ko",
	"kernel/drivers/block/virtio_blk.ko", "kernel/drivers/net/virtio_net.ko",
	"kernel/drivers/char/virtio_console.ko",
	"kernel/net/vmw_vsock/vsock.ko", "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
	"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
	"kernel/fs/ext4/ext4.ko", "kernel/crypto/crc32c_generic.ko",
}

// fakeOverlayModule is the fake tree's one module file.
const fakeOverlayModule = "kernel/fs/overlayfs/overlay.ko"

// canStageKernels reports whether this host can make the fake kernel set
// usable: the stand-in agent is an x86-64 program (kernelstage makes it
// the initramfs /init, and the catalog runs it for its version).
func canStageKernels() bool { return runtime.GOARCH == "amd64" && runtime.GOOS == "linux" }

// writeFakeKernel writes the fake bzImage to path.
func writeFakeKernel(path string) error {
	banner := "Linux version " + FakeKernelRelease + " (fake@daemontest) #1 SMP\x00"
	vmlinux := staticELF(exitCode, []byte(banner))
	var payload bytes.Buffer
	zw := gzip.NewWriter(&payload)
	if _, err := zw.Write(vmlinux); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, bzImage(payload.Bytes(), FakeKernelRelease), 0o644)
}

// writeFakeModules writes the fake lib/modules/<release> tree into dir.
func writeFakeModules(dir string) error {
	ko := relocatableKO("name=overlay", "depends=", "vermagic="+FakeKernelRelease+" SMP preempt mod_unload modversions")
	files := map[string][]byte{
		"config":          []byte(strings.Join(fakeKernelConfig, "\n") + "\n"),
		"modules.builtin": []byte(strings.Join(fakeBuiltin, "\n") + "\n"),
		"modules.dep":     []byte(fakeOverlayModule + ":\n"),
		fakeOverlayModule: ko,
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeFakeAgent writes the stand-in banger-agent to path: a static
// x86-64 program that prints version as `banger-agent version --json`
// does, whatever its arguments, and exits 0. The catalog runs it for the
// version it records in images; kernelstage makes it the initramfs /init.
func writeFakeAgent(path, version string) error {
	msg := []byte(`{"version":"` + version + `","build_id":"` + version + `"}` + "\n")
	return os.WriteFile(path, staticELF(writeAndExit(len(msg)), msg), 0o755)
}

// exitCode is x86-64 code for exit(0).
var exitCode = []byte{
	0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
	0x31, 0xff, // xor edi, edi
	0x0f, 0x05, // syscall
}

// writeAndExit is x86-64 code for write(1, data, n) then exit(0), where
// data is what staticELF places right after the code.
func writeAndExit(n int) []byte {
	code := []byte{
		0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (write)
		0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1 (stdout)
		0x48, 0x8d, 0x35, 0, 0, 0, 0, // lea rsi, [rip + data]
		0xba, 0, 0, 0, 0, // mov edx, n
		0x0f, 0x05, // syscall
	}
	code = append(code, exitCode...)
	binary.LittleEndian.PutUint32(code[13:], uint32(len(code)-17)) // from the end of the lea to data
	binary.LittleEndian.PutUint32(code[18:], uint32(n))
	return code
}

// staticELF returns a static x86-64 executable: the ELF header, one
// PT_LOAD segment mapping the whole file, code (the entry point), then
// data.
func staticELF(code, data []byte) []byte {
	const base, hdrs = 0x400000, 64 + 56
	total := uint64(hdrs + len(code) + len(data))
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: base + hdrs, Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1, Shentsize: 64,
	}
	elfIdent(&h)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, h)
	binary.Write(&b, binary.LittleEndian, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
		Vaddr: base, Paddr: base, Filesz: total, Memsz: total, Align: 0x1000,
	})
	b.Write(code)
	b.Write(data)
	return b.Bytes()
}

// relocatableKO returns a kernel module as modinfo reads one: a
// relocatable x86-64 ELF with a .modinfo section of fields.
func relocatableKO(fields ...string) []byte {
	modinfo := []byte(strings.Join(fields, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	modinfoOff := uint64(64)
	strOff := modinfoOff + uint64(len(modinfo))
	shOff := (strOff + uint64(len(shstrtab)) + 7) &^ 7
	h := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: 64, Shentsize: 64, Shnum: 3, Shstrndx: 2,
	}
	elfIdent(&h)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, h)
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, shOff-uint64(b.Len())))
	binary.Write(&b, binary.LittleEndian, elf.Section64{})
	binary.Write(&b, binary.LittleEndian, elf.Section64{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC),
		Off: modinfoOff, Size: uint64(len(modinfo)), Addralign: 1})
	binary.Write(&b, binary.LittleEndian, elf.Section64{Name: 10, Type: uint32(elf.SHT_STRTAB),
		Off: strOff, Size: uint64(len(shstrtab)), Addralign: 1})
	return b.Bytes()
}

func elfIdent(h *elf.Header64) {
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
}

// bzImage wraps a compressed vmlinux in the x86 boot protocol's header
// (2.15: setup_sects, "HdrS", the version string naming release, and the
// payload's offset and length), as a distro's vmlinuz carries it.
func bzImage(payload []byte, release string) []byte {
	const setupSects = 4
	setup := make([]byte, (setupSects+1)*512)
	setup[0x1f1] = setupSects
	setup[0x1fe], setup[0x1ff] = 0x55, 0xaa
	copy(setup[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(setup[0x206:], 0x020f)
	copy(setup[0x400:], release+" (fake@daemontest) #1 SMP\x00")
	binary.LittleEndian.PutUint16(setup[0x20e:], 0x400-0x200) // kernel_version, minus 0x200
	decompressor := bytes.Repeat([]byte{0x90}, 64)            // where a real image's decompressor is
	binary.LittleEndian.PutUint32(setup[0x248:], uint32(len(decompressor)))
	binary.LittleEndian.PutUint32(setup[0x24c:], uint32(len(payload)))
	out := append(setup, decompressor...)
	return append(out, payload...)
}
