package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// sample is one archive member as the tests describe it.
type sample struct {
	kind   string // "dir", "file", "fileFrom", "symlink", "chardev"
	name   string
	mode   fs.FileMode
	data   string // file contents, or symlink target
	major  uint32
	minor  uint32
	source string // for fileFrom: file name inside the test's temp dir
}

// sampleTree exercises every entry kind, odd name and data lengths (so every
// padding remainder occurs), nested directories and special permission bits.
func sampleTree() []sample {
	return []sample{
		{kind: "dir", name: "dev", mode: 0o755},
		{kind: "dir", name: "proc", mode: 0o555},
		{kind: "dir", name: "tmp", mode: 0o777 | fs.ModeSticky},
		{kind: "chardev", name: "dev/console", mode: 0o600, major: 5, minor: 1},
		{kind: "chardev", name: "dev/null", mode: 0o666, major: 1, minor: 3},
		{kind: "file", name: "init", mode: 0o755, data: "#!/bin/sh\necho hi\n"},
		{kind: "file", name: "empty", mode: 0o644, data: ""},
		{kind: "file", name: "a", mode: 0o640, data: "x"},
		{kind: "file", name: "ab", mode: 0o600, data: "xy"},
		{kind: "file", name: "abc", mode: 0o755 | fs.ModeSetuid, data: "xyz"},
		{kind: "dir", name: "lib", mode: 0o755},
		{kind: "dir", name: "lib/modules", mode: 0o700},
		{kind: "fileFrom", name: "lib/modules/big.ko", mode: 0o644, source: "big.ko"},
		{kind: "symlink", name: "lib/modules/link", data: "big.ko"},
		{kind: "symlink", name: "sbin", data: "/lib/modules"},
	}
}

// bigData is the content streamed by the fileFrom sample: not a multiple of 4
// and larger than any buffer on the way.
func bigData() []byte {
	b := make([]byte, 3<<20+3)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// writeSample writes samples to an archive and returns its bytes.
func writeSample(t *testing.T, samples []sample) []byte {
	t.Helper()
	srcDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(srcDir, "big.ko"), bigData(), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, s := range samples {
		var err error
		switch s.kind {
		case "dir":
			err = w.AddDir(s.name, s.mode)
		case "file":
			err = w.AddFile(s.name, s.mode, []byte(s.data))
		case "fileFrom":
			err = w.AddFileFrom(s.name, s.mode, filepath.Join(srcDir, s.source))
		case "symlink":
			err = w.AddSymlink(s.name, s.data)
		case "chardev":
			err = w.AddCharDev(s.name, s.mode, s.major, s.minor)
		default:
			t.Fatalf("unknown sample kind %q", s.kind)
		}
		if err != nil {
			t.Fatalf("adding %s %q: %v", s.kind, s.name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// wantContent returns what the extracted file of s should hold.
func (s sample) wantContent() []byte {
	if s.kind == "fileFrom" {
		return bigData()
	}
	return []byte(s.data)
}

// rawEntry is a newc header decoded by hand, independently of Reader.
type rawEntry struct {
	offset int
	fields [13]uint32
	name   string
	data   []byte
}

// parseRaw decodes archive bytes field by field and checks the layout rules
// of the newc format: magic, 8 hex digits per field, NUL-terminated names,
// zero padding to 4 bytes after the name and after the data.
func parseRaw(t *testing.T, b []byte) []rawEntry {
	t.Helper()
	var out []rawEntry
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("header at offset %d is not 4-byte aligned", off)
		}
		if len(b)-off < 110 {
			t.Fatalf("archive ends at %d inside a header (no trailer?)", len(b))
		}
		e := rawEntry{offset: off}
		if got := string(b[off : off+6]); got != "070701" {
			t.Fatalf("magic at %d = %q, want 070701", off, got)
		}
		for i := range e.fields {
			s := string(b[off+6+8*i : off+14+8*i])
			if s != strings.ToUpper(s) && s != strings.ToLower(s) {
				t.Errorf("field %d at %d mixes case: %q", i, off, s)
			}
			v, err := strconv.ParseUint(s, 16, 32)
			if err != nil || len(s) != 8 {
				t.Fatalf("field %d at %d = %q, want 8 hex digits", i, off, s)
			}
			e.fields[i] = uint32(v)
		}
		nameSize := int(e.fields[11])
		nameStart := off + 110
		nameEnd := nameStart + nameSize
		if b[nameEnd-1] != 0 {
			t.Fatalf("name at %d is not NUL-terminated", nameStart)
		}
		e.name = string(b[nameStart : nameEnd-1])
		dataStart := alignUp(nameEnd)
		checkZero(t, b[nameEnd:dataStart], "name padding of "+e.name)
		dataEnd := dataStart + int(e.fields[6])
		e.data = b[dataStart:dataEnd]
		off = alignUp(dataEnd)
		if off > len(b) {
			t.Fatalf("data padding of %q runs past the end of the archive", e.name)
		}
		checkZero(t, b[dataEnd:off], "data padding of "+e.name)
		out = append(out, e)
		if e.name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
	}
}

func alignUp(n int) int { return (n + 3) &^ 3 }

func checkZero(t *testing.T, b []byte, what string) {
	t.Helper()
	for _, c := range b {
		if c != 0 {
			t.Errorf("%s holds non-zero byte %#x", what, c)
			return
		}
	}
}

// TestHeaderFields decodes the archive by hand and checks every header field.
func TestHeaderFields(t *testing.T) {
	samples := sampleTree()
	raw := parseRaw(t, writeSample(t, samples))
	if len(raw) != len(samples)+1 {
		t.Fatalf("archive has %d entries, want %d and a trailer", len(raw), len(samples))
	}

	type fields struct {
		Name                 string
		Ino, Mode, UID, GID  uint32
		Nlink, MTime, Size   uint32
		DevMaj, DevMin       uint32
		RdevMaj, RdevMin     uint32
		NameSize, Check      uint32
		Data                 string
		DataLenIfNotIncluded int
	}
	toFields := func(e rawEntry) fields {
		f := fields{
			Name: e.name, Ino: e.fields[0], Mode: e.fields[1], UID: e.fields[2], GID: e.fields[3],
			Nlink: e.fields[4], MTime: e.fields[5], Size: e.fields[6], DevMaj: e.fields[7], DevMin: e.fields[8],
			RdevMaj: e.fields[9], RdevMin: e.fields[10], NameSize: e.fields[11], Check: e.fields[12],
		}
		if len(e.data) > 1024 {
			f.DataLenIfNotIncluded = len(e.data)
		} else {
			f.Data = string(e.data)
		}
		return f
	}
	unixType := map[string]uint32{"dir": 0o040000, "file": 0o100000, "fileFrom": 0o100000, "symlink": 0o120000, "chardev": 0o020000}

	for i, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			want := fields{
				Name:     s.name,
				Ino:      uint32(i + 1), // monotonically increasing from 1
				Nlink:    1,
				NameSize: uint32(len(s.name) + 1),
				Data:     s.data,
			}
			perm := uint32(s.mode.Perm())
			if s.mode&fs.ModeSetuid != 0 {
				perm |= 0o4000
			}
			if s.mode&fs.ModeSticky != 0 {
				perm |= 0o1000
			}
			want.Mode = unixType[s.kind] | perm
			want.Size = uint32(len(s.data))
			switch s.kind {
			case "dir":
				want.Nlink = 2
			case "symlink":
				want.Mode = 0o120777
			case "chardev":
				want.RdevMaj, want.RdevMin = s.major, s.minor
			case "fileFrom":
				want.Size = uint32(len(bigData()))
				want.Data = ""
				want.DataLenIfNotIncluded = len(bigData())
			}
			if diff := cmp.Diff(want, toFields(raw[i])); diff != "" {
				t.Errorf("header of %q (-want +got):\n%s", s.name, diff)
			}
			if s.kind == "fileFrom" && !bytes.Equal(raw[i].data, bigData()) {
				t.Errorf("streamed data of %q differs from the source file", s.name)
			}
		})
	}

	trailer := toFields(raw[len(raw)-1])
	if diff := cmp.Diff(fields{Name: "TRAILER!!!", Nlink: 1, NameSize: 11}, trailer); diff != "" {
		t.Errorf("trailer (-want +got):\n%s", diff)
	}
}

// TestExactBytes pins the encoding of a one-file archive byte for byte.
func TestExactBytes(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.AddFile("/init", 0o755, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := "070701" + "00000001" + "000081ED" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000005" + "00000000" + "00000000" + "00000000" + "00000000" + "00000005" + "00000000" +
		"init\x00" + "\x00" + // 110+5 = 115, padded to 116
		"hello" + "\x00\x00\x00" + // 116+5 = 121, padded to 124
		"070701" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "0000000B" + "00000000" +
		"TRAILER!!!\x00" + "\x00\x00\x00" // 124+110+11 = 245, padded to 248
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("archive bytes (-want +got):\n%s", diff)
	}
}

// TestReproducible checks that the same calls give the same bytes, which the
// image fingerprint relies on.
func TestReproducible(t *testing.T) {
	a := writeSample(t, sampleTree())
	b := writeSample(t, sampleTree())
	if !bytes.Equal(a, b) {
		t.Error("two archives written with the same calls differ")
	}
}

// TestReaderRoundTrip reads back what the Writer wrote.
func TestReaderRoundTrip(t *testing.T) {
	samples := sampleTree()
	r := NewReader(bytes.NewReader(writeSample(t, samples)))
	type got struct {
		Header Header
		Data   string // a string, so cmp compares megabytes with ==
	}
	var gots []got
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading %q: %v", h.Name, err)
		}
		gots = append(gots, got{*h, string(data)})
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("Next after trailer = %v, want io.EOF", err)
	}

	var wants []got
	for i, s := range samples {
		h := Header{Name: s.name, Mode: s.mode, Ino: uint32(i + 1), Nlink: 1, Size: int64(len(s.data))}
		data := []byte(s.data)
		switch s.kind {
		case "dir":
			h.Mode |= fs.ModeDir
			h.Nlink = 2
			data = []byte{}
		case "symlink":
			h.Mode = fs.ModeSymlink | 0o777
			h.Linkname = s.data
			data = []byte{}
		case "chardev":
			h.Mode |= fs.ModeDevice | fs.ModeCharDevice
			h.RdevMajor, h.RdevMinor = s.major, s.minor
			data = []byte{}
		case "fileFrom":
			data = bigData()
			h.Size = int64(len(data))
		}
		wants = append(wants, got{h, string(data)})
	}
	if diff := cmp.Diff(wants, gots); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
}

// TestReaderRejects checks that damaged archives are errors, not silently
// short listings.
func TestReaderRejects(t *testing.T) {
	good := writeSample(t, []sample{{kind: "file", name: "init", mode: 0o755, data: "hello"}})
	tests := []struct {
		name    string
		archive []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("070707"), good[6:]...)},
		{"truncated header", good[:50]},
		{"truncated data", good[:118]},
		{"no trailer", good[:124]},
		{"non-hex field", append(append([]byte{}, good[:6]...), append([]byte("0000000G"), good[14:]...)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.archive))
			var err error
			for err == nil {
				if _, err = r.Next(); err == nil {
					_, err = io.ReadAll(r)
				}
			}
			if errors.Is(err, io.EOF) {
				t.Errorf("damaged archive read to a clean end")
			}
		})
	}
}

// failingWriter fails every write after the first n bytes.
type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	srcDir := t.TempDir()
	shortFile := filepath.Join(srcDir, "short")
	if err := os.WriteFile(shortFile, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		run     func(w *Writer) error
		wantErr string // substring of the error
	}{
		{"duplicate", func(w *Writer) error {
			if err := w.AddDir("dev", 0o755); err != nil {
				return err
			}
			return w.AddFile("/dev/", 0o644, nil)
		}, `"dev" is already in the archive`},
		{"missing parent", func(w *Writer) error {
			return w.AddFile("lib/modules/x.ko", 0o644, nil)
		}, `parent directory "lib/modules" of "lib/modules/x.ko" is not in the archive; add it first`},
		{"parent is a file", func(w *Writer) error {
			if err := w.AddFile("lib", 0o644, nil); err != nil {
				return err
			}
			return w.AddFile("lib/x", 0o644, nil)
		}, `parent "lib" of "lib/x" is not a directory`},
		{"dot dot", func(w *Writer) error { return w.AddFile("../etc/passwd", 0o644, nil) }, `contains ".."`},
		{"root", func(w *Writer) error { return w.AddDir("/", 0o755) }, "names the archive root"},
		{"empty name", func(w *Writer) error { return w.AddDir("", 0o755) }, "names the archive root"},
		{"NUL in name", func(w *Writer) error { return w.AddFile("a\x00b", 0o644, nil) }, "NUL"},
		{"type mismatch", func(w *Writer) error { return w.AddFile("x", fs.ModeDir|0o755, nil) }, "type bits"},
		{"empty symlink target", func(w *Writer) error { return w.AddSymlink("x", "") }, "non-empty target"},
		{"source missing", func(w *Writer) error {
			return w.AddFileFrom("x", 0o644, filepath.Join(srcDir, "nope"))
		}, "no such file"},
		{"source is a directory", func(w *Writer) error {
			return w.AddFileFrom("x", 0o644, srcDir)
		}, "is not a regular file"},
		{"after close", func(w *Writer) error {
			if err := w.Close(); err != nil {
				return err
			}
			return w.AddDir("dev", 0o755)
		}, "already closed"},
		{"close twice", func(w *Writer) error {
			if err := w.Close(); err != nil {
				return err
			}
			return w.Close()
		}, "already closed"},
		{"AddDirAll over a file", func(w *Writer) error {
			if err := w.AddFile("lib", 0o644, nil); err != nil {
				return err
			}
			return w.AddDirAll("lib/modules", 0o755)
		}, `"lib" is already in the archive and is not a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(NewWriter(io.Discard))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestWriteErrorIsSticky checks that after a failed write every later call
// fails, so a truncated archive can never be finished by accident.
func TestWriteErrorIsSticky(t *testing.T) {
	w := NewWriter(&failingWriter{n: 200})
	if err := w.AddFile("a", 0o644, []byte("0123456789")); err != nil {
		t.Fatalf("first entry: %v", err)
	}
	err := w.AddFile("b", 0o644, bytes.Repeat([]byte("x"), 500))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("second entry: err = %v, want disk full", err)
	}
	if err2 := w.AddDir("c", 0o755); err2 != err {
		t.Errorf("AddDir after failure = %v, want the first error %v", err2, err)
	}
	if err2 := w.Close(); err2 != err {
		t.Errorf("Close after failure = %v, want the first error %v", err2, err)
	}
}

func TestAddDirAll(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, d := range []string{"lib/modules/6.1/kernel", "lib/modules/6.1/kernel/drivers", "/lib", "usr"} {
		if err := w.AddDirAll(d, 0o755); err != nil {
			t.Fatalf("AddDirAll(%q): %v", d, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var names []string
	r := NewReader(&buf)
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	want := []string{"lib", "lib/modules", "lib/modules/6.1", "lib/modules/6.1/kernel", "lib/modules/6.1/kernel/drivers", "usr"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("directories (-want +got):\n%s", diff)
	}
}

// cpioTool returns the path of the cpio binary or skips the test.
func cpioTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed, so the archive cannot be checked against the reference tool: apt-get install -y cpio")
	}
	return p
}

// TestCPIOList lists the archive with `cpio -itv` and compares names, modes,
// symlink targets and device numbers.
func TestCPIOList(t *testing.T) {
	cpio := cpioTool(t)
	samples := sampleTree()
	archive := writeSample(t, samples)

	cmd := exec.Command(cpio, "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(archive)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, stderr.String())
	}

	var got, want []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// Format like ls -l: mode nlink user group (size | major, minor) month day year name [-> target]
		f := strings.Fields(line)
		if len(f) < 9 {
			t.Fatalf("unexpected cpio -itv line %q", line)
		}
		rest := f[4:]
		size := rest[0]
		if strings.HasSuffix(size, ",") {
			size = size + rest[1]
			rest = rest[1:]
		}
		nameAndTarget := strings.Join(rest[4:], " ")
		got = append(got, fmt.Sprintf("%s %s %s %s %s %s", f[0], f[1], f[2], f[3], size, nameAndTarget))
	}
	for _, s := range samples {
		nlink := "1"
		size := strconv.Itoa(len(s.data))
		name := s.name
		var mode string
		switch s.kind {
		case "dir":
			mode = fs.FileMode(s.mode | fs.ModeDir).String()
			nlink = "2"
			size = "0"
		case "file":
			mode = s.mode.String()
		case "fileFrom":
			mode = s.mode.String()
			size = strconv.Itoa(len(bigData()))
		case "symlink":
			mode = "Lrwxrwxrwx"
			name += " -> " + s.data
		case "chardev":
			mode = (s.mode | fs.ModeDevice | fs.ModeCharDevice).String()
			size = fmt.Sprintf("%d,%d", s.major, s.minor)
		}
		want = append(want, fmt.Sprintf("%s %s root root %s %s", lsMode(mode), nlink, size, name))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cpio -itv listing (-want +got):\n%s", diff)
	}
}

// lsMode converts Go's FileMode.String() to the ls -l form cpio prints.
func lsMode(goMode string) string {
	m, err := parseGoMode(goMode)
	if err != nil {
		return goMode
	}
	typ := "-"
	switch {
	case m&fs.ModeDir != 0:
		typ = "d"
	case m&fs.ModeSymlink != 0:
		typ = "l"
	case m&fs.ModeCharDevice != 0:
		typ = "c"
	}
	perm := []byte("rwxrwxrwx")
	for i := range 9 {
		if m&(1<<(8-i)) == 0 {
			perm[i] = '-'
		}
	}
	special := func(i int, set bool, ch byte) {
		if !set {
			return
		}
		if perm[i] == 'x' {
			perm[i] = ch
		} else {
			perm[i] = ch - ('a' - 'A')
		}
	}
	special(2, m&fs.ModeSetuid != 0, 's')
	special(5, m&fs.ModeSetgid != 0, 's')
	special(8, m&fs.ModeSticky != 0, 't')
	return typ + string(perm)
}

// parseGoMode reverses fs.FileMode.String for the letters the samples use.
func parseGoMode(s string) (fs.FileMode, error) {
	if s == "Lrwxrwxrwx" {
		return fs.ModeSymlink | 0o777, nil
	}
	var m fs.FileMode
	i := 0
	for ; i < len(s)-9; i++ {
		switch s[i] {
		case 'd':
			m |= fs.ModeDir
		case 'L':
			m |= fs.ModeSymlink
		case 'D':
			m |= fs.ModeDevice
		case 'c':
			m |= fs.ModeCharDevice
		case 'u':
			m |= fs.ModeSetuid
		case 'g':
			m |= fs.ModeSetgid
		case 't':
			m |= fs.ModeSticky
		case '-':
		default:
			return 0, fmt.Errorf("unknown mode letter %q", s[i])
		}
	}
	for j, c := range s[i:] {
		if c != '-' {
			m |= 1 << (8 - j)
		}
	}
	return m, nil
}

// TestCPIOExtract unpacks the archive with `cpio -idmv` and compares what
// lands on disk: names, modes, contents, symlink targets, device numbers.
func TestCPIOExtract(t *testing.T) {
	cpio := cpioTool(t)
	samples := sampleTree()
	isRoot := os.Geteuid() == 0
	if !isRoot {
		// Creating device nodes needs root; check them in TestCPIOList only.
		var kept []sample
		for _, s := range samples {
			if s.kind != "chardev" {
				kept = append(kept, s)
			}
		}
		samples = kept
		t.Log("not root: device nodes are checked by TestCPIOList only")
	}
	archive := writeSample(t, samples)

	dir := t.TempDir()
	cmd := exec.Command(cpio, "-idmv", "--no-absolute-filenames", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(archive)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -idmv: %v\n%s", err, out)
	}
	// -v prints each name as it is extracted.
	var wantNames []string
	for _, s := range samples {
		wantNames = append(wantNames, s.name)
	}
	if diff := cmp.Diff(wantNames, strings.Fields(string(out))); diff != "" {
		t.Errorf("cpio -idmv extracted names (-want +got):\n%s", diff)
	}

	type onDisk struct {
		Mode         fs.FileMode
		Content      string // a string, so cmp compares megabytes with ==
		Target       string
		Major, Minor uint32
	}
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			p := filepath.Join(dir, s.name)
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatalf("not extracted: %v", err)
			}
			got := onDisk{Mode: fi.Mode()}
			want := onDisk{Mode: s.mode}
			switch s.kind {
			case "dir":
				want.Mode |= fs.ModeDir
			case "file", "fileFrom":
				want.Content = string(s.wantContent())
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				got.Content = string(b)
			case "symlink":
				want.Mode = fs.ModeSymlink | 0o777
				want.Target = s.data
				if got.Target, err = os.Readlink(p); err != nil {
					t.Fatal(err)
				}
			case "chardev":
				want.Mode |= fs.ModeDevice | fs.ModeCharDevice
				want.Major, want.Minor = s.major, s.minor
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil {
					t.Fatal(err)
				}
				got.Major, got.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("extracted %q (-want +got):\n%s", s.name, diff)
			}
		})
	}
}
