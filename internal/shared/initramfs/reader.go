package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
)

// maxLinkname is the longest symlink target Reader accepts: PATH_MAX.
const maxLinkname = 4096

// Header describes one archive member as stored in its newc header.
type Header struct {
	Name      string      // relative to the archive root, e.g. "dev/console"
	Mode      fs.FileMode // type and permission bits
	Ino       uint32
	UID, GID  uint32
	Nlink     uint32
	ModTime   uint32 // seconds since the Unix epoch
	Size      int64  // data bytes; for a symlink, the length of Linkname
	DevMajor  uint32 // device holding the file (not meaningful in initramfs)
	DevMinor  uint32
	RdevMajor uint32 // device number of a device node
	RdevMinor uint32
	Linkname  string // target of a symlink
}

// Reader reads a newc ("070701", or "070702" without checking the sum) cpio
// archive entry by entry, like archive/tar.Reader. It stops at the first
// TRAILER!!! entry.
type Reader struct {
	r      *bufio.Reader
	off    int64 // bytes consumed, to skip padding
	remain int64 // data bytes of the current entry not read yet
	pad    int64 // padding after the current entry's data
	err    error // sticky
}

// NewReader returns a Reader that reads an archive from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReader(r)}
}

// Next skips to the next entry and returns its header. It returns io.EOF
// after the trailer.
func (r *Reader) Next() (*Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	if err := r.skip(r.remain + r.pad); err != nil {
		return nil, r.fail(fmt.Errorf("initramfs: skipping entry data: %w", unexpected(err)))
	}
	r.remain, r.pad = 0, 0

	var raw [headerSize]byte
	if err := r.readFull(raw[:]); err != nil {
		return nil, r.fail(fmt.Errorf("initramfs: reading header at offset %d: %w", r.off, unexpected(err)))
	}
	magic := string(raw[:6])
	if magic != magicNewc && magic != "070702" {
		return nil, r.fail(fmt.Errorf("initramfs: bad magic %q at offset %d: not a newc cpio archive", magic, r.off-headerSize))
	}
	var fields [13]uint32
	for i := range fields {
		s := string(raw[6+8*i : 6+8*(i+1)])
		v, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			return nil, r.fail(fmt.Errorf("initramfs: header field %d %q at offset %d is not hexadecimal", i, s, r.off-headerSize))
		}
		fields[i] = uint32(v)
	}
	nameSize := int64(fields[11])
	if nameSize == 0 || nameSize > 1<<16 {
		return nil, r.fail(fmt.Errorf("initramfs: implausible name size %d at offset %d", nameSize, r.off-headerSize))
	}
	name := make([]byte, nameSize)
	if err := r.readFull(name); err != nil {
		return nil, r.fail(fmt.Errorf("initramfs: reading name: %w", unexpected(err)))
	}
	if name[nameSize-1] != 0 {
		return nil, r.fail(fmt.Errorf("initramfs: name %q is not NUL-terminated", name))
	}
	if err := r.skip(padding(r.off)); err != nil {
		return nil, r.fail(fmt.Errorf("initramfs: reading name padding: %w", unexpected(err)))
	}
	h := &Header{
		Name:      string(name[:nameSize-1]),
		Mode:      goMode(fields[1]),
		Ino:       fields[0],
		UID:       fields[2],
		GID:       fields[3],
		Nlink:     fields[4],
		ModTime:   fields[5],
		Size:      int64(fields[6]),
		DevMajor:  fields[7],
		DevMinor:  fields[8],
		RdevMajor: fields[9],
		RdevMinor: fields[10],
	}
	if h.Name == trailerName {
		r.err = io.EOF
		return nil, io.EOF
	}
	r.remain = h.Size
	r.pad = padding(r.off + h.Size)
	if h.Mode&fs.ModeSymlink != 0 {
		// The size is the archive's word: bound it before allocating, as
		// the kernel's unpacker does (a target longer than PATH_MAX is
		// skipped there).
		if h.Size > maxLinkname {
			return nil, r.fail(fmt.Errorf("initramfs: symlink %q has a target of %d bytes, over %d: not a valid archive", h.Name, h.Size, maxLinkname))
		}
		target := make([]byte, h.Size)
		if _, err := io.ReadFull(r, target); err != nil {
			return nil, r.fail(fmt.Errorf("initramfs: reading target of symlink %q: %w", h.Name, unexpected(err)))
		}
		h.Linkname = string(target)
	}
	return h, nil
}

// Read reads the data of the current entry. It returns io.EOF at its end.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil && r.err != io.EOF {
		return 0, r.err
	}
	if r.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.r.Read(p)
	r.off += int64(n)
	r.remain -= int64(n)
	if err == io.EOF && r.remain > 0 {
		return n, r.fail(fmt.Errorf("initramfs: entry data: %w", io.ErrUnexpectedEOF))
	}
	if err != nil && err != io.EOF {
		return n, r.fail(err)
	}
	return n, nil
}

func (r *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(r.r, p)
	r.off += int64(n)
	return err
}

func (r *Reader) skip(n int64) error {
	if n == 0 {
		return nil
	}
	m, err := r.r.Discard(int(n))
	r.off += int64(m)
	return err
}

func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

// padding returns how many bytes follow offset off up to a multiple of 4.
func padding(off int64) int64 {
	return (4 - off%4) % 4
}

// unexpected turns a bare io.EOF inside an entry into io.ErrUnexpectedEOF: an
// archive must end with its trailer.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// goMode converts a unix st_mode to an fs.FileMode.
func goMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & sIFMT {
	case sIFDIR:
		mode |= fs.ModeDir
	case sIFLNK:
		mode |= fs.ModeSymlink
	case sIFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case sIFBLK:
		mode |= fs.ModeDevice
	case sIFIFO:
		mode |= fs.ModeNamedPipe
	case sIFSOCK:
		mode |= fs.ModeSocket
	}
	if m&sISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&sISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&sISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
