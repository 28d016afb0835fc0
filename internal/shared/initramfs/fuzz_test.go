package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"testing"
)

// member is one entry as read: its header and its data.
type member struct {
	h    Header
	data []byte
}

// readAll reads an archive to its trailer or its first error.
func readAll(b []byte) ([]member, error) {
	r := NewReader(bytes.NewReader(b))
	var out []member
	for {
		h, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return out, err
		}
		out = append(out, member{*h, data})
	}
}

// rewrite writes the members again with a Writer, as far as it accepts
// them, and returns the archive and what each written member should read
// back as.
func rewrite(t *testing.T, ms []member) ([]byte, []member) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	var want []member
	special := fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	for _, m := range ms {
		h := m.h
		var err error
		exp := member{h: Header{Mode: h.Mode & special}}
		switch h.Mode.Type() {
		case fs.ModeDir:
			err = w.AddDir(h.Name, h.Mode&special)
			exp.h.Mode |= fs.ModeDir
		case 0:
			err = w.AddFile(h.Name, h.Mode&special, m.data)
			exp.h.Size, exp.data = int64(len(m.data)), m.data
		case fs.ModeSymlink:
			err = w.AddSymlink(h.Name, h.Linkname)
			exp.h.Mode = fs.ModeSymlink | 0o777
			exp.h.Size, exp.h.Linkname, exp.data = int64(len(h.Linkname)), h.Linkname, []byte(h.Linkname)
		case fs.ModeDevice | fs.ModeCharDevice:
			err = w.AddCharDev(h.Name, h.Mode&special, h.RdevMajor, h.RdevMinor)
			exp.h.Mode |= fs.ModeDevice | fs.ModeCharDevice
			exp.h.RdevMajor, exp.h.RdevMinor = h.RdevMajor, h.RdevMinor
		default:
			err = fs.ErrInvalid
		}
		if err != nil {
			break // the writer refuses it (or a later write would need it)
		}
		exp.h.Name, _ = cleanName(h.Name)
		want = append(want, exp)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("closing the rewritten archive: %v", err)
	}
	return buf.Bytes(), want
}

// FuzzReader: whatever the bytes, Reader returns entries then io.EOF or
// an error, allocating in proportion to the input (a header's sizes are
// not trusted); and what the Writer accepts of what was read writes an
// archive that reads back to the same names, types, modes, device
// numbers, link targets and data.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.AddDir("dev", 0o755)
	w.AddCharDev("dev/console", 0o600, 5, 1)
	w.AddFile("init", 0o755|fs.ModeSetuid, []byte("#!/bin/sh\necho hi\n"))
	w.AddDir("lib", 0o700|fs.ModeSticky)
	w.AddSymlink("lib/link", "../init")
	w.AddFile("lib/abc", 0o644, []byte("xyz"))
	w.Close()
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:200])
	// A symlink whose target size is 0xffffffff, a file of a huge size,
	// 070702 (with a checksum), a name that is not NUL-terminated.
	f.Add(rawHeader("070701", 0o120777, 0xffffffff, "a\x00"))
	f.Add(rawHeader("070701", 0o100644, 0xfffffff0, "a\x00"))
	f.Add(append(rawHeader("070702", 0o100644, 3, "ab\x00"), "xyz\x00"...))
	f.Add(rawHeader("070701", 0o040755, 0, "ab"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ms, err := readAll(data)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(16*len(data))+4<<20 {
			t.Fatalf("reading %d bytes allocated %d bytes", len(data), alloc)
		}
		for _, m := range ms {
			if m.h.Mode.Type() != fs.ModeSymlink && int64(len(m.data)) != m.h.Size {
				t.Fatalf("entry %q: read %d bytes of its %d", m.h.Name, len(m.data), m.h.Size)
			}
			if m.h.Mode.Type() == fs.ModeSymlink && int64(len(m.h.Linkname)) != m.h.Size {
				t.Fatalf("symlink %q: target of %d bytes, size %d", m.h.Name, len(m.h.Linkname), m.h.Size)
			}
		}
		_ = err
		again, want := rewrite(t, ms)
		got, err := readAll(again)
		if err != nil {
			t.Fatalf("the rewritten archive does not read: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("the rewritten archive holds %d entries; %d were written", len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.h.Mode.Type() == fs.ModeSymlink {
				g.data = []byte(g.h.Linkname)
			}
			if g.h.Name != w.h.Name || g.h.Mode != w.h.Mode || g.h.Size != w.h.Size || g.h.Linkname != w.h.Linkname ||
				g.h.RdevMajor != w.h.RdevMajor || g.h.RdevMinor != w.h.RdevMinor || !bytes.Equal(g.data, w.data) {
				t.Fatalf("entry %d reads back as %+v (%q); want %+v (%q)", i, g.h, g.data, w.h, w.data)
			}
		}
	})
}

// rawHeader is a newc header for one entry with the given mode, data
// size and name (NUL included when wanted), padded to 4 bytes.
func rawHeader(magic string, mode, size uint32, name string) []byte {
	b := []byte(magic)
	for _, v := range []uint32{1, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, uint32(len(name)), 0} {
		b = fmt.Appendf(b, "%08x", v)
	}
	b = append(b, name...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
