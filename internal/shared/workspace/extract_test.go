package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
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

// fullTree builds a tree with every kind of entry full_copy keeps, with
// distinct old mtimes so a lost mtime shows.
func fullTree(t *testing.T, root string) {
	t.Helper()
	removable(t, root)
	write(t, root, "README.md", "# readme\n", 0o644)
	write(t, root, "bin/tool", "#!/bin/sh\nexit 0\n", 0o755)
	write(t, root, "secret.key", "key\n", 0o600)
	write(t, root, "deep/a/b/c/d.txt", "deep\n", 0o644)
	write(t, root, "ünï cödé.txt", "unicode\n", 0o644)
	write(t, root, "big.bin", strings.Repeat("0123456789abcdef", 1<<16), 0o644)
	write(t, root, "hard1", "linked\n", 0o644)
	if err := os.Link(filepath.Join(root, "hard1"), filepath.Join(root, "hard2")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, root, "ro/file", "read only\n", 0o444)
	if err := os.Chmod(filepath.Join(root, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	symlink(t, "../README.md", filepath.Join(root, "links/rel"))
	symlink(t, "/etc/hostname", filepath.Join(root, "links/abs"))
	symlink(t, "nowhere", filepath.Join(root, "links/dangling"))
	symlink(t, "../bin", filepath.Join(root, "links/dir"))
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	stamp := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		stamp = stamp.Add(time.Minute)
		ts := unix.NsecToTimespec(stamp.UnixNano())
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func withoutFifo(rel string) bool { return rel == "fifo" }

func TestRoundTripFullCopy(t *testing.T) {
	src := t.TempDir()
	fullTree(t, src)
	stream, packed := pack(t, src, ModeFullCopy)
	dest := filepath.Join(t.TempDir(), "repo")
	removable(t, dest)
	extracted := extract(t, stream.Bytes(), dest)

	if diff := cmp.Diff(snapshot(t, src, withoutFifo), snapshot(t, dest, nil)); diff != "" {
		t.Errorf("extracted tree differs from the source (-src +dest):\n%s", diff)
	}
	wantStats := Stats{Files: 9, Dirs: 8, Symlinks: 4, Bytes: packed.Bytes}
	if diff := cmp.Diff(wantStats, packed); diff != "" {
		t.Errorf("Pack stats (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(packed, extracted); diff != "" {
		t.Errorf("Extract stats differ from Pack's (-pack +extract):\n%s", diff)
	}
	fi, err := os.Stat(dest)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("dest mode = %v (%v), want 0755", fi.Mode().Perm(), err)
	}
	// Hard links arrive as independent files.
	write(t, dest, "hard1", "changed\n", 0o644)
	if b, _ := os.ReadFile(filepath.Join(dest, "hard2")); string(b) != "linked\n" {
		t.Errorf("hard2 = %q after changing hard1, want the original content", b)
	}
}

func TestExtractOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	src := t.TempDir()
	write(t, src, "a/b.txt", "b\n", 0o644)
	symlink(t, "a/b.txt", filepath.Join(src, "link"))
	stream, _ := pack(t, src, ModeFullCopy)
	tests := []struct {
		name     string
		opt      ExtractOptions
		uid, gid uint32
	}{
		{"root by default", ExtractOptions{}, 0, 0},
		{"requested owner", ExtractOptions{UID: 1234, GID: 2345}, 1234, 2345},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "repo")
			if _, err := Extract(context.Background(), bytes.NewReader(stream.Bytes()), dest, tt.opt); err != nil {
				t.Fatal(err)
			}
			for _, rel := range []string{".", "a", "a/b.txt", "link"} {
				fi, err := os.Lstat(filepath.Join(dest, rel))
				if err != nil {
					t.Fatal(err)
				}
				st := fi.Sys().(*syscall.Stat_t)
				if st.Uid != tt.uid || st.Gid != tt.gid {
					t.Errorf("%s owned by %d:%d, want %d:%d", rel, st.Uid, st.Gid, tt.uid, tt.gid)
				}
			}
		})
	}
}

// assertNoLeftovers checks that dir holds exactly want: no staging or
// old-tree directories survive.
func assertNoLeftovers(t *testing.T, dir string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, dirNames(t, dir)); diff != "" {
		t.Errorf("%s holds (-want +got):\n%s", dir, diff)
	}
}

func TestExtractReplaces(t *testing.T) {
	tests := []struct {
		name        string
		noExchange  bool
		destIsALink bool
	}{
		{name: "rename exchange"},
		{name: "fallback without RENAME_EXCHANGE", noExchange: true},
		{name: "dest is a symlink", destIsALink: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.noExchange {
				saved := renameExchange
				renameExchange = func(string, string) error { return unix.EINVAL }
				t.Cleanup(func() { renameExchange = saved })
			}
			src, base := t.TempDir(), t.TempDir()
			removable(t, base)
			dest, real := filepath.Join(base, "repo"), filepath.Join(base, "repo")
			leftover := []string{"repo"}
			if tt.destIsALink {
				real = filepath.Join(base, "real")
				if err := os.Mkdir(real, 0o755); err != nil {
					t.Fatal(err)
				}
				symlink(t, "real", dest)
				leftover = []string{"real", "repo"}
			}
			fullTree(t, src)
			v1, _ := pack(t, src, ModeFullCopy)
			extract(t, v1.Bytes(), dest)
			write(t, real, "stray.txt", "made in the guest\n", 0o644)

			if err := os.Remove(filepath.Join(src, "README.md")); err != nil {
				t.Fatal(err)
			}
			write(t, src, "NEW.txt", "new\n", 0o644)
			write(t, src, "bin/tool", "#!/bin/sh\nexit 1\n", 0o700)
			v2, _ := pack(t, src, ModeFullCopy)
			extract(t, v2.Bytes(), dest)

			if diff := cmp.Diff(snapshot(t, src, withoutFifo), snapshot(t, real, nil)); diff != "" {
				t.Errorf("after re-extracting, dest differs from the source (-src +dest):\n%s", diff)
			}
			assertNoLeftovers(t, base, leftover...)
			if tt.destIsALink {
				if target, err := os.Readlink(dest); err != nil || target != "real" {
					t.Errorf("dest symlink = %q, %v; want it kept pointing at real", target, err)
				}
			}
		})
	}
}

// Every failure leaves the previous workspace exactly as it was and no
// staging directory behind.
func TestExtractFailureLeavesDestIntact(t *testing.T) {
	src := t.TempDir()
	fullTree(t, src)
	good, st := pack(t, src, ModeFullCopy)
	full := good.Bytes()
	unsafeAfterGood := buildTar(t, []tarEntry{
		{name: "a.txt", typ: tar.TypeReg, content: "a"},
		{name: "dir/", typ: tar.TypeDir, mode: 0o755},
		{name: "dir/b.txt", typ: tar.TypeReg, content: "b"},
		{name: "../escape.txt", typ: tar.TypeReg, content: "x"},
	})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		stream  []byte
		opt     ExtractOptions
		ctx     context.Context
		hook    func(t *testing.T)
		wantErr error
		wantMsg string
	}{
		{name: "truncated half way", stream: full[:len(full)/2], wantMsg: "EOF"},
		{name: "cut at an entry boundary", stream: full[:len(full)-1024], wantMsg: "cut short"},
		{name: "missing one end block", stream: full[:len(full)-512], wantMsg: "cut short"},
		{name: "empty stream", stream: nil, wantMsg: "cut short"},
		{name: "unsafe entry after good ones", stream: unsafeAfterGood, wantErr: ErrUnsafeEntry, wantMsg: `"../escape.txt"`},
		{name: "MaxBytes exceeded", stream: full, opt: ExtractOptions{MaxBytes: st.Bytes - 1}, wantErr: ErrTooLarge, wantMsg: "MaxBytes"},
		{name: "context cancelled", stream: full, ctx: cancelled, wantErr: context.Canceled},
		{
			name: "swap fails", stream: full, wantMsg: "swapping",
			hook: func(t *testing.T) {
				saved := renameExchange
				renameExchange = func(string, string) error { return unix.EIO }
				t.Cleanup(func() { renameExchange = saved })
			},
		},
		{
			name: "fallback fails after moving the old tree aside", stream: full, wantMsg: "moving the new workspace into place",
			hook: func(t *testing.T) {
				savedX, savedR := renameExchange, rename
				renameExchange = func(string, string) error { return unix.EINVAL }
				rename = func(from, to string) error {
					if strings.Contains(from, ".incoming-") {
						return unix.EIO
					}
					return os.Rename(from, to)
				}
				t.Cleanup(func() { renameExchange, rename = savedX, savedR })
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			removable(t, base)
			dest := filepath.Join(base, "repo")
			extract(t, full, dest)
			before := snapshot(t, dest, nil)
			if tt.hook != nil {
				tt.hook(t)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}

			got, err := Extract(ctx, bytes.NewReader(tt.stream), dest, tt.opt)
			if err == nil {
				t.Fatalf("Extract succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Extract error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Extract error = %q, want it to mention %q", err, tt.wantMsg)
			}
			if got != (Stats{}) {
				t.Errorf("Extract stats on failure = %+v, want zero", got)
			}
			if diff := cmp.Diff(before, snapshot(t, dest, nil)); diff != "" {
				t.Errorf("dest changed (-before +after):\n%s", diff)
			}
			assertNoLeftovers(t, base, "repo")
		})
	}
}

func TestExtractRefusesUnsafeEntries(t *testing.T) {
	tests := []struct {
		name     string
		entries  func(outside string) []tarEntry
		wantName string // the entry the error must name
	}{
		{
			name:     "absolute path",
			entries:  func(o string) []tarEntry { return []tarEntry{{name: o + "/abs.txt", typ: tar.TypeReg, content: "x"}} },
			wantName: "/abs.txt",
		},
		{
			name:     "dot-dot",
			entries:  func(string) []tarEntry { return []tarEntry{{name: "../escape.txt", typ: tar.TypeReg, content: "x"}} },
			wantName: "../escape.txt",
		},
		{
			name:     "dot-dot inside the path",
			entries:  func(string) []tarEntry { return []tarEntry{{name: "a/../../x.txt", typ: tar.TypeReg, content: "x"}} },
			wantName: "a/../../x.txt",
		},
		{
			name:     "unclean name",
			entries:  func(string) []tarEntry { return []tarEntry{{name: "a//b.txt", typ: tar.TypeReg, content: "x"}} },
			wantName: "a//b.txt",
		},
		{
			name:     "dot-slash prefix",
			entries:  func(string) []tarEntry { return []tarEntry{{name: "./a.txt", typ: tar.TypeReg, content: "x"}} },
			wantName: "./a.txt",
		},
		{
			name: "write through a symlink to ..",
			entries: func(string) []tarEntry {
				return []tarEntry{{name: "evil", typ: tar.TypeSymlink, linkname: ".."}, {name: "evil/x.txt", typ: tar.TypeReg, content: "x"}}
			},
			wantName: "evil/x.txt",
		},
		{
			name: "write through a symlink to outside",
			entries: func(o string) []tarEntry {
				return []tarEntry{{name: "evil", typ: tar.TypeSymlink, linkname: o}, {name: "evil/pwned.txt", typ: tar.TypeReg, content: "x"}}
			},
			wantName: "evil/pwned.txt",
		},
		{
			name: "directory through a symlink",
			entries: func(o string) []tarEntry {
				return []tarEntry{{name: "evil", typ: tar.TypeSymlink, linkname: o}, {name: "evil/sub/", typ: tar.TypeDir}}
			},
			wantName: "evil/sub/",
		},
		{
			name: "nested symlink",
			entries: func(string) []tarEntry {
				return []tarEntry{
					{name: "d/", typ: tar.TypeDir, mode: 0o755},
					{name: "d/l", typ: tar.TypeSymlink, linkname: "../.."},
					{name: "d/l/x.txt", typ: tar.TypeReg, content: "x"},
				}
			},
			wantName: "d/l/x.txt",
		},
		{
			name: "file over a symlink of the same name",
			entries: func(o string) []tarEntry {
				return []tarEntry{{name: "evil", typ: tar.TypeSymlink, linkname: o + "/secret.txt"}, {name: "evil", typ: tar.TypeReg, content: "x"}}
			},
			wantName: "evil",
		},
		{
			name: "file under a file",
			entries: func(string) []tarEntry {
				return []tarEntry{{name: "f", typ: tar.TypeReg, content: "x"}, {name: "f/x", typ: tar.TypeReg, content: "x"}}
			},
			wantName: "f/x",
		},
		{
			name: "hard link outside, relative",
			entries: func(string) []tarEntry {
				return []tarEntry{{name: "h", typ: tar.TypeLink, linkname: "../outside/secret.txt"}}
			},
			wantName: "h",
		},
		{
			name: "hard link outside, absolute",
			entries: func(o string) []tarEntry {
				return []tarEntry{{name: "h", typ: tar.TypeLink, linkname: o + "/secret.txt"}}
			},
			wantName: "h",
		},
		{
			name: "hard link to a symlink",
			entries: func(o string) []tarEntry {
				return []tarEntry{{name: "s", typ: tar.TypeSymlink, linkname: o + "/secret.txt"}, {name: "h", typ: tar.TypeLink, linkname: "s"}}
			},
			wantName: "h",
		},
		{
			name: "hard link through a symlink",
			entries: func(o string) []tarEntry {
				return []tarEntry{{name: "l", typ: tar.TypeSymlink, linkname: o}, {name: "h", typ: tar.TypeLink, linkname: "l/secret.txt"}}
			},
			wantName: "h",
		},
		{
			name: "hard link to a directory",
			entries: func(string) []tarEntry {
				return []tarEntry{{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "h", typ: tar.TypeLink, linkname: "d"}}
			},
			wantName: "h",
		},
		{
			name:     "character device",
			entries:  func(string) []tarEntry { return []tarEntry{{name: "dev/null", typ: tar.TypeChar}} },
			wantName: "dev/null",
		},
		{
			name:     "block device",
			entries:  func(string) []tarEntry { return []tarEntry{{name: "sda", typ: tar.TypeBlock}} },
			wantName: "sda",
		},
		{
			name:     "fifo",
			entries:  func(string) []tarEntry { return []tarEntry{{name: "pipe", typ: tar.TypeFifo}} },
			wantName: "pipe",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dest, outside := filepath.Join(base, "repo"), filepath.Join(base, "outside")
			write(t, outside, "secret.txt", "secret\n", 0o644)
			extract(t, buildTar(t, []tarEntry{{name: "keep.txt", typ: tar.TypeReg, content: "previous workspace"}}), dest)
			before, outsideBefore := snapshot(t, dest, nil), snapshot(t, outside, nil)

			// Good entries first, so the bad one comes mid-stream.
			entries := append([]tarEntry{{name: "ok.txt", typ: tar.TypeReg, content: "ok"}}, tt.entries(outside)...)
			_, err := Extract(context.Background(), bytes.NewReader(buildTar(t, entries)), dest, ExtractOptions{})
			if !errors.Is(err, ErrUnsafeEntry) {
				t.Fatalf("Extract error = %v, want ErrUnsafeEntry", err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.wantName)) && !strings.Contains(err.Error(), tt.wantName+`"`) {
				t.Errorf("Extract error %q does not name the entry %q", err, tt.wantName)
			}
			if diff := cmp.Diff(before, snapshot(t, dest, nil)); diff != "" {
				t.Errorf("dest changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(outsideBefore, snapshot(t, outside, nil)); diff != "" {
				t.Errorf("the directory outside dest changed (-before +after):\n%s", diff)
			}
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(outside, "secret.txt"), &st); err != nil || st.Nlink != 1 {
				t.Errorf("outside/secret.txt has %d links (%v), want 1", st.Nlink, err)
			}
			assertNoLeftovers(t, base, "outside", "repo")
		})
	}
}

// Symlinks are stored verbatim wherever they point, and a hard link to a
// regular file inside the stream is fine.
func TestExtractAcceptsLinksThatStayPut(t *testing.T) {
	base := t.TempDir()
	dest := filepath.Join(base, "repo")
	stream := buildTar(t, []tarEntry{
		{name: "abs", typ: tar.TypeSymlink, linkname: "/etc/passwd"},
		{name: "up", typ: tar.TypeSymlink, linkname: "../../.."},
		{name: "dir/", typ: tar.TypeDir, mode: 0o750},
		{name: "dir/file", typ: tar.TypeReg, content: "content", mode: 0o640},
		{name: "hard", typ: tar.TypeLink, linkname: "dir/file"},
		{name: "implicit/parent/file", typ: tar.TypeReg, content: "p"},
	})
	st := extract(t, stream, dest)
	if diff := cmp.Diff(Stats{Files: 3, Dirs: 3, Symlinks: 2, Bytes: 8}, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	got := snapshot(t, dest, nil)
	want := map[string]node{
		"abs":                  {Type: "symlink", Target: "/etc/passwd"},
		"up":                   {Type: "symlink", Target: "../../.."},
		"dir":                  {Type: "dir", Mode: 0o750},
		"dir/file":             {Type: "file", Mode: 0o640, Content: "content"},
		"hard":                 {Type: "file", Mode: 0o640, Content: "content"},
		"implicit":             {Type: "dir", Mode: 0o755},
		"implicit/parent":      {Type: "dir", Mode: 0o755},
		"implicit/parent/file": {Type: "file", Mode: 0o644, Content: "p"},
	}
	for k, n := range got {
		n.MTime = 0
		got[k] = n
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("extracted tree (-want +got):\n%s", diff)
	}
}

func TestExtractBadDestination(t *testing.T) {
	base := t.TempDir()
	write(t, base, "file", "x", 0o644)
	stream := buildTar(t, []tarEntry{{name: "a", typ: tar.TypeReg, content: "a"}})
	tests := []struct {
		name, dest, wantMsg string
	}{
		{"missing parent", filepath.Join(base, "missing", "repo"), "parent must exist"},
		{"dest is a file", filepath.Join(base, "file"), "not a directory"},
		{"filesystem root", "/", "refusing"},
		{"empty", "", "no destination"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Extract(context.Background(), bytes.NewReader(stream), tt.dest, ExtractOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Extract(%q) error = %v, want one mentioning %q", tt.dest, err, tt.wantMsg)
			}
		})
	}
	assertNoLeftovers(t, base, "file")
}

// archive/tar refuses to write some bad names, so the name rules are also
// checked directly.
func TestCleanName(t *testing.T) {
	tests := []struct {
		name    string
		isDir   bool
		want    string
		wantErr string
	}{
		{name: "src/main.go", want: "src/main.go"},
		{name: "src/", isDir: true, want: "src"},
		{name: ".", isDir: true, want: "."},
		{name: "./", isDir: true, want: "."},
		{name: "a.txt/", wantErr: "not clean"},
		{name: "", wantErr: "empty"},
		{name: "/", isDir: true, wantErr: "absolute"},
		{name: "/etc/passwd", wantErr: "absolute"},
		{name: "..", isDir: true, wantErr: `".."`},
		{name: "a/..", isDir: true, wantErr: `".."`},
		{name: "a/../b", wantErr: `".."`},
		{name: "a/./b", wantErr: "not clean"},
		{name: "a//b", wantErr: "not clean"},
		{name: "a/b//", isDir: true, wantErr: "not clean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cleanName(tt.name, tt.isDir)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrUnsafeEntry) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("cleanName(%q) = %q, %v; want ErrUnsafeEntry mentioning %q", tt.name, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("cleanName(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
			}
		})
	}
}
