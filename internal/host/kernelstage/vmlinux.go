package kernelstage

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	// Kernels built with CONFIG_KERNEL_ZSTD (Arch, Fedora, Ubuntu, Void) need a
	// zstd decoder; klauspost's is the maintained pure-Go one and decodes the
	// large windows (zstd -22 --ultra) the kernel build uses.
	"github.com/klauspost/compress/zstd"
	// Debian's kernels use CONFIG_KERNEL_LZ4, which writes the legacy lz4
	// frame (magic 0x184C2102, lz4 -l); pierrec/lz4 reads that format.
	"github.com/pierrec/lz4/v4"
	// CONFIG_KERNEL_LZMA payloads are raw .lzma ("alone") streams, and xz
	// payloads hold LZMA2 data; ulikunitz/xz's lzma package decodes both. Its
	// xz reader does not support the x86 BCJ filter every x86 xz kernel uses,
	// so the xz container is parsed in xz.go.
	"github.com/ulikunitz/xz/lzma"
)

// Compression names, as reported in Result.Compression.
const (
	compGzip  = "gzip"
	compXZ    = "xz"
	compZstd  = "zstd"
	compLZ4   = "lz4"
	compLZMA  = "lzma"
	compBzip2 = "bzip2"
	compNone  = "none"
)

// x86 boot protocol offsets (Documentation/arch/x86/boot.rst).
const (
	offSetupSects    = 0x1f1
	offHeaderMagic   = 0x202 // "HdrS"
	offVersion       = 0x206
	offKernelVersion = 0x20e // pointer to the version string, minus 0x200
	offPayloadOffset = 0x248 // relative to the protected-mode code
	offPayloadLength = 0x24c
	setupHeaderEnd   = 0x268
	minPayloadProto  = 0x208 // payload_offset/length exist from protocol 2.08
)

// ExtractVmlinux writes the uncompressed ELF vmlinux inside bzImage to w and
// returns the payload's compression. It reads the x86 boot protocol header
// (setup_sects at 0x1f1, payload_offset at 0x248, payload_length at 0x24c),
// tells the compression from the payload's magic, decompresses it, checks the
// size the build appended to the payload, and checks that the result is a
// 64-bit little-endian x86-64 ELF with program headers. The relocation table
// the build appends after the ELF (for the bzImage's own self-relocation) is
// dropped, so w receives exactly the ELF file. A file that already is an ELF
// vmlinux is copied after the same checks, with compression "none".
func ExtractVmlinux(bzImage string, w io.Writer) (compression string, err error) {
	img, err := openKernel(bzImage)
	if err != nil {
		return "", err
	}
	defer img.Close()
	if err := img.extract(w); err != nil {
		return "", fmt.Errorf("kernelstage: extracting vmlinux from %s: %w", bzImage, err)
	}
	return img.compression, nil
}

// kernelImage is an opened kernel file: a bzImage's payload or an ELF.
type kernelImage struct {
	f           *os.File
	size        int64
	bzImage     bool
	compression string
	data        *io.SectionReader // the compressed stream, without the size trailer
	wantSize    int64             // decompressed size the build recorded, -1 if none
	release     string            // from the boot header's version string, "" if absent
}

func (k *kernelImage) Close() error { return k.f.Close() }

// openKernel opens path and locates its payload.
func openKernel(path string) (*kernelImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernelstage: opening kernel: %w", err)
	}
	k, err := locatePayload(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return k, nil
}

func locatePayload(f *os.File, path string) (*kernelImage, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kernelstage: %w", err)
	}
	k := &kernelImage{f: f, size: fi.Size(), wantSize: -1}
	var hdr [setupHeaderEnd]byte
	n, err := f.ReadAt(hdr[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("kernelstage: reading %s: %w", path, err)
	}
	if n >= 4 && string(hdr[:4]) == elf.ELFMAG {
		k.compression = compNone
		k.data = io.NewSectionReader(f, 0, k.size)
		return k, nil
	}
	if n < setupHeaderEnd || string(hdr[offHeaderMagic:offHeaderMagic+4]) != "HdrS" {
		return nil, fmt.Errorf("kernelstage: %s is neither an x86 bzImage (no \"HdrS\" boot header at 0x202) nor an ELF vmlinux; pass the kernel image (boot/vmlinuz-<release>) or a vmlinux", path)
	}
	k.bzImage = true
	proto := binary.LittleEndian.Uint16(hdr[offVersion:])
	if proto < minPayloadProto {
		return nil, fmt.Errorf("kernelstage: %s uses boot protocol %d.%02d, older than 2.08, which does not say where the kernel payload is; extract the vmlinux with the kernel's scripts/extract-vmlinux and pass that", path, proto>>8, proto&0xff)
	}
	setupSects := int64(hdr[offSetupSects])
	if setupSects == 0 {
		setupSects = 4 // the boot protocol's rule for old images
	}
	start := (setupSects+1)*512 + int64(binary.LittleEndian.Uint32(hdr[offPayloadOffset:]))
	length := int64(binary.LittleEndian.Uint32(hdr[offPayloadLength:]))
	if length < 8 || start+length > k.size {
		return nil, fmt.Errorf("kernelstage: %s: payload (offset %d, length %d) lies outside the %d-byte file; the image is truncated or damaged, fetch it again", path, start, length, k.size)
	}
	if v := int64(binary.LittleEndian.Uint16(hdr[offKernelVersion:])); v != 0 {
		k.release = versionString(f, v+0x200)
	}

	var magic [8]byte
	if _, err := f.ReadAt(magic[:], start); err != nil {
		return nil, fmt.Errorf("kernelstage: reading payload of %s: %w", path, err)
	}
	k.compression, err = payloadCompression(magic[:])
	if err != nil {
		return nil, fmt.Errorf("kernelstage: %s: %w", path, err)
	}
	// The build appends the decompressed size (32-bit little endian) to the
	// payload; for gzip it is the member's own ISIZE trailer.
	var trailer [4]byte
	if _, err := f.ReadAt(trailer[:], start+length-4); err != nil {
		return nil, fmt.Errorf("kernelstage: reading payload of %s: %w", path, err)
	}
	switch k.compression {
	case compNone:
		k.data = io.NewSectionReader(f, start, length)
	case compGzip:
		k.data = io.NewSectionReader(f, start, length)
		k.wantSize = int64(binary.LittleEndian.Uint32(trailer[:]))
	default:
		k.data = io.NewSectionReader(f, start, length-4)
		k.wantSize = int64(binary.LittleEndian.Uint32(trailer[:]))
	}
	return k, nil
}

// payloadCompression tells a kernel payload's compression from its magic,
// the same table as the kernel's scripts/extract-vmlinux.
func payloadCompression(m []byte) (string, error) {
	switch {
	case bytes.HasPrefix(m, []byte{0x1f, 0x8b}):
		return compGzip, nil
	case bytes.HasPrefix(m, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return compXZ, nil
	case bytes.HasPrefix(m, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return compZstd, nil
	case bytes.HasPrefix(m, []byte{0x02, 0x21, 0x4c, 0x18}):
		return compLZ4, nil
	case bytes.HasPrefix(m, []byte{0x5d, 0x00, 0x00}):
		return compLZMA, nil
	case bytes.HasPrefix(m, []byte("BZh")):
		return compBzip2, nil
	case bytes.HasPrefix(m, []byte(elf.ELFMAG)):
		return compNone, nil
	case bytes.HasPrefix(m, []byte{0x89, 'L', 'Z', 'O'}):
		return "", errors.New("payload is LZO-compressed (CONFIG_KERNEL_LZO), which banger does not decompress; extract it with the kernel's scripts/extract-vmlinux and pass the vmlinux")
	}
	return "", fmt.Errorf("payload starts with % x, which is no kernel compression format banger knows (gzip, xz, zstd, lz4, lzma, bzip2, or an ELF); extract the vmlinux with the kernel's scripts/extract-vmlinux and pass that", m)
}

// versionString reads the boot header's kernel version string, e.g.
// "6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP ...", and
// returns its first word, the release.
func versionString(r io.ReaderAt, off int64) string {
	buf := make([]byte, 256)
	n, _ := r.ReadAt(buf, off)
	buf = buf[:n]
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	fields := strings.Fields(string(buf))
	if len(fields) == 0 || !plausibleRelease(fields[0]) {
		return ""
	}
	return fields[0]
}

// plausibleRelease accepts what uname -r prints: it starts with a digit
// and has no control characters or slashes.
func plausibleRelease(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c > '~' || c == '/' {
			return false
		}
	}
	return true
}

// extract decompresses the payload into w through the ELF check.
func (k *kernelImage) extract(w io.Writer) error {
	if _, err := k.data.Seek(0, io.SeekStart); err != nil {
		return err
	}
	ew := &elfWriter{w: w, end: -1}
	cw := &countingWriter{w: ew, limit: k.wantSize}
	src := bufio.NewReaderSize(k.data, 1<<20)
	if err := decompress(k.compression, src, cw); err != nil {
		if ew.err != nil {
			return ew.err // the ELF check failed first: say that, not the follow-on error
		}
		return fmt.Errorf("decompressing the %s payload: %w", k.compression, err)
	}
	if err := ew.finish(); err != nil {
		return err
	}
	if k.wantSize >= 0 && cw.n != k.wantSize {
		return fmt.Errorf("the %s payload decompressed to %d bytes, but the image records %d: the image is damaged, fetch it again", k.compression, cw.n, k.wantSize)
	}
	return nil
}

// decompress copies the decompressed form of src to dst.
func decompress(compression string, src io.Reader, dst io.Writer) error {
	switch compression {
	case compNone:
		_, err := io.Copy(dst, src)
		return err
	case compGzip:
		zr, err := gzip.NewReader(src)
		if err != nil {
			return err
		}
		zr.Multistream(false)
		if _, err := io.Copy(dst, zr); err != nil {
			return err
		}
		return zr.Close()
	case compBzip2:
		_, err := io.Copy(dst, bzip2.NewReader(src))
		return err
	case compXZ:
		return decodeXZ(src, dst)
	case compLZMA:
		// The header names the dictionary size (64 MiB for lzma -9); the
		// cap only refuses absurd headers.
		zr, err := lzma.ReaderConfig{DictCap: 1 << 30}.NewReader(src)
		if err != nil {
			return err
		}
		_, err = io.Copy(dst, zr)
		return err
	case compZstd:
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		defer zr.Close()
		_, err = io.Copy(dst, zr)
		return err
	case compLZ4:
		_, err := io.Copy(dst, lz4.NewReader(src))
		return err
	}
	return fmt.Errorf("unknown compression %q", compression)
}

// countingWriter counts bytes and refuses more than limit (if >= 0), so a
// damaged or hostile payload cannot fill the disk.
type countingWriter struct {
	w     io.Writer
	n     int64
	limit int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.limit >= 0 && c.n+int64(len(p)) > c.limit {
		return 0, fmt.Errorf("payload decompresses to more than the %d bytes the image records: the image is damaged, fetch it again", c.limit)
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// elfWriter checks that the stream written to it is an x86-64 ELF as soon
// as its headers have arrived, and passes on only the bytes up to the end
// of the ELF file (the furthest segment or section header table).
type elfWriter struct {
	w       io.Writer
	head    []byte // buffered until the headers can be parsed
	end     int64  // file end of the ELF; -1 until known, math.MaxInt64 if unknowable
	in      int64  // bytes received
	written int64
	err     error
}

// maxHeaders bounds how much is buffered before the program headers.
const maxHeaders = 1 << 20

func (e *elfWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	e.in += int64(len(p))
	if e.end < 0 {
		e.head = append(e.head, p...)
		end, ok, err := elfEnd(e.head)
		if err != nil {
			e.err = err
			return 0, err
		}
		if !ok {
			if len(e.head) > maxHeaders {
				e.err = errors.New("the decompressed kernel's ELF program headers do not end within the first MiB; it is not a Linux vmlinux")
				return 0, e.err
			}
			return len(p), nil
		}
		e.end = end
		head := e.head
		e.head = nil
		if err := e.emit(head); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if err := e.emit(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (e *elfWriter) emit(p []byte) error {
	if room := e.end - e.written; int64(len(p)) > room {
		p = p[:room]
	}
	if len(p) == 0 {
		return nil
	}
	n, err := e.w.Write(p)
	e.written += int64(n)
	if err != nil {
		e.err = err
	}
	return err
}

// finish reports an ELF that never completed.
func (e *elfWriter) finish() error {
	if e.err != nil {
		return e.err
	}
	if e.end < 0 {
		if _, _, err := elfEnd(e.head); err != nil {
			return err
		}
		return fmt.Errorf("the payload decompressed to only %d bytes, too short for an x86-64 ELF vmlinux", e.in)
	}
	if e.end != math.MaxInt64 && e.written < e.end {
		return fmt.Errorf("the decompressed vmlinux is truncated: its ELF headers describe %d bytes, the payload gave %d", e.end, e.written)
	}
	return nil
}

// elfEnd parses the ELF header and program headers at the start of b. It
// returns ok=false if b is too short to tell yet, and an error if b is not
// a 64-bit little-endian x86-64 ELF with program headers.
func elfEnd(b []byte) (end int64, ok bool, err error) {
	if len(b) < 4 {
		if !bytes.HasPrefix([]byte(elf.ELFMAG), b) {
			return 0, false, notELF(b)
		}
		return 0, false, nil
	}
	if string(b[:4]) != elf.ELFMAG {
		return 0, false, notELF(b)
	}
	if len(b) < 64 {
		return 0, false, nil
	}
	if elf.Class(b[elf.EI_CLASS]) != elf.ELFCLASS64 {
		return 0, false, fmt.Errorf("the vmlinux is a %v ELF; banger boots 64-bit x86 kernels only", elf.Class(b[elf.EI_CLASS]))
	}
	if elf.Data(b[elf.EI_DATA]) != elf.ELFDATA2LSB {
		return 0, false, errors.New("the vmlinux is a big-endian ELF; banger boots x86-64 kernels only")
	}
	var h elf.Header64
	if err := binary.Read(bytes.NewReader(b[:64]), binary.LittleEndian, &h); err != nil {
		return 0, false, err
	}
	if m := elf.Machine(h.Machine); m != elf.EM_X86_64 {
		return 0, false, fmt.Errorf("the vmlinux is an ELF for %v, not x86-64 (EM_X86_64); use an x86-64 kernel", m)
	}
	if h.Phnum == 0 || h.Phoff == 0 {
		return 0, false, errors.New("the vmlinux ELF has no program headers, so no hypervisor can load it; is it a kernel image?")
	}
	if h.Phentsize < 56 || h.Phoff > maxHeaders {
		return 0, false, fmt.Errorf("the vmlinux ELF has implausible program headers (offset %d, entry size %d); the image is damaged", h.Phoff, h.Phentsize)
	}
	phEnd := int64(h.Phoff) + int64(h.Phnum)*int64(h.Phentsize)
	if int64(len(b)) < phEnd {
		return 0, false, nil
	}
	end = phEnd
	for i := range int64(h.Phnum) {
		var p elf.Prog64
		off := int64(h.Phoff) + i*int64(h.Phentsize)
		if err := binary.Read(bytes.NewReader(b[off:off+56]), binary.LittleEndian, &p); err != nil {
			return 0, false, err
		}
		end = max(end, int64(p.Off+p.Filesz))
	}
	switch {
	case h.Shoff != 0 && h.Shnum != 0:
		end = max(end, int64(h.Shoff)+int64(h.Shnum)*int64(h.Shentsize))
	case h.Shoff != 0:
		// More than 0xff00 sections: the count lives in section 0, far
		// away at the end of the file. Keep everything.
		end = math.MaxInt64
	}
	return end, true, nil
}

func notELF(b []byte) error {
	n := min(len(b), 8)
	return fmt.Errorf("the kernel payload decompressed to data starting % x, not an ELF (\\x7fELF); this is not an x86 Linux kernel, or it is damaged", b[:n])
}

// bannerRelease finds the release in the "Linux version <release> (...)"
// banner of an ELF vmlinux, for inputs whose boot header does not carry it.
func bannerRelease(vmlinux string) (string, error) {
	f, err := os.Open(vmlinux)
	if err != nil {
		return "", fmt.Errorf("kernelstage: %w", err)
	}
	defer f.Close()
	marker := []byte("Linux version ")
	const chunk, overlap = 1 << 20, 256
	buf := make([]byte, chunk+overlap)
	keep := 0
	for {
		n, err := io.ReadFull(f, buf[keep:])
		data := buf[:keep+n]
		for off := 0; ; {
			i := bytes.Index(data[off:], marker)
			if i < 0 {
				break
			}
			rest := data[off+i+len(marker):]
			if j := bytes.IndexAny(rest, " \x00"); j > 0 && plausibleRelease(string(rest[:j])) {
				return string(rest[:j]), nil
			}
			off += i + 1
		}
		if err != nil {
			break
		}
		keep = copy(buf, data[len(data)-overlap:])
	}
	return "", nil
}
