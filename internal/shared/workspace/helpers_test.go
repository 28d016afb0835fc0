package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestMain keeps the host's git configuration out of every git this package
// and its tests run.
func TestMain(m *testing.M) {
	for k, v := range map[string]string{
		"GIT_CONFIG_GLOBAL":       os.DevNull,
		"GIT_CONFIG_NOSYSTEM":     "1",
		"GIT_AUTHOR_NAME":         "Banger Test",
		"GIT_AUTHOR_EMAIL":        "test@banger.invalid",
		"GIT_COMMITTER_NAME":      "Banger Test",
		"GIT_COMMITTER_EMAIL":     "test@banger.invalid",
		"GIT_CEILING_DIRECTORIES": os.TempDir(),
	} {
		os.Setenv(k, v)
	}
	os.Exit(m.Run())
}

func requireGit(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		tb.Skip("git is not installed")
	}
}

// git runs git in dir and returns its trimmed stdout.
func git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return strings.TrimRight(string(out), "\n")
}

func initRepo(tb testing.TB, dir string) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	git(tb, dir, "init", "-q", "-b", "main")
}

// write creates dir/rel (and its parents) with content and mode.
func write(tb testing.TB, dir, rel, content string, mode fs.FileMode) {
	tb.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask-proof
		tb.Fatal(err)
	}
}

func symlink(tb testing.TB, target, link string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		tb.Fatal(err)
	}
}

// node is one entry of a tree as the tests compare it.
type node struct {
	Type    string // "file", "dir", "symlink", "other"
	Mode    fs.FileMode
	Content string
	Target  string
	MTime   int64
}

// snapshot describes every entry under root (root itself excluded), keyed by
// slash-separated relative path. skip, if set, prunes entries and subtrees.
func snapshot(tb testing.TB, root string, skip func(rel string) bool) map[string]node {
	tb.Helper()
	tree := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		n := node{Mode: fi.Mode().Perm(), MTime: fi.ModTime().Unix()}
		switch {
		case fi.Mode().IsRegular():
			n.Type = "file"
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Content = string(b)
		case fi.IsDir():
			n.Type = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			n.Type, n.Mode = "symlink", 0
			if n.Target, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			n.Type = "other"
		}
		tree[rel] = n
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return tree
}

func skipDotGit(rel string) bool { return rel == ".git" }

// pack runs Pack into a buffer.
func pack(tb testing.TB, root string, mode Mode) (*bytes.Buffer, Stats) {
	tb.Helper()
	var buf bytes.Buffer
	st, err := Pack(context.Background(), root, mode, &buf)
	if err != nil {
		tb.Fatalf("Pack(%s, %s): %v", root, mode, err)
	}
	return &buf, st
}

// extract runs Extract and fails the test on error.
func extract(tb testing.TB, stream []byte, dest string) Stats {
	tb.Helper()
	st, err := Extract(context.Background(), bytes.NewReader(stream), dest, ExtractOptions{})
	if err != nil {
		tb.Fatalf("Extract(%s): %v", dest, err)
	}
	return st
}

// tarEntry is one entry of a hand-built test stream.
type tarEntry struct {
	name     string
	typ      byte
	content  string
	linkname string
	mode     int64
}

func buildTar(tb testing.TB, entries []tarEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.linkname, Mode: mode, ModTime: time.Unix(1700000000, 0)}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.content))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatalf("header %q: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.content)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// dirNames lists a directory, sorted.
func dirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// tarHeaders lists the entry headers of a stream.
func tarHeaders(tb testing.TB, stream []byte) []*tar.Header {
	tb.Helper()
	tr := tar.NewReader(bytes.NewReader(stream))
	var hdrs []*tar.Header
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hdrs
		}
		if err != nil {
			tb.Fatal(err)
		}
		hdrs = append(hdrs, hdr)
	}
}

// removable makes every directory under dir writable again when the test
// ends, so t.TempDir's cleanup can remove read-only directories when the
// tests do not run as root.
func removable(t *testing.T, dir string) {
	t.Cleanup(func() {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}
