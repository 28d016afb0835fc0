package kernelstage

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/bangerdev/banger/internal/host/debkernel"
)

// fakeELF returns a small x86-64 executable: an ELF header, one PT_LOAD
// covering the file (and a PT_INTERP naming interp, if not ""), then body.
func fakeELF(body []byte, interp string) []byte {
	nProg := 1
	if interp != "" {
		nProg = 2
	}
	dataOff := uint64(64 + 56*nProg)
	total := dataOff + uint64(len(body)) + uint64(len(interp)) + 1
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: 0x1000000, Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: uint16(nProg), Shentsize: 64,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, h)
	binary.Write(&b, binary.LittleEndian, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Off: 0,
		Vaddr: 0x1000000, Paddr: 0x1000000, Filesz: total, Memsz: total, Align: 0x1000,
	})
	if interp != "" {
		binary.Write(&b, binary.LittleEndian, elf.Prog64{
			Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R), Off: dataOff + uint64(len(body)),
			Filesz: uint64(len(interp)) + 1, Memsz: uint64(len(interp)) + 1, Align: 1,
		})
	}
	b.Write(body)
	b.WriteString(interp)
	b.WriteByte(0)
	return b.Bytes()
}

// fakeKernelBody returns deterministic bytes that look enough like x86
// code for the BCJ filter to change them (E8/E9 followed by 00/FF), with
// a version banner in the middle.
func fakeKernelBody(release string, size int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 0, size+128)
	for len(b) < size {
		switch r.IntN(6) {
		case 0:
			b = append(b, 0xe8, byte(r.IntN(256)), byte(r.IntN(256)), 0xff, 0xff)
		case 1:
			b = append(b, 0xe9, byte(r.IntN(256)), byte(r.IntN(256)), 0x00, 0x00)
		case 2:
			b = append(b, 0xe8, 0xe8, 0x00, 0xe8, 0xff, 0x00)
		default:
			for range 1 + r.IntN(12) {
				b = append(b, byte(r.IntN(256)))
			}
		}
		if len(b) > size/2 && len(b) < size/2+20 {
			b = append(b, "\x00Linux version "+release+" (test@example) #1 SMP\x00"...)
		}
	}
	return b
}

// fakeKO returns a relocatable x86-64 ELF whose .modinfo section holds
// fields ("depends=a,b", "vermagic=...").
func fakeKO(fields ...string) []byte {
	modinfo := []byte(strings.Join(fields, "\x00") + "\x00")
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	modinfoOff := uint64(64)
	strOff := modinfoOff + uint64(len(modinfo))
	shOff := (strOff + uint64(len(shstrtab)) + 7) &^ 7
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: 64, Shentsize: 64, Shnum: 3, Shstrndx: 2,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, h)
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, shOff-uint64(b.Len())))
	binary.Write(&b, binary.LittleEndian, elf.Section64{})
	binary.Write(&b, binary.LittleEndian, elf.Section64{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: modinfoOff, Size: uint64(len(modinfo)), Addralign: 1})
	binary.Write(&b, binary.LittleEndian, elf.Section64{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstrtab)), Addralign: 1})
	return b.Bytes()
}

// fakeBzImage wraps payload in a minimal x86 boot header (protocol 2.15)
// whose version string starts with release.
func fakeBzImage(payload []byte, release string) []byte {
	const setupSects = 4
	setup := make([]byte, (setupSects+1)*512)
	setup[offSetupSects] = setupSects
	setup[0x1fe], setup[0x1ff] = 0x55, 0xaa
	copy(setup[offHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(setup[offVersion:], 0x020f)
	copy(setup[0x400:], release+" (test@example) #1 SMP\x00")
	binary.LittleEndian.PutUint16(setup[offKernelVersion:], 0x400-0x200)
	stub := bytes.Repeat([]byte{0x90}, 100) // the decompressor's code in a real image
	binary.LittleEndian.PutUint32(setup[offPayloadOffset:], uint32(len(stub)))
	binary.LittleEndian.PutUint32(setup[offPayloadLength:], uint32(len(payload)))
	out := append(setup, stub...)
	out = append(out, payload...)
	return append(out, bytes.Repeat([]byte{0xcc}, 64)...) // trailing code/data
}

// withSize appends the decompressed size as the kernel build does.
func withSize(compressed []byte, size int) []byte {
	return binary.LittleEndian.AppendUint32(compressed, uint32(size))
}

func gzipBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func xzBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func lzmaBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := lzma.WriterConfig{EOSMarker: true}.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zstdBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(data, nil)
}

// cliCompress runs a compressor CLI over data, or returns a skip reason.
func cliCompress(t *testing.T, data []byte, name string, args ...string) ([]byte, string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		return nil, name + " is not installed (apt-get install -y " + map[string]string{"lz4": "lz4", "xz": "xz-utils", "bzip2": "bzip2", "zstd": "zstd"}[name] + ")"
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return out.Bytes(), ""
}

func writeFile(t *testing.T, p string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// debianKernel returns Debian's cloud kernel from the cache the repository's
// tests share ($TMPDIR/banger-test-kernel-cache), fetching it if needed. It
// skips under -short or when apt cannot get it.
func debianKernel(t *testing.T) debkernel.Kernel {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping tests on Debian's real cloud kernel (a 27 MB download when not cached)")
	}
	cache := filepath.Join(os.TempDir(), "banger-test-kernel-cache")
	k, err := debkernel.Fetch(context.Background(), cache, "", nil)
	if err != nil {
		t.Skipf("cannot get Debian's cloud kernel (needs apt and the Debian mirror): %v", err)
	}
	return k
}
