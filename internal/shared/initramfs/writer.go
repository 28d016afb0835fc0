// Package initramfs writes newc-format cpio archives (the Linux initramfs
// format) in Go.
//
// It owns the byte layout of the archives banger boots with: the header
// encoding, name and data padding, inode numbering and the trailer. Archives
// are reproducible: every entry is owned by root (uid 0, gid 0) and has
// modification time 0, so the same calls always produce the same bytes and the
// image fingerprint stays stable. A Reader parses the same format back, for
// tests and for checking what an archive holds.
package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// newc format constants (see the kernel's Documentation/driver-api/early-userspace/buffer-format.rst).
const (
	magicNewc   = "070701"
	headerSize  = 110 // 6-byte magic + 13 fields of 8 hex digits
	trailerName = "TRAILER!!!"

	sIFMT   = 0o170000
	sIFDIR  = 0o040000
	sIFREG  = 0o100000
	sIFLNK  = 0o120000
	sIFCHR  = 0o020000
	sIFBLK  = 0o060000
	sIFIFO  = 0o010000
	sIFSOCK = 0o140000
	sISUID  = 0o4000
	sISGID  = 0o2000
	sISVTX  = 0o1000

	maxField = 0xFFFFFFFF // largest value an 8-hex-digit field holds
)

// ErrClosed is returned by every method of a Writer after Close.
var ErrClosed = errors.New("initramfs: writer already closed")

// Writer appends entries to a newc cpio archive. It is not safe for
// concurrent use. After the first write error every later call returns that
// error: the archive is then incomplete and must be discarded.
//
// Every entry's parent directory must have been added first (AddDir or
// AddDirAll), because the kernel silently skips entries whose directory does
// not exist when it unpacks the archive; catching that here turns a guest
// that fails to boot into an error at build time. Names may not repeat.
type Writer struct {
	w       *countingWriter
	nextIno uint32
	entries map[string]bool // name -> is a directory
	err     error           // sticky write error, or ErrClosed
}

// NewWriter returns a Writer that writes an archive to w. Call Close to
// finish the archive; Close does not close w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{
		w:       &countingWriter{w: w},
		nextIno: 1,
		entries: map[string]bool{},
	}
}

// AddDir adds a directory. mode holds its permission bits (plus setuid,
// setgid and sticky); fs.ModeDir may be set, any other type bit is an error.
func (w *Writer) AddDir(name string, mode fs.FileMode) error {
	name, err := w.prepare(name, mode, fs.ModeDir)
	if err != nil {
		return err
	}
	return w.writeEntry(entry{name: name, mode: sIFDIR | unixPerm(mode), nlink: 2}, nil, 0)
}

// AddDirAll adds the directory name and every missing ancestor, all with
// mode, like os.MkdirAll. Directories already in the archive are left as
// they are; name itself may already exist if it is a directory.
func (w *Writer) AddDirAll(name string, mode fs.FileMode) error {
	if w.err != nil {
		return w.err
	}
	clean, err := cleanName(name)
	if err != nil {
		return err
	}
	parts := strings.Split(clean, "/")
	for i := range parts {
		dir := strings.Join(parts[:i+1], "/")
		isDir, exists := w.entries[dir]
		if exists {
			if !isDir {
				return fmt.Errorf("initramfs: cannot add directory %q: %q is already in the archive and is not a directory", clean, dir)
			}
			continue
		}
		if err := w.AddDir(dir, mode); err != nil {
			return err
		}
	}
	return nil
}

// AddFile adds a regular file holding data. mode holds its permission bits
// (plus setuid, setgid and sticky).
func (w *Writer) AddFile(name string, mode fs.FileMode, data []byte) error {
	name, err := w.prepare(name, mode, 0)
	if err != nil {
		return err
	}
	if uint64(len(data)) > maxField {
		return fmt.Errorf("initramfs: file %q is %d bytes, more than the 4 GiB a newc entry can hold", name, len(data))
	}
	e := entry{name: name, mode: sIFREG | unixPerm(mode), nlink: 1, size: uint32(len(data))}
	return w.writeEntry(e, bytes.NewReader(data), int64(len(data)))
}

// AddFileFrom adds a regular file whose contents are streamed from the file
// at path on disk (symbolic links are followed). mode is used as given, not
// taken from the source file. If the source changes size while it is copied
// the archive is corrupt and an error is returned.
func (w *Writer) AddFileFrom(name string, mode fs.FileMode, path string) error {
	name, err := w.prepare(name, mode, 0)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("initramfs: adding %q: %w", name, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("initramfs: adding %q: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("initramfs: adding %q: %s is not a regular file (%s)", name, path, info.Mode().Type())
	}
	if info.Size() > maxField {
		return fmt.Errorf("initramfs: adding %q: %s is %d bytes, more than the 4 GiB a newc entry can hold", name, path, info.Size())
	}
	e := entry{name: name, mode: sIFREG | unixPerm(mode), nlink: 1, size: uint32(info.Size())}
	return w.writeEntry(e, f, info.Size())
}

// AddSymlink adds a symbolic link name pointing at target. Links get mode
// 0777, as on Linux.
func (w *Writer) AddSymlink(name, target string) error {
	name, err := w.prepare(name, 0o777, fs.ModeSymlink)
	if err != nil {
		return err
	}
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("initramfs: symlink %q needs a non-empty target without NUL bytes", name)
	}
	e := entry{name: name, mode: sIFLNK | 0o777, nlink: 1, size: uint32(len(target))}
	return w.writeEntry(e, strings.NewReader(target), int64(len(target)))
}

// AddCharDev adds a character device node with the given device numbers,
// e.g. AddCharDev("dev/console", 0o600, 5, 1).
func (w *Writer) AddCharDev(name string, mode fs.FileMode, major, minor uint32) error {
	name, err := w.prepare(name, mode, fs.ModeDevice|fs.ModeCharDevice)
	if err != nil {
		return err
	}
	e := entry{name: name, mode: sIFCHR | unixPerm(mode), nlink: 1, rdevMajor: major, rdevMinor: minor}
	return w.writeEntry(e, nil, 0)
}

// Close writes the TRAILER!!! entry that ends the archive. It does not close
// the underlying writer. Calling Close twice returns ErrClosed.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	// The trailer is a zero header; the kernel and cpio only look at its name.
	if err := w.writeHeader(entry{name: trailerName, nlink: 1}, 0); err != nil {
		return err
	}
	w.err = ErrClosed
	return nil
}

// entry is the header data of one archive member.
type entry struct {
	name                 string
	mode                 uint32 // unix st_mode: type and permission bits
	nlink                uint32
	size                 uint32
	rdevMajor, rdevMinor uint32
}

// prepare checks the writer state, the name and the mode for an entry of
// the given type (wantType: 0 for a regular file, else fs.ModeDir,
// fs.ModeSymlink or fs.ModeDevice|fs.ModeCharDevice) and returns the
// canonical name.
func (w *Writer) prepare(name string, mode fs.FileMode, wantType fs.FileMode) (string, error) {
	if w.err != nil {
		return "", w.err
	}
	clean, err := cleanName(name)
	if err != nil {
		return "", err
	}
	if got := mode.Type(); got != 0 && got != wantType {
		return "", fmt.Errorf("initramfs: mode %v for %q has type bits that do not match the entry being added; pass only permission bits", mode, clean)
	}
	if mode&^(fs.ModeType|fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		return "", fmt.Errorf("initramfs: mode %v for %q has bits a cpio archive cannot store; pass permission, setuid, setgid and sticky bits only", mode, clean)
	}
	if _, dup := w.entries[clean]; dup {
		return "", fmt.Errorf("initramfs: %q is already in the archive; add each name once", clean)
	}
	if parent := path.Dir(clean); parent != "." {
		isDir, ok := w.entries[parent]
		if !ok {
			return "", fmt.Errorf("initramfs: parent directory %q of %q is not in the archive; add it first (AddDir or AddDirAll)", parent, clean)
		}
		if !isDir {
			return "", fmt.Errorf("initramfs: parent %q of %q is not a directory", parent, clean)
		}
	}
	return clean, nil
}

// cleanName turns name into the form stored in the archive: relative to the
// archive root, slash-separated, without "." or ".." elements.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("initramfs: name %q contains a NUL byte", name)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("initramfs: name %q contains \"..\"; use a path inside the archive root", name)
		}
	}
	clean := strings.TrimLeft(path.Clean("/"+name), "/")
	if clean == "" {
		return "", fmt.Errorf("initramfs: name %q names the archive root; the root always exists, add entries below it", name)
	}
	return clean, nil
}

// unixPerm converts the permission, setuid, setgid and sticky bits of an
// fs.FileMode to their st_mode values.
func unixPerm(mode fs.FileMode) uint32 {
	m := uint32(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		m |= sISUID
	}
	if mode&fs.ModeSetgid != 0 {
		m |= sISGID
	}
	if mode&fs.ModeSticky != 0 {
		m |= sISVTX
	}
	return m
}

// writeEntry writes the header of e, then size bytes from data, then the
// padding, and records the name.
func (w *Writer) writeEntry(e entry, data io.Reader, size int64) error {
	if err := w.writeHeader(e, w.nextIno); err != nil {
		return err
	}
	w.nextIno++
	if size > 0 {
		// CopyN stops at size, so a source that grows while it is copied
		// is cut at the size in the header; one that shrinks is an error.
		n, err := io.CopyN(w.w, data, size)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("source shrank to %d of %d bytes while it was copied", n, size)
			}
			return w.fail(fmt.Errorf("initramfs: writing %q: %w", e.name, err))
		}
	}
	if err := w.pad(); err != nil {
		return err
	}
	w.entries[e.name] = e.mode&sIFMT == sIFDIR
	return nil
}

// writeHeader writes the newc header and the NUL-terminated, padded name.
func (w *Writer) writeHeader(e entry, ino uint32) error {
	nameSize := len(e.name) + 1 // including the NUL
	fields := [13]uint32{
		ino,
		e.mode,
		0, // uid
		0, // gid
		e.nlink,
		0, // mtime
		e.size,
		0, // devmajor: the device holding the file, meaningless here
		0, // devminor
		e.rdevMajor,
		e.rdevMinor,
		uint32(nameSize),
		0, // check: only used by the "070702" crc format
	}
	buf := make([]byte, 0, headerSize+nameSize+3)
	buf = append(buf, magicNewc...)
	for _, f := range fields {
		buf = fmt.Appendf(buf, "%08X", f)
	}
	buf = append(buf, e.name...)
	buf = append(buf, 0)
	if _, err := w.w.Write(buf); err != nil {
		return w.fail(fmt.Errorf("initramfs: writing header of %q: %w", e.name, err))
	}
	return w.pad()
}

// pad writes NUL bytes up to the next multiple of 4.
func (w *Writer) pad() error {
	var zeros [3]byte
	if n := (4 - w.w.n%4) % 4; n > 0 {
		if _, err := w.w.Write(zeros[:n]); err != nil {
			return w.fail(fmt.Errorf("initramfs: writing padding: %w", err))
		}
	}
	return nil
}

// countingWriter counts the bytes written through it, to compute padding.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (w *Writer) fail(err error) error {
	w.err = err
	return err
}
