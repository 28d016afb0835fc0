package kernelstage

import (
	"bytes"
	"io"
	"os/exec"
	"testing"

	"github.com/ulikunitz/xz"
)

// FuzzDecodeXZ: on any bytes decodeXZ returns, and it agrees with
// ulikunitz/xz's reader (first stream only, plain LZMA2), an independent
// decoder: what that decoder decodes, decodeXZ writes out byte for byte
// (refusing, at most, what follows the last block), and what decodeXZ
// decodes without the x86 filter is what that decoder yields as far as
// it got.
func FuzzDecodeXZ(f *testing.F) {
	for _, plain := range [][]byte{nil, []byte("hello, kernel"), fakeKernelBody("6.1.0-test", 3000)} {
		for _, sum := range []byte{xz.None, xz.CRC32, xz.CRC64, xz.SHA256} {
			var b bytes.Buffer
			zw, err := xz.WriterConfig{CheckSum: sum, DictCap: 1 << 16}.NewWriter(&b)
			if err != nil {
				f.Fatal(err)
			}
			zw.Write(plain)
			zw.Close()
			f.Add(b.Bytes())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got bytes.Buffer
		err := decodeXZ(bytes.NewReader(data), &got)
		zr, rerr := xz.ReaderConfig{SingleStream: true}.NewReader(bytes.NewReader(data))
		var ref []byte
		if rerr == nil {
			ref, rerr = io.ReadAll(zr)
		}
		// The reference is lax about what follows the blocks (nothing at
		// all, a stream cut before its index, junk where the index
		// belongs: testdata junk-after-block); decodeXZ refuses those,
		// but only after writing every block the reference decoded.
		if rerr == nil && len(ref) > 0 {
			if !bytes.Equal(got.Bytes(), ref) {
				t.Fatalf("decodeXZ (err %v) yields %d bytes where the reference decodes %d: they differ", err, got.Len(), len(ref))
			}
			return
		}
		if err == nil && !usesBCJ(data) && !bytes.HasPrefix(ref, got.Bytes()) && !bytes.HasPrefix(got.Bytes(), ref) {
			t.Fatalf("decodeXZ yields %d bytes that the reference's %d (%v) contradict", got.Len(), len(ref), rerr)
		}
	})
}

// usesBCJ reports whether the first block header names the x86 filter
// (which the reference decoder does not implement).
func usesBCJ(data []byte) bool {
	return len(data) > 16 && bytes.Contains(data[12:min(len(data), 12+1024)], []byte{xzFilterX86})
}

// FuzzXZRoundTrip: what xz(1) compresses with the x86 BCJ filter in
// front of LZMA2, as the kernel build does, decodeXZ decodes back to the
// same bytes, whatever they are (the input is repeated to cross the
// filter's 64 KiB chunks when it is long enough).
func FuzzXZRoundTrip(f *testing.F) {
	if _, err := exec.LookPath("xz"); err != nil {
		f.Skip("xz is not installed (apt-get install -y xz-utils)")
	}
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("\xe8\x00\x00\x00\x00\xe9\xff\xff\xff\xff"), uint8(7))
	f.Add(fakeKernelBody("6.1.0-test", 4000), uint8(40))
	f.Add([]byte("\xe8\xe8\x00\xe8\xff\x00\xe9"), uint8(255))
	f.Fuzz(func(t *testing.T, chunk []byte, repeat uint8) {
		plain := chunk
		if len(chunk) > 0 && len(chunk)*int(repeat) <= 1<<20 {
			plain = bytes.Repeat(chunk, int(repeat)+1)
		}
		cmd := exec.Command("xz", "--format=xz", "--x86", "--lzma2=preset=0", "-c")
		cmd.Stdin = bytes.NewReader(plain)
		packed, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz: %v", err)
		}
		var got bytes.Buffer
		if err := decodeXZ(bytes.NewReader(packed), &got); err != nil {
			t.Fatalf("decodeXZ of xz --x86 output (%d plain bytes): %v", len(plain), err)
		}
		if !bytes.Equal(got.Bytes(), plain) {
			i := 0
			for i < min(got.Len(), len(plain)) && got.Bytes()[i] == plain[i] {
				i++
			}
			t.Fatalf("decodeXZ yields %d bytes for %d plain; first difference at %d", got.Len(), len(plain), i)
		}
	})
}
