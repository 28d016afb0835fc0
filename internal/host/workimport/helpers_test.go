package workimport

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hermetic skips without git, and points git's global and system
// configuration away from the machine's (the package's own git commands
// read the same environment).
func hermetic(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not on PATH: workimport drives the host's git")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, "gitconfig"))
	for _, k := range []string{"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL", "GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// tgit runs git in dir for a test, as a user named "tester", and returns
// its trimmed stdout; it fails the test when git fails.
func tgit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := tgitErr(dir, nil, args...)
	if err != nil {
		t.Fatalf("git %s in %s: %v", strings.Join(args, " "), dir, err)
	}
	return out
}

func tgitErr(dir string, stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=tester", "GIT_AUTHOR_EMAIL=tester@example.com",
		"GIT_COMMITTER_NAME=tester", "GIT_COMMITTER_EMAIL=tester@example.com", "LC_ALL=C")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", &gitError{args: args, dir: dir, stderr: stderr.String(), err: err}
	}
	return strings.TrimSpace(stdout.String()), nil
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newHost makes a repository with two committed files and a .gitignore
// that leaves out *.log, and returns its top.
func newHost(t *testing.T) string {
	t.Helper()
	top := filepath.Join(t.TempDir(), "host")
	tgit(t, filepath.Dir(top), "init", "-q", "-b", "main", top)
	writeFile(t, filepath.Join(top, "a.txt"), "one\ntwo\nthree\n")
	writeFile(t, filepath.Join(top, "dir", "b.txt"), "bee\n")
	writeFile(t, filepath.Join(top, ".gitignore"), "*.log\n")
	tgit(t, top, "add", "-A")
	tgit(t, top, "commit", "-q", "-m", "host: first")
	return top
}

// snapshot is what a pull must not change in a host checkout, each file
// as a digest: the work tree (without .git), the index, HEAD, the config,
// the hooks and info directories, the refs and the object store.
type snapshot struct {
	WorkTree map[string]string
	GitFiles map[string]string
	Refs     string
	Objects  map[string]string
}

func takeSnapshot(t *testing.T, top string) snapshot {
	t.Helper()
	s := snapshot{
		WorkTree: walkDigests(t, top, func(rel string) bool { return rel == ".git" }),
		GitFiles: map[string]string{},
		Refs:     tgit(t, top, "for-each-ref", "--format=%(objectname) %(refname)"),
		Objects:  walkDigests(t, filepath.Join(top, ".git", "objects"), nil),
	}
	for _, name := range []string{"index", "HEAD", "config", "FETCH_HEAD", "packed-refs"} {
		s.GitFiles[name] = digest(t, filepath.Join(top, ".git", name))
	}
	for _, dir := range []string{"hooks", "info"} {
		for rel, d := range walkDigests(t, filepath.Join(top, ".git", dir), nil) {
			s.GitFiles[dir+"/"+rel] = d
		}
	}
	return s
}

// walkDigests maps each path under root (relative) to its mode and a
// digest of its content or link target.
func walkDigests(t *testing.T, root string, skip func(rel string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if skip != nil && skip(rel) {
			return filepath.SkipDir
		}
		out[rel] = digest(t, path)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func digest(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(path)
		return "symlink " + target
	case fi.IsDir():
		return "dir " + fi.Mode().String()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return fi.Mode().String() + " " + hex.EncodeToString(sum[:])
}

// copyTree copies a checkout the way the workspace pack does: the files
// and the whole .git.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
}

// bundleOf makes a bundle in repo of the given refs (names or
// "^<id>" exclusions) and returns its bytes.
func bundleOf(t *testing.T, repo string, revs ...string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "work.bundle")
	args := []string{"bundle", "create", "-q"}
	if n := len(revs); n > 0 && strings.HasPrefix(revs[n-1], "--version") {
		args, revs = append(args, revs[n-1]), revs[:n-1]
	}
	tgit(t, repo, append(append(args, path), revs...)...)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
