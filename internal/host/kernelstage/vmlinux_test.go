package kernelstage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const fixtureRelease = "9.9.9-fixture"

// TestExtractVmlinuxCompressions builds a fake bzImage for each supported
// compression, the way the kernel build packs its payload, and checks that
// exactly the ELF comes out (the appended relocation table dropped).
func TestExtractVmlinuxCompressions(t *testing.T) {
	vmlinux := fakeELF(fakeKernelBody(fixtureRelease, 300<<10), "")
	relocs := bytes.Repeat([]byte("RELOC"), 1000) // vmlinux.relocs, appended before compression
	stream := append(append([]byte(nil), vmlinux...), relocs...)

	tests := []struct {
		name string
		want string // compression
		// payload returns the bzImage payload, or a reason to skip.
		payload func(t *testing.T) ([]byte, string)
	}{
		{"gzip", compGzip, func(t *testing.T) ([]byte, string) {
			return gzipBytes(t, stream), "" // gzip's own ISIZE is the size trailer
		}},
		{"xz (LZMA2 only)", compXZ, func(t *testing.T) ([]byte, string) {
			return withSize(xzBytes(t, stream), len(stream)), ""
		}},
		{"xz with the x86 BCJ filter, as scripts/xz_wrap.sh", compXZ, func(t *testing.T) ([]byte, string) {
			out, skip := cliCompress(t, stream, "xz", "--format=xz", "--check=crc32", "--x86", "--lzma2=preset=6,dict=1MiB", "-c")
			return withSize(out, len(stream)), skip
		}},
		{"xz with BCJ, SHA-256 check and several blocks", compXZ, func(t *testing.T) ([]byte, string) {
			out, skip := cliCompress(t, stream, "xz", "--format=xz", "--check=sha256", "--x86", "--lzma2=preset=1", "--block-size=100000", "-c")
			return withSize(out, len(stream)), skip
		}},
		{"zstd", compZstd, func(t *testing.T) ([]byte, string) {
			return withSize(zstdBytes(t, stream), len(stream)), ""
		}},
		{"zstd -22 --ultra CLI, as the kernel build", compZstd, func(t *testing.T) ([]byte, string) {
			out, skip := cliCompress(t, stream, "zstd", "-22", "--ultra", "-q", "-c")
			return withSize(out, len(stream)), skip
		}},
		{"lz4 legacy frame (lz4 -l)", compLZ4, func(t *testing.T) ([]byte, string) {
			out, skip := cliCompress(t, stream, "lz4", "-l", "-9", "-c")
			return withSize(out, len(stream)), skip
		}},
		{"lzma", compLZMA, func(t *testing.T) ([]byte, string) {
			return withSize(lzmaBytes(t, stream), len(stream)), ""
		}},
		{"bzip2", compBzip2, func(t *testing.T) ([]byte, string) {
			out, skip := cliCompress(t, stream, "bzip2", "-9", "-c")
			return withSize(out, len(stream)), skip
		}},
		{"uncompressed", compNone, func(t *testing.T) ([]byte, string) {
			return stream, ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, skip := tt.payload(t)
			if skip != "" {
				t.Skip(skip)
			}
			p := writeFile(t, filepath.Join(t.TempDir(), "vmlinuz"), fakeBzImage(payload, fixtureRelease))
			var out bytes.Buffer
			comp, err := ExtractVmlinux(p, &out)
			if err != nil {
				t.Fatalf("ExtractVmlinux: %v", err)
			}
			if comp != tt.want {
				t.Errorf("compression = %q, want %q", comp, tt.want)
			}
			if !bytes.Equal(out.Bytes(), vmlinux) {
				t.Errorf("extracted %d bytes, want the %d-byte ELF (first difference at %d)", out.Len(), len(vmlinux), firstDiff(out.Bytes(), vmlinux))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestExtractVmlinuxELFInput(t *testing.T) {
	vmlinux := fakeELF(fakeKernelBody(fixtureRelease, 4096), "")
	p := writeFile(t, filepath.Join(t.TempDir(), "vmlinux"), vmlinux)
	var out bytes.Buffer
	comp, err := ExtractVmlinux(p, &out)
	if err != nil {
		t.Fatal(err)
	}
	if comp != compNone || !bytes.Equal(out.Bytes(), vmlinux) {
		t.Errorf("got compression %q and %d bytes, want \"none\" and the %d input bytes", comp, out.Len(), len(vmlinux))
	}
	rel, err := bannerRelease(p)
	if err != nil || rel != fixtureRelease {
		t.Errorf("bannerRelease = %q, %v; want %q", rel, err, fixtureRelease)
	}
}

// TestExtractVmlinuxErrors checks that bad input fails with a message that
// says what is wrong.
func TestExtractVmlinuxErrors(t *testing.T) {
	vmlinux := fakeELF([]byte("kernel"), "")
	arm := append([]byte(nil), vmlinux...)
	binary.LittleEndian.PutUint16(arm[18:], uint16(elf.EM_AARCH64))
	tests := []struct {
		name    string
		file    []byte
		wantErr string
	}{
		{"not a kernel", []byte(strings.Repeat("hello world\n", 100)), "neither an x86 bzImage"},
		{"LZO payload", fakeBzImage([]byte("\x89LZO\x00\r\n\x1a\nxxxxxxxx"), fixtureRelease), "LZO"},
		{"unknown payload", fakeBzImage([]byte("garbage garbage garbage"), fixtureRelease), "no kernel compression format"},
		{"payload is not an ELF", fakeBzImage(gzipBytes(t, []byte(strings.Repeat("text ", 100))), fixtureRelease), "not an ELF"},
		{"ELF for another machine", fakeBzImage(gzipBytes(t, arm), fixtureRelease), "not x86-64"},
		{"wrong size trailer", fakeBzImage(withSize(zstdBytes(t, vmlinux), len(vmlinux)+1), fixtureRelease), "records"},
		{"payload too long", fakeBzImage(withSize(zstdBytes(t, vmlinux), len(vmlinux)-1), fixtureRelease), "more than"},
		{"damaged xz", fakeBzImage(withSize(corrupt(xzBytes(t, vmlinux), 40), len(vmlinux)), fixtureRelease), "xz"},
		{"truncated ELF", fakeBzImage(withSize(zstdBytes(t, vmlinux[:80]), 80), fixtureRelease), "truncated"},
		{"payload outside the file", truncatePayload(fakeBzImage(gzipBytes(t, vmlinux), fixtureRelease)), "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(t.TempDir(), "vmlinuz"), tt.file)
			_, err := ExtractVmlinux(p, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ExtractVmlinux error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func corrupt(b []byte, at int) []byte {
	b = append([]byte(nil), b...)
	b[at] ^= 0x55
	return b
}

// truncatePayload makes the header claim a payload longer than the file.
func truncatePayload(img []byte) []byte {
	binary.LittleEndian.PutUint32(img[offPayloadLength:], uint32(len(img)))
	return img
}

// TestBCJSplitIndependence feeds the same bytes to the x86 BCJ decoder in
// differently sized writes: the output must not depend on the split.
func TestBCJSplitIndependence(t *testing.T) {
	in := fakeKernelBody(fixtureRelease, 200<<10)
	decode := func(step int) []byte {
		var out bytes.Buffer
		b := &bcjX86{w: &out}
		for off := 0; off < len(in); off += step {
			if _, err := b.Write(in[off:min(off+step, len(in))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Flush(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	want := decode(len(in))
	if bytes.Equal(want, in) {
		t.Fatal("the BCJ decoder changed nothing; the test input has no call instructions to convert")
	}
	for _, step := range []int{1, 3, 4096, bcjChunk - 1, bcjChunk + 5} {
		if got := decode(step); !bytes.Equal(got, want) {
			t.Errorf("writes of %d bytes: output differs from one write at byte %d", step, firstDiff(got, want))
		}
	}
}

// TestDebianExtractVmlinux extracts the real Debian cloud kernel.
func TestDebianExtractVmlinux(t *testing.T) {
	k := debianKernel(t)
	out := filepath.Join(t.TempDir(), "vmlinux")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	comp, err := ExtractVmlinux(k.Vmlinuz, f)
	took := time.Since(start)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("ExtractVmlinux(%s): %v", k.Vmlinuz, err)
	}
	checkVmlinux(t, out, k.Vmlinuz)
	t.Logf("%s: %s payload, extracted in %v", k.Release, comp, took)

	// Recompress the real vmlinux as an xz kernel (x86 BCJ + LZMA2, as
	// scripts/xz_wrap.sh) and check the BCJ decoder restores it exactly.
	vmlinux, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	packed, skip := cliCompress(t, vmlinux, "xz", "--format=xz", "--check=crc32", "--x86", "--lzma2=preset=0", "-T1", "-c")
	if skip != "" {
		t.Skip(skip)
	}
	img := writeFile(t, filepath.Join(t.TempDir(), "vmlinuz-xz"), fakeBzImage(withSize(packed, len(vmlinux)), k.Release))
	var got bytes.Buffer
	start = time.Now()
	if comp, err := ExtractVmlinux(img, &got); err != nil || comp != compXZ {
		t.Fatalf("ExtractVmlinux of the xz repack = %q, %v", comp, err)
	}
	t.Logf("xz+BCJ repack (%d bytes) extracted in %v", len(packed), time.Since(start))
	if !bytes.Equal(got.Bytes(), vmlinux) {
		t.Errorf("xz+BCJ repack of the real vmlinux decoded to different bytes (first difference at %d of %d)", firstDiff(got.Bytes(), vmlinux), len(vmlinux))
	}
}

// checkVmlinux checks an extracted vmlinux: an x86-64 ELF with loadable
// segments, an entry point inside one of them, larger than the bzImage.
func checkVmlinux(t *testing.T, vmlinux, bzImage string) {
	t.Helper()
	f, err := elf.Open(vmlinux)
	if err != nil {
		t.Fatalf("extracted vmlinux is not an ELF: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		t.Errorf("vmlinux is %v %v, want ELFCLASS64 EM_X86_64", f.Class, f.Machine)
	}
	entryInLoad := false
	loads := 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		loads++
		if (f.Entry >= p.Paddr && f.Entry < p.Paddr+p.Memsz) || (f.Entry >= p.Vaddr && f.Entry < p.Vaddr+p.Memsz) {
			entryInLoad = true
		}
	}
	if loads == 0 {
		t.Error("vmlinux has no PT_LOAD program headers")
	}
	if !entryInLoad {
		t.Errorf("entry point %#x lies in no PT_LOAD segment", f.Entry)
	}
	vi, err := os.Stat(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	bi, err := os.Stat(bzImage)
	if err != nil {
		t.Fatal(err)
	}
	if vi.Size() <= bi.Size() {
		t.Errorf("vmlinux is %d bytes, not larger than the %d-byte bzImage", vi.Size(), bi.Size())
	}
	t.Logf("vmlinux: entry %#x, %d PT_LOAD segments, %d bytes (bzImage %d)", f.Entry, loads, vi.Size(), bi.Size())
}

func TestPayloadCompression(t *testing.T) {
	tests := []struct {
		magic []byte
		want  string
	}{
		{[]byte{0x1f, 0x8b, 0x08, 0}, compGzip},
		{[]byte("\xfd7zXZ\x00\x00\x01"), compXZ},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, compZstd},
		{[]byte{0x02, 0x21, 0x4c, 0x18}, compLZ4},
		{[]byte{0x5d, 0, 0, 0x80}, compLZMA},
		{[]byte("BZh9"), compBzip2},
		{[]byte("\x7fELF"), compNone},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got, err := payloadCompression(tt.magic)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
