package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

const outsideSecret = "OUTSIDE-SECRET-CONTENT"

// copySource builds, under base/src, the sources the copy tests pack: an
// executable file, a directory tree, a symlink to that tree and a read-only
// directory; base/outside holds what the tree's symlinks point at. Every
// entry gets a distinct old mtime so a lost mtime shows.
func copySource(t *testing.T) (src, outside string) {
	t.Helper()
	base := t.TempDir()
	removable(t, base)
	src, outside = filepath.Join(base, "src"), filepath.Join(base, "outside")
	write(t, outside, "secret.txt", outsideSecret, 0o644)
	write(t, src, "tool", "#!/bin/sh\nexit 0\n", 0o755)
	write(t, src, "tree/bin/run", "#!/bin/sh\nexit 1\n", 0o755)
	write(t, src, "tree/doc.txt", "doc\n", 0o644)
	write(t, src, "tree/secret", "key\n", 0o600)
	write(t, src, "tree/suid", "suid\n", 0o755|fs.ModeSetuid)
	write(t, src, "tree/ro/f", "read only\n", 0o444)
	symlink(t, "../doc.txt", filepath.Join(src, "tree/links/rel"))
	symlink(t, outside, filepath.Join(src, "tree/links/out"))
	symlink(t, "nowhere", filepath.Join(src, "tree/links/dangling"))
	if err := unix.Mkfifo(filepath.Join(src, "tree/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	symlink(t, "tree", filepath.Join(src, "link"))
	write(t, src, "rodir/f", "in a read-only directory\n", 0o644)
	for rel, mode := range map[string]fs.FileMode{"tree": 0o750, "tree/ro": 0o555, "rodir": 0o555} {
		if err := os.Chmod(filepath.Join(src, rel), mode); err != nil {
			t.Fatal(err)
		}
	}
	stamp := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		stamp = stamp.Add(time.Minute)
		ts := unix.NsecToTimespec(stamp.UnixNano())
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
	return src, outside
}

// entryTree describes the entry at p and everything under it, keyed "."
// for p itself and by slash-separated path below it. Fifos are left out:
// PackPath skips them.
func entryTree(t *testing.T, p string) map[string]node {
	t.Helper()
	name := filepath.Base(p)
	tree := snapshot(t, filepath.Dir(p), func(rel string) bool {
		top, _, _ := strings.Cut(rel, "/")
		return top != name || strings.HasSuffix(rel, "/fifo")
	})
	out := map[string]node{}
	for rel, n := range tree {
		if rel == name {
			out["."] = n
		} else {
			out[strings.TrimPrefix(rel, name+"/")] = n
		}
	}
	return out
}

func packPath(t *testing.T, src string) ([]byte, Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := PackPath(context.Background(), src, &buf)
	if err != nil {
		t.Fatalf("PackPath(%s): %v", src, err)
	}
	return buf.Bytes(), st
}

// hdr is the part of a tar header the PackPath tests compare.
type hdr struct {
	Name     string
	Type     byte
	Mode     int64
	Linkname string
}

func TestPackPath(t *testing.T) {
	src, outside := copySource(t)
	treeHdrs := []hdr{
		{"tree/", tar.TypeDir, 0o750, ""},
		{"tree/bin/", tar.TypeDir, 0o755, ""},
		{"tree/bin/run", tar.TypeReg, 0o755, ""},
		{"tree/doc.txt", tar.TypeReg, 0o644, ""},
		{"tree/links/", tar.TypeDir, 0o755, ""},
		{"tree/links/dangling", tar.TypeSymlink, 0o777, "nowhere"},
		{"tree/links/out", tar.TypeSymlink, 0o777, outside},
		{"tree/links/rel", tar.TypeSymlink, 0o777, "../doc.txt"},
		{"tree/ro/", tar.TypeDir, 0o555, ""},
		{"tree/ro/f", tar.TypeReg, 0o444, ""},
		{"tree/secret", tar.TypeReg, 0o600, ""},
		{"tree/suid", tar.TypeReg, 0o755, ""}, // setuid dropped
	}
	treeStats := Stats{Files: 5, Dirs: 4, Symlinks: 3, Bytes: int64(len("#!/bin/sh\nexit 1\n" + "doc\n" + "read only\n" + "key\n" + "suid\n"))}
	tests := []struct {
		name      string
		src       string
		want      []hdr
		wantStats Stats
	}{
		{"regular file", filepath.Join(src, "tool"), []hdr{{"tool", tar.TypeReg, 0o755, ""}}, Stats{Files: 1, Bytes: 17}},
		{"directory tree", filepath.Join(src, "tree"), treeHdrs, treeStats},
		{"directory with a trailing slash", filepath.Join(src, "tree") + "/", treeHdrs, treeStats},
		{"directory with a trailing /.", filepath.Join(src, "tree") + "/.", treeHdrs, treeStats},
		{"symlink to a directory is not followed", filepath.Join(src, "link"), []hdr{{"link", tar.TypeSymlink, 0o777, "tree"}}, Stats{Symlinks: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, st := packPath(t, tt.src)
			var got []hdr
			for _, h := range tarHeaders(t, stream) {
				got = append(got, hdr{h.Name, h.Typeflag, h.Mode, h.Linkname})
				if h.Uid != 0 || h.Gid != 0 {
					t.Errorf("%s owned by %d:%d in the stream, want 0:0", h.Name, h.Uid, h.Gid)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStats, st); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			if bytes.Contains(stream, []byte(outsideSecret)) {
				t.Errorf("the stream holds content read through a symlink")
			}
		})
	}
}

func TestPackPathRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	cwd := filepath.Join(dir, "cwd")
	if err := os.Mkdir(cwd, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(cwd) // so that ".." is not "/" wherever the test runs
	tests := []struct {
		name, src, wantMsg string
	}{
		{"empty", "", "no source path"},
		{"filesystem root", "/", "the filesystem root has no name"},
		{"dot", ".", "name the directory by its path instead (" + cwd + ")"},
		{"dot-dot", "..", "name the directory by its path instead (" + dir + ")"},
		{"cleans to dot", "sub/..", "name the directory by its path instead"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"fifo", filepath.Join(dir, "fifo"), "only regular files, directories and symlinks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := PackPath(context.Background(), tt.src, &buf)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("PackPath(%q) error = %v, want one mentioning %q", tt.src, err, tt.wantMsg)
			}
			if buf.Len() != 0 {
				t.Errorf("PackPath(%q) wrote %d bytes before refusing", tt.src, buf.Len())
			}
		})
	}
}

func TestPlaceRoundTrip(t *testing.T) {
	src, outside := copySource(t)
	// Each destination returns the target to pass, where the entry must
	// land, and the directory that must then hold exactly want.
	type dest struct {
		name  string
		dirOK bool // a directory entry may go there
		setup func(t *testing.T, dst, name string) (target, placed, parent string, want []string)
	}
	dests := []dest{
		{
			name: "into an existing directory", dirOK: true,
			setup: func(t *testing.T, dst, name string) (string, string, string, []string) {
				return dst, filepath.Join(dst, name), dst, []string{name}
			},
		},
		{
			name: "into a symlink to a directory", dirOK: true,
			setup: func(t *testing.T, dst, name string) (string, string, string, []string) {
				real := filepath.Join(dst, "real")
				if err := os.Mkdir(real, 0o755); err != nil {
					t.Fatal(err)
				}
				symlink(t, "real", filepath.Join(dst, "via"))
				return filepath.Join(dst, "via"), filepath.Join(dst, "via", name), real, []string{name}
			},
		},
		{
			name: "as a new path", dirOK: true,
			setup: func(t *testing.T, dst, name string) (string, string, string, []string) {
				return filepath.Join(dst, "renamed"), filepath.Join(dst, "renamed"), dst, []string{"renamed"}
			},
		},
		{
			name: "over an existing file",
			setup: func(t *testing.T, dst, name string) (string, string, string, []string) {
				write(t, dst, "existing", "old content that must go\n", 0o600)
				return filepath.Join(dst, "existing"), filepath.Join(dst, "existing"), dst, []string{"existing"}
			},
		},
		{
			name: "over a symlink, replacing it rather than writing through it",
			setup: func(t *testing.T, dst, name string) (string, string, string, []string) {
				symlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(dst, "alink"))
				return filepath.Join(dst, "alink"), filepath.Join(dst, "alink"), dst, []string{"alink"}
			},
		},
	}
	sources := []struct {
		name  string
		isDir bool
	}{
		{"tool", false},
		{"tree", true},
		{"link", false},
		{"rodir", true}, // not root: moving it needs it writable for a moment
	}
	outsideBefore := snapshot(t, outside, nil)
	for _, s := range sources {
		stream, packed := packPath(t, filepath.Join(src, s.name))
		for _, d := range dests {
			if s.isDir && !d.dirOK {
				continue // refused: see TestPlaceRefuses
			}
			t.Run(s.name+" "+d.name, func(t *testing.T) {
				dst := t.TempDir()
				removable(t, dst)
				target, wantPlaced, parent, wantNames := d.setup(t, dst, s.name)

				placed, st, err := Place(context.Background(), bytes.NewReader(stream), target, ExtractOptions{})
				if err != nil {
					t.Fatalf("Place(%s): %v", target, err)
				}
				if placed != wantPlaced {
					t.Errorf("Place placed %s, want %s", placed, wantPlaced)
				}
				if diff := cmp.Diff(packed, st); diff != "" {
					t.Errorf("Place stats differ from PackPath's (-pack +place):\n%s", diff)
				}
				if diff := cmp.Diff(entryTree(t, filepath.Join(src, s.name)), entryTree(t, filepath.Join(parent, filepath.Base(wantPlaced)))); diff != "" {
					t.Errorf("placed entry differs from the source (-src +placed):\n%s", diff)
				}
				assertNoLeftovers(t, parent, wantNames...)
				if diff := cmp.Diff(outsideBefore, snapshot(t, outside, nil)); diff != "" {
					t.Errorf("the directory outside changed (-before +after):\n%s", diff)
				}
			})
		}
	}
}

// Every refusal leaves the destination and everything around it as it was,
// with no staging directory behind.
func TestPlaceRefuses(t *testing.T) {
	src, _ := copySource(t)
	outside := filepath.Join(t.TempDir(), "outside")
	write(t, outside, "passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)
	fileStream, _ := packPath(t, filepath.Join(src, "tool"))
	treeStream, _ := packPath(t, filepath.Join(src, "tree"))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	var failedPack bytes.Buffer
	if _, err := PackPath(cancelled, filepath.Join(src, "tree"), &failedPack); !errors.Is(err, context.Canceled) {
		t.Fatalf("PackPath with a cancelled context: %v, want context.Canceled", err)
	}

	tests := []struct {
		name    string
		stream  []byte
		target  string // relative to dst
		opt     ExtractOptions
		hook    func(t *testing.T)
		wantErr error
		wantMsg string
	}{
		{
			name: "two top-level names",
			stream: buildTar(t, []tarEntry{
				{name: "a.txt", typ: tar.TypeReg, content: "a"},
				{name: "b.txt", typ: tar.TypeReg, content: "b"},
			}),
			wantErr: ErrUnsafeEntry, wantMsg: `second top-level name "b.txt"`,
		},
		{
			name: "a second name after a directory",
			stream: buildTar(t, []tarEntry{
				{name: "new/", typ: tar.TypeDir, mode: 0o755},
				{name: "new/x", typ: tar.TypeReg, content: "x"},
				{name: "other/y", typ: tar.TypeReg, content: "y"},
			}),
			wantErr: ErrUnsafeEntry, wantMsg: `"other/y"`,
		},
		{
			name: "a root entry",
			stream: buildTar(t, []tarEntry{
				{name: "./", typ: tar.TypeDir, mode: 0o755},
				{name: "a.txt", typ: tar.TypeReg, content: "a"},
			}),
			wantErr: ErrUnsafeEntry, wantMsg: "root entry",
		},
		{name: "nothing in the stream", stream: buildTar(t, nil), wantErr: ErrUnsafeEntry, wantMsg: "no file or directory"},
		{
			name:    "path escape with ..",
			stream:  buildTar(t, []tarEntry{{name: "../x", typ: tar.TypeReg, content: "x"}}),
			wantErr: ErrUnsafeEntry, wantMsg: `"../x"`,
		},
		{
			name:    "path escape inside the entry",
			stream:  buildTar(t, []tarEntry{{name: "new/", typ: tar.TypeDir}, {name: "new/../../x", typ: tar.TypeReg, content: "x"}}),
			wantErr: ErrUnsafeEntry, wantMsg: `"new/../../x"`,
		},
		{
			name:    "absolute path",
			stream:  buildTar(t, []tarEntry{{name: outside + "/abs", typ: tar.TypeReg, content: "x"}}),
			wantErr: ErrUnsafeEntry, wantMsg: "absolute path",
		},
		{
			name: "write through a symlink the stream made",
			stream: buildTar(t, []tarEntry{
				{name: "d/", typ: tar.TypeDir, mode: 0o755},
				{name: "d/link", typ: tar.TypeSymlink, linkname: outside},
				{name: "d/link/passwd", typ: tar.TypeReg, content: "pwned::0:0::/:/bin/sh\n"},
			}),
			wantErr: ErrUnsafeEntry, wantMsg: `"d/link/passwd"`,
		},
		{
			name:    "a directory onto an existing directory",
			stream:  buildTar(t, []tarEntry{{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "d/new.txt", typ: tar.TypeReg, content: "n"}}),
			wantMsg: "/d exists and is a directory: remove it first or copy to another path",
		},
		{
			name:    "a file onto an existing directory",
			stream:  buildTar(t, []tarEntry{{name: "d", typ: tar.TypeReg, content: "f"}}),
			wantMsg: "exists and is a directory: remove it first",
		},
		{
			name:    "a directory onto an existing file",
			stream:  buildTar(t, []tarEntry{{name: "keep.txt/", typ: tar.TypeDir, mode: 0o755}}),
			wantMsg: "keep.txt exists and is not a directory: remove it first",
		},
		{name: "a directory onto a file named as the target", stream: treeStream, target: "keep.txt", wantMsg: "keep.txt exists and is not a directory"},
		{name: "missing parent", stream: fileStream, target: "nope/x", wantMsg: "nope does not exist: create it first"},
		{name: "parent is a file", stream: fileStream, target: "keep.txt/x", wantMsg: "keep.txt is not a directory"},
		{name: "trailing slash on a missing directory", stream: fileStream, target: "newdir/", wantMsg: "no such directory"},
		{name: "trailing slash on a file", stream: fileStream, target: "keep.txt/", wantMsg: "it is not a directory"},
		{name: "stream cut short", stream: treeStream[:len(treeStream)-1024], wantMsg: "cut short"},
		{name: "stream of a failed PackPath", stream: failedPack.Bytes(), wantMsg: "cut short"},
		{name: "MaxBytes exceeded", stream: treeStream, opt: ExtractOptions{MaxBytes: 3}, wantErr: ErrTooLarge},
		{
			name: "rename fails", stream: fileStream, target: "keep.txt", wantErr: unix.EIO, wantMsg: "moving the copy into place",
			hook: func(t *testing.T) {
				saved := rename
				rename = func(string, string) error { return unix.EIO }
				t.Cleanup(func() { rename = saved })
			},
		},
		// The options a copy out of an untrusted guest sets.
		{
			name: "Name: the stream renames the entry", target: "", opt: ExtractOptions{Name: "out.log"},
			stream:  buildTar(t, []tarEntry{{name: "keep.txt", typ: tar.TypeReg, content: "evil"}}),
			wantErr: ErrUnsafeEntry, wantMsg: `named "keep.txt", but "out.log" was asked for`,
		},
		{
			name: "Name: not a file name", opt: ExtractOptions{Name: "../x"},
			stream: fileStream, wantMsg: `"../x" is not a file name`,
		},
		{
			name: "NoReplace: a file there", target: "keep.txt", opt: ExtractOptions{NoReplace: true},
			stream: fileStream, wantErr: ErrWouldReplace, wantMsg: "already exists",
		},
		{
			name: "NoReplace: a file there under the asked name", opt: ExtractOptions{Name: "keep.txt", NoReplace: true},
			stream:  buildTar(t, []tarEntry{{name: "keep.txt", typ: tar.TypeReg, content: "new"}}),
			wantErr: ErrWouldReplace, wantMsg: "already exists",
		},
		{
			name: "a directory there under the asked name, not ErrWouldReplace", opt: ExtractOptions{Name: "d"},
			stream:  buildTar(t, []tarEntry{{name: "d", typ: tar.TypeReg, content: "x"}}),
			wantErr: fs.ErrExist, wantMsg: "is a directory",
		},
		{
			name: "ConfineSymlinks: absolute", opt: ExtractOptions{ConfineSymlinks: true},
			stream:  buildTar(t, []tarEntry{{name: "t/", typ: tar.TypeDir}, {name: "t/l", typ: tar.TypeSymlink, linkname: "/etc/passwd"}}),
			wantErr: ErrOutsideLink, wantMsg: "absolute path",
		},
		{
			name: "ConfineSymlinks: the entry itself", opt: ExtractOptions{ConfineSymlinks: true},
			stream:  buildTar(t, []tarEntry{{name: "l", typ: tar.TypeSymlink, linkname: "x"}}),
			wantErr: ErrUnsafeEntry, wantMsg: "the entry is a symlink",
		},
		{
			name: "MaxBytes counts a block per entry", opt: ExtractOptions{MaxBytes: 10 * 512},
			stream: buildTar(t, []tarEntry{{name: "t/", typ: tar.TypeDir}, {name: "t/1", typ: tar.TypeReg}, {name: "t/2", typ: tar.TypeReg},
				{name: "t/3", typ: tar.TypeReg}, {name: "t/4", typ: tar.TypeReg}, {name: "t/5", typ: tar.TypeReg}, {name: "t/6", typ: tar.TypeReg},
				{name: "t/7", typ: tar.TypeReg}, {name: "t/8", typ: tar.TypeReg}, {name: "t/9", typ: tar.TypeReg}, {name: "t/10", typ: tar.TypeReg}}),
			wantErr: ErrTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			removable(t, base)
			dst := filepath.Join(base, "dst")
			write(t, dst, "keep.txt", "keep\n", 0o644)
			write(t, dst, "d/old.txt", "old\n", 0o644)
			before, outsideBefore := snapshot(t, base, nil), snapshot(t, outside, nil)
			if tt.hook != nil {
				tt.hook(t)
			}
			target := dst
			if tt.target != "" {
				target = filepath.Join(dst, tt.target)
				if strings.HasSuffix(tt.target, "/") {
					target += "/"
				}
			}

			placed, st, err := Place(context.Background(), bytes.NewReader(tt.stream), target, tt.opt)
			if err == nil {
				t.Fatalf("Place(%s) placed %s, want an error", target, placed)
			}
			t.Log(err)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Place error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Place error = %q, want it to mention %q", err, tt.wantMsg)
			}
			if placed != "" || st != (Stats{}) {
				t.Errorf("Place on failure = %q, %+v; want nothing placed and zero stats", placed, st)
			}
			if diff := cmp.Diff(before, snapshot(t, base, nil)); diff != "" {
				t.Errorf("the destination changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(outsideBefore, snapshot(t, outside, nil)); diff != "" {
				t.Errorf("the directory outside changed (-before +after):\n%s", diff)
			}
			assertNoLeftovers(t, dst, "d", "keep.txt")
			assertNoLeftovers(t, base, "dst")
		})
	}
}

func TestPlaceOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	src, _ := copySource(t)
	stream, _ := packPath(t, filepath.Join(src, "tree"))
	dst := t.TempDir()
	placed, _, err := Place(context.Background(), bytes.NewReader(stream), dst, ExtractOptions{UID: 1234, GID: 2345})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(placed, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1234 || st.Gid != 2345 {
			t.Errorf("%s owned by %d:%d, want 1234:2345", p, st.Uid, st.Gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
		t.Errorf("the target directory was chowned to %d:%d; only the placed entry should be", st.Uid, st.Gid)
	}
}

// Without root, moving a directory to another parent needs write permission
// on it; a read-only directory must still arrive, read-only.
func TestPlaceReadOnlyDirectoryWithoutRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory modes; this checks the non-root path")
	}
	src, _ := copySource(t)
	stream, _ := packPath(t, filepath.Join(src, "rodir"))
	dst := t.TempDir()
	removable(t, dst)
	placed, _, err := Place(context.Background(), bytes.NewReader(stream), filepath.Join(dst, "copy"), ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(placed); err != nil || fi.Mode().Perm() != 0o555 {
		t.Fatalf("placed directory: %v, %v; want mode 0555", fi, err)
	}
}

// TestPlaceUntrustedOptions: what a copy out of a guest installs with the
// options the CLI sets.
func TestPlaceUntrustedOptions(t *testing.T) {
	stream := buildTar(t, []tarEntry{
		{name: "out/", typ: tar.TypeDir, mode: 0o3777},
		{name: "out/run", typ: tar.TypeReg, content: "x", mode: 0o6777},
		{name: "out/sub/", typ: tar.TypeDir, mode: 0o777},
		{name: "out/sub/up", typ: tar.TypeSymlink, linkname: "../run"},
		{name: "out/sub/here", typ: tar.TypeSymlink, linkname: "../sub"},
		{name: "out/implied/f", typ: tar.TypeReg, content: "f", mode: 0o666},
	})
	dst := t.TempDir()
	opt := ExtractOptions{Name: "out", Umask: 0o027, NoReplace: true, ConfineSymlinks: true, MaxBytes: 1 << 20}
	placed, _, err := Place(context.Background(), bytes.NewReader(stream), dst, opt)
	if err != nil {
		t.Fatal(err)
	}
	if placed != filepath.Join(dst, "out") {
		t.Errorf("placed at %s", placed)
	}
	want := map[string]fs.FileMode{
		"out":           fs.ModeDir | 0o750,
		"out/run":       0o750,
		"out/sub":       fs.ModeDir | 0o750,
		"out/sub/up":    fs.ModeSymlink | 0o777,
		"out/sub/here":  fs.ModeSymlink | 0o777,
		"out/implied":   fs.ModeDir | 0o750,
		"out/implied/f": 0o640,
	}
	got := map[string]fs.FileMode{}
	filepath.WalkDir(placed, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := os.Lstat(p)
		rel, _ := filepath.Rel(dst, p)
		got[rel] = fi.Mode()
		return nil
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("modes (-want +got):\n%s", diff)
	}
	if _, _, err := Place(context.Background(), bytes.NewReader(stream), dst, opt); !errors.Is(err, fs.ErrExist) {
		t.Errorf("a second copy onto the directory: %v, want fs.ErrExist", err)
	}
}

func TestConfined(t *testing.T) {
	tests := []struct {
		rel, target string
		ok          bool
	}{
		{"t/l", "a", true},
		{"t/l", "sub/a", true},
		{"t/l", ".", true},
		{"t/l", "./a", true},
		{"t/x/l", "../a", true},
		{"t/x/y/l", "../../a/b", true},
		{"t/l", "..", false},
		{"t/l", "../t/a", false}, // lands inside, but through the parent of the copy
		{"t/x/l", "../../a", false},
		{"t/l", "/etc/passwd", false},
		{"t/x/l", "a/../..", false},
		{"t/x/l", "a/../b", false}, // ".." after a component: a may be a link
		{"l", "a", false},          // the entry itself
	}
	for _, tt := range tests {
		t.Run(tt.rel+"->"+tt.target, func(t *testing.T) {
			err := confined(tt.rel, tt.target)
			if (err == nil) != tt.ok {
				t.Errorf("confined(%q, %q) = %v, want ok=%v", tt.rel, tt.target, err, tt.ok)
			}
		})
	}
}
