package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// streamModel is what a tar stream says each path should be, read with
// archive/tar alone: "dir", "file" with its content, or "symlink" with its
// target. A hard link is the file it links to.
type streamModel map[string]node

// modelOf reads the stream; ok is false when archive/tar cannot read it
// to its end or it names a path twice (Extract refuses both).
func modelOf(data []byte) (m streamModel, ok bool) {
	m = streamModel{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return m, true
		}
		if err != nil {
			return m, false
		}
		name := path.Clean(hdr.Name)
		var n node
		switch hdr.Typeflag {
		case tar.TypeDir:
			n.Type = "dir"
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				return m, false
			}
			n.Type, n.Content = "file", string(b)
		case tar.TypeSymlink:
			n.Type, n.Target = "symlink", hdr.Linkname
		case tar.TypeLink:
			n = m[path.Clean(hdr.Linkname)]
		default:
			continue
		}
		if old, dup := m[name]; dup && !(old.Type == "dir" && n.Type == "dir") {
			return m, false
		}
		m[name] = n
	}
}

// checkTree compares the tree at root with the stream's model (names
// under prefix): every entry on disk is one the stream named, of the
// same type and content, or a directory above one; every entry the
// stream named is on disk. No entry carries setuid, setgid or sticky
// bits, none is a device, fifo or socket, and no permission bit of umask
// is set.
func checkTree(t *testing.T, root, prefix string, m streamModel, umask fs.FileMode) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = path.Join(prefix, filepath.ToSlash(rel))
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		mode := fi.Mode()
		if mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			t.Fatalf("%s was installed with mode %v", rel, mode)
		}
		if mode.Type() != fs.ModeSymlink && mode.Perm()&umask != 0 {
			t.Fatalf("%s was installed with mode %v, against the umask %v", rel, mode, umask)
		}
		want, named := m[rel]
		switch {
		case mode.IsDir():
			if named && want.Type != "dir" {
				t.Fatalf("%s is a directory; the stream made it a %s", rel, want.Type)
			}
			if !named && rel != "." && rel != prefix && !aboveSome(m, rel) {
				t.Fatalf("directory %s was never named by the stream", rel)
			}
		case mode.IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !named || want.Type != "file" || want.Content != string(b) {
				t.Fatalf("file %s holds %d bytes; the stream says %+v", rel, len(b), want)
			}
		case mode.Type() == fs.ModeSymlink:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if !named || want.Type != "symlink" || want.Target != target {
				t.Fatalf("symlink %s -> %q; the stream says %+v", rel, target, want)
			}
		default:
			t.Fatalf("%s was installed as %v", rel, mode)
		}
		seen[rel] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range m {
		if !seen[name] && name != "." {
			t.Fatalf("the stream's %s (%s) is not in the tree", name, m[name].Type)
		}
	}
}

// aboveSome reports whether dir is an ancestor of a path in m.
func aboveSome(m streamModel, dir string) bool {
	for name := range m {
		if strings.HasPrefix(name, dir+"/") {
			return true
		}
	}
	return false
}

// fuzzLayout is a temporary directory holding dest (with one old file),
// a sibling directory outside with a secret, and a file beside dest.
type fuzzLayout struct {
	root, dest string
}

func newFuzzLayout(t *testing.T) fuzzLayout {
	root := t.TempDir()
	l := fuzzLayout{root: root, dest: filepath.Join(root, "parent", "dest")}
	for _, d := range []string{l.dest, filepath.Join(root, "outside")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, s := range map[string]string{
		filepath.Join(l.dest, "old"):             "old",
		filepath.Join(root, "outside", "secret"): "secret",
		filepath.Join(root, "parent", "beside"):  "beside",
	} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// treeOf is snapshot without directory mtimes: a staging directory made
// and removed beside dest changes its parent's, and nothing else a
// directory's mtime could show escapes the comparison of its entries.
func treeOf(tb testing.TB, root string, skip func(rel string) bool) map[string]node {
	tree := snapshot(tb, root, skip)
	for rel, n := range tree {
		if n.Type == "dir" {
			n.MTime = 0
			tree[rel] = n
		}
	}
	return tree
}

// fuzzStreams are seed tar streams: a plain tree, and each kind of
// escape Extract and Place must refuse.
func fuzzStreams(tb testing.TB, top string) [][]byte {
	j := func(s string) string { return path.Join(top, s) }
	return [][]byte{
		buildTar(tb, []tarEntry{
			{name: top + "/", typ: tar.TypeDir, mode: 0o755},
			{name: j("a"), typ: tar.TypeReg, content: "hello", mode: 0o4755},
			{name: j("d/"), typ: tar.TypeDir, mode: 0o1777},
			{name: j("d/b"), typ: tar.TypeReg, content: "b", mode: 0o666},
			{name: j("l"), typ: tar.TypeSymlink, linkname: "a"},
			{name: j("h"), typ: tar.TypeLink, linkname: j("a")},
		}),
		buildTar(tb, []tarEntry{{name: "../outside/secret", typ: tar.TypeReg, content: "pwned"}}),
		buildTar(tb, []tarEntry{{name: "/tmp/abs", typ: tar.TypeReg, content: "pwned"}}),
		buildTar(tb, []tarEntry{
			{name: j("esc"), typ: tar.TypeSymlink, linkname: "../../outside"},
			{name: j("esc/secret"), typ: tar.TypeReg, content: "pwned"},
		}),
		buildTar(tb, []tarEntry{
			{name: j("esc"), typ: tar.TypeSymlink, linkname: "/"},
			{name: j("h"), typ: tar.TypeLink, linkname: "../outside/secret"},
		}),
		buildTar(tb, []tarEntry{
			{name: j("a"), typ: tar.TypeReg, content: "1"},
			{name: j("a"), typ: tar.TypeReg, content: "2"},
			{name: j("dev"), typ: tar.TypeChar},
			{name: j("fifo"), typ: tar.TypeFifo},
		}),
		buildTar(tb, []tarEntry{{name: j("big"), typ: tar.TypeReg, content: strings.Repeat("x", 2<<10)}})[:1536],
	}
}

// FuzzExtract: whatever the stream, Extract changes nothing outside dest
// and leaves no staging directory; when it fails dest is as it was, and
// when it succeeds dest is exactly the stream's tree (per archive/tar),
// without setuid, setgid or sticky bits or special files.
func FuzzExtract(f *testing.F) {
	for _, s := range fuzzStreams(f, "w") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := newFuzzLayout(t)
		notDest := func(rel string) bool { return rel == "parent/dest" }
		outside := treeOf(t, l.root, notDest)
		before := treeOf(t, l.dest, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := Extract(ctx, bytes.NewReader(data), l.dest, ExtractOptions{MaxBytes: 1 << 20})
		if diff := cmp.Diff(outside, treeOf(t, l.root, notDest)); diff != "" {
			t.Fatalf("Extract (err %v) changed what is outside dest (-before +after):\n%s", err, diff)
		}
		if err != nil {
			if diff := cmp.Diff(before, treeOf(t, l.dest, nil)); diff != "" {
				t.Fatalf("a failed Extract (%v) changed dest (-before +after):\n%s", err, diff)
			}
			if st != (Stats{}) {
				t.Fatalf("a failed Extract (%v) returned stats %+v", err, st)
			}
			return
		}
		m, ok := modelOf(data)
		if !ok {
			t.Fatalf("Extract accepted a stream archive/tar cannot read whole or that repeats a name")
		}
		checkTree(t, l.dest, ".", m, 0)
	})
}

// FuzzPlace: `vm cp VM:/x DIR` with the rules the CLI applies to a
// guest's stream (the name asked for, the umask, a size cap, confined
// symlinks, replacing only with --force): nothing outside DIR/x changes
// and no staging directory is left; a failure leaves DIR as it was
// (force: the previous x too); a success installs exactly the stream's
// tree as DIR/x, masked by the umask, with no setuid, setgid or sticky
// bits, no special files, and symlinks that stay inside x.
func FuzzPlace(f *testing.F) {
	for _, s := range fuzzStreams(f, "x") {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Add(buildTar(f, []tarEntry{{name: "y", typ: tar.TypeReg, content: "other name"}}), false)
	f.Fuzz(func(t *testing.T, data []byte, force bool) {
		l := newFuzzLayout(t)
		dir := l.dest
		final := filepath.Join(dir, "x")
		if force {
			if err := os.WriteFile(final, []byte("previous"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		isFinal := func(rel string) bool { return rel == "parent/dest/x" }
		outside := treeOf(t, l.root, isFinal)
		before := treeOf(t, l.root, nil)
		const umask = 0o027
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		placed, _, err := Place(ctx, bytes.NewReader(data), dir, ExtractOptions{
			Name: "x", Umask: umask, NoReplace: !force, ConfineSymlinks: true, MaxBytes: 1 << 20,
		})
		if diff := cmp.Diff(outside, treeOf(t, l.root, isFinal)); diff != "" {
			t.Fatalf("Place (err %v) changed what is outside %s (-before +after):\n%s", err, final, diff)
		}
		if err != nil {
			if placed != "" {
				t.Fatalf("a failed Place (%v) says it placed %s", err, placed)
			}
			if diff := cmp.Diff(before, treeOf(t, l.root, nil)); diff != "" {
				t.Fatalf("a failed Place (%v) changed the tree (-before +after):\n%s", err, diff)
			}
			return
		}
		if placed != final {
			t.Fatalf("Place installed at %s; want %s", placed, final)
		}
		m, ok := modelOf(data)
		if !ok {
			t.Fatalf("Place accepted a stream archive/tar cannot read whole or that repeats a name")
		}
		checkTree(t, final, "x", m, umask)
		var total int64
		for name, n := range m {
			total += int64(len(n.Content))
			if n.Type != "symlink" {
				continue
			}
			if path.IsAbs(n.Target) || !strings.HasPrefix(path.Join(path.Dir(name), n.Target)+"/", "x/") {
				t.Fatalf("symlink %s -> %q leaves the copy", name, n.Target)
			}
		}
		if total > 1<<20 {
			t.Fatalf("Place wrote %d bytes of files, over its 1 MiB cap", total)
		}
	})
}
