package kernelstage

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// The .xz container (https://tukaani.org/xz/xz-file-format.txt), decoded
// here because x86 kernels are compressed with the x86 BCJ filter in front
// of LZMA2 (scripts/xz_wrap.sh: xz --x86 --lzma2=...), a filter chain
// ulikunitz/xz's reader refuses. The LZMA2 data itself is decoded by
// ulikunitz/xz/lzma. Kernel modules compressed with xz (kmod's .ko.xz) use
// plain LZMA2 and go through the same code.

const (
	xzHeaderMagic = "\xfd7zXZ\x00"
	xzFilterX86   = 0x04
	xzFilterLZMA2 = 0x21
)

// byteCounter is a buffered reader that counts what its consumers took, so
// block padding can be located after the LZMA2 decoder stops. It is an
// io.ByteReader, which keeps the LZMA2 decoder from reading ahead.
type byteCounter struct {
	r *bufio.Reader
	n int64
}

func (b *byteCounter) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *byteCounter) ReadByte() (byte, error) {
	c, err := b.r.ReadByte()
	if err == nil {
		b.n++
	}
	return c, err
}

// decodeXZ decodes the first stream of an .xz file from src to dst,
// verifying each block's header CRC32 and its integrity check. What follows
// the last block (index, footer, further streams) is not read.
func decodeXZ(src io.Reader, dst io.Writer) error {
	r := &byteCounter{r: bufio.NewReaderSize(src, 64<<10)}
	var sh [12]byte
	if _, err := io.ReadFull(r, sh[:]); err != nil {
		return fmt.Errorf("xz: reading stream header: %w", err)
	}
	if string(sh[:6]) != xzHeaderMagic {
		return errors.New("xz: not an .xz stream")
	}
	if crc32.ChecksumIEEE(sh[6:8]) != binary.LittleEndian.Uint32(sh[8:]) {
		return errors.New("xz: stream header CRC mismatch: the data is damaged")
	}
	if sh[6] != 0 || sh[7]&0xf0 != 0 {
		return errors.New("xz: unsupported stream flags (a newer .xz format?)")
	}
	checkID := sh[7] & 0x0f
	for blockNo := 0; ; blockNo++ {
		done, err := decodeXZBlock(r, dst, checkID)
		if err != nil {
			return fmt.Errorf("xz: block %d: %w", blockNo, err)
		}
		if done {
			return nil
		}
	}
}

// decodeXZBlock decodes one block, or returns done=true at the index.
func decodeXZBlock(r *byteCounter, dst io.Writer, checkID byte) (done bool, err error) {
	start := r.n
	sizeByte, err := r.ReadByte()
	if err != nil {
		return false, fmt.Errorf("reading block header: %w", unexpectedEOF(err))
	}
	if sizeByte == 0 {
		return true, nil // index indicator: no more blocks
	}
	hdr := make([]byte, (int(sizeByte)+1)*4)
	hdr[0] = sizeByte
	if _, err := io.ReadFull(r, hdr[1:]); err != nil {
		return false, fmt.Errorf("reading block header: %w", unexpectedEOF(err))
	}
	body, sum := hdr[:len(hdr)-4], hdr[len(hdr)-4:]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(sum) {
		return false, errors.New("block header CRC mismatch: the data is damaged")
	}
	flags := body[1]
	if flags&0x3c != 0 {
		return false, errors.New("reserved block flags set (a newer .xz format?)")
	}
	p := body[2:]
	compSize, uncompSize := int64(-1), int64(-1)
	if flags&0x40 != 0 {
		v, err := xzUvarint(&p)
		if err != nil {
			return false, err
		}
		compSize = int64(v)
	}
	if flags&0x80 != 0 {
		v, err := xzUvarint(&p)
		if err != nil {
			return false, err
		}
		uncompSize = int64(v)
	}
	nFilters := int(flags&0x03) + 1
	var bcj bool
	dictCap := 0
	for i := range nFilters {
		id, err := xzUvarint(&p)
		if err != nil {
			return false, err
		}
		propSize, err := xzUvarint(&p)
		if err != nil {
			return false, err
		}
		if propSize > uint64(len(p)) {
			return false, errors.New("block header filter properties overrun")
		}
		props := p[:propSize]
		p = p[propSize:]
		last := i == nFilters-1
		switch {
		case id == xzFilterX86 && !last && !bcj:
			if len(props) == 4 && binary.LittleEndian.Uint32(props) != 0 || len(props) != 0 && len(props) != 4 {
				return false, errors.New("x86 BCJ filter with a start offset is not supported")
			}
			bcj = true
		case id == xzFilterLZMA2 && last:
			if len(props) != 1 || props[0] > 40 {
				return false, errors.New("bad LZMA2 filter properties")
			}
			dictCap = lzma2DictSize(props[0])
		default:
			return false, fmt.Errorf("filter chain with filter 0x%x is not supported (banger decodes LZMA2, optionally after the x86 BCJ filter, as the kernel build writes)", id)
		}
	}
	if dictCap == 0 {
		return false, errors.New("block has no LZMA2 filter")
	}
	for _, c := range p {
		if c != 0 {
			return false, errors.New("non-zero block header padding")
		}
	}

	check, checkSize, err := newXZCheck(checkID)
	if err != nil {
		return false, err
	}
	out := &countingWriter{w: io.MultiWriter(dst, check), limit: -1}
	var sink io.Writer = out
	var filter *bcjX86
	if bcj {
		filter = &bcjX86{w: out}
		sink = filter
	}
	dictCap = max(dictCap, lzma.MinDictCap)
	if dictCap > 1<<30 {
		return false, fmt.Errorf("LZMA2 dictionary of %d bytes is larger than banger accepts (1 GiB)", dictCap)
	}
	lr, err := lzma.Reader2Config{DictCap: dictCap}.NewReader2(r)
	if err != nil {
		return false, err
	}
	if _, err := io.Copy(sink, lr); err != nil {
		return false, err
	}
	if !lr.EOS() {
		return false, errors.New("LZMA2 data ended without its end marker: the data is truncated")
	}
	if filter != nil {
		if err := filter.Flush(); err != nil {
			return false, err
		}
	}
	if got := r.n - start - int64(len(hdr)); compSize >= 0 && got != compSize {
		return false, fmt.Errorf("compressed size %d differs from the %d in the block header: the data is damaged", got, compSize)
	}
	if uncompSize >= 0 && out.n != uncompSize {
		return false, fmt.Errorf("uncompressed size %d differs from the %d in the block header: the data is damaged", out.n, uncompSize)
	}
	for (r.n-start)%4 != 0 {
		c, err := r.ReadByte()
		if err != nil {
			return false, unexpectedEOF(err)
		}
		if c != 0 {
			return false, errors.New("non-zero block padding")
		}
	}
	want := make([]byte, checkSize)
	if _, err := io.ReadFull(r, want); err != nil {
		return false, fmt.Errorf("reading block check: %w", unexpectedEOF(err))
	}
	if got := checkBytes(check, checkID); got != nil && !bytes.Equal(got, want) {
		return false, errors.New("integrity check failed: the data is damaged")
	}
	return false, nil
}

// xzUvarint reads an .xz multibyte integer (at most 9 bytes) from *p.
func xzUvarint(p *[]byte) (uint64, error) {
	v, n := binary.Uvarint(*p)
	if n <= 0 || n > 9 || (n > 1 && (*p)[n-1] == 0) {
		return 0, errors.New("bad integer in block header")
	}
	*p = (*p)[n:]
	return v, nil
}

// lzma2DictSize decodes the LZMA2 filter's dictionary size byte.
func lzma2DictSize(b byte) int {
	if b == 40 {
		return 0xffffffff
	}
	return (2 | int(b&1)) << (b/2 + 11)
}

// newXZCheck returns the hash for a check ID and the check's size.
func newXZCheck(id byte) (hash.Hash, int, error) {
	switch id {
	case 0x00:
		return nopHash{}, 0, nil
	case 0x01:
		return crc32.NewIEEE(), 4, nil
	case 0x04:
		return crc64.New(crc64.MakeTable(crc64.ECMA)), 8, nil
	case 0x0a:
		return sha256.New(), 32, nil
	}
	return nil, 0, fmt.Errorf("integrity check type 0x%x is not supported (CRC32, CRC64 and SHA-256 are)", id)
}

// checkBytes returns the check value as stored in the file.
func checkBytes(h hash.Hash, id byte) []byte {
	switch id {
	case 0x01:
		return binary.LittleEndian.AppendUint32(nil, h.(hash.Hash32).Sum32())
	case 0x04:
		return binary.LittleEndian.AppendUint64(nil, h.(hash.Hash64).Sum64())
	case 0x0a:
		return h.Sum(nil)
	}
	return nil
}

type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 1 }

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// bcjX86 undoes the x86 BCJ filter on the stream written to it and passes
// the result on. The filter stored the targets of E8/E9 (call/jmp rel32)
// instructions as absolute addresses, which compress better; decoding turns
// them back into relative ones. The state (stream position and the mask of
// recent E8/E9 bytes) carries across writes, so any split of the input
// decodes to the same bytes. Same algorithm as XZ Embedded's bcj_x86.
type bcjX86 struct {
	w        io.Writer
	buf      []byte // received, not yet filtered and passed on
	pos      uint32 // stream offset of buf[0]
	prevMask uint32
}

// bcjChunk is how much bcjX86 collects before filtering.
const bcjChunk = 64 << 10

func (b *bcjX86) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) < bcjChunk {
		return len(p), nil
	}
	n := b.filter(b.buf)
	if _, err := b.w.Write(b.buf[:n]); err != nil {
		return 0, err
	}
	b.buf = b.buf[:copy(b.buf, b.buf[n:])]
	return len(p), nil
}

// Flush filters and passes on everything left; call it at the end of the
// stream. The last bytes (too few to hold an instruction) pass unchanged.
func (b *bcjX86) Flush() error {
	b.filter(b.buf)
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// bcjMSByte tests whether b can be the top byte of a near call target.
func bcjMSByte(b byte) bool { return b == 0x00 || b == 0xff }

// filter decodes buf in place and returns how many leading bytes are final;
// the rest (at most a few bytes) must be filtered again with more data.
func (b *bcjX86) filter(buf []byte) int {
	// XZ's tables, indexed by the mask of E8/E9 bytes seen in the last
	// three positions.
	bcjMaskAllowed := [8]bool{true, true, true, false, true, false, false, false}
	bcjMaskBits := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	if len(buf) <= 4 {
		return 0
	}
	limit := len(buf) - 4
	prevPos := -1
	prevMask := b.prevMask
	i := 0
	for ; i < limit; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		if d := i - prevPos; d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				if !bcjMaskAllowed[prevMask] || bcjMSByte(buf[i+4-int(bcjMaskBits[prevMask])]) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !bcjMSByte(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - (b.pos + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := bcjMaskBits[prevMask] * 8
			if !bcjMSByte(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= -(dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
	if d := i - prevPos; d > 3 {
		b.prevMask = 0
	} else {
		b.prevMask = prevMask << (d - 1)
	}
	b.pos += uint32(i)
	return i
}
