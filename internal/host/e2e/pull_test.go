package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
)

// hostGit runs git in dir on the host and returns its trimmed output.
func hostGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@example.com", "-c", "user.name=t"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v in %s: %v\n%s", args, dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// checkoutState fingerprints what a pull must never change in a host
// checkout: every file of the working tree (content, mode, link target),
// the index, HEAD, the config and the hooks directory. Refs and objects
// are left out: a pull adds a branch and its objects, prepare a ref.
func checkoutState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == filepath.Join(".git", "objects") || rel == filepath.Join(".git", "refs") || rel == filepath.Join(".git", "logs") {
			return fs.SkipDir
		}
		switch rel {
		case filepath.Join(".git", "packed-refs"), filepath.Join(".git", "ORIG_HEAD"), filepath.Join(".git", "FETCH_HEAD"):
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			state[rel] = "link " + target
		case d.IsDir():
			state[rel] = "dir " + info.Mode().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			state[rel] = info.Mode().String() + " " + hex.EncodeToString(sum[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func sameState(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed %s: %q -> %q", what, k, v, after[k])
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s added %s (%s)", what, k, v)
		}
	}
}

// guestSh runs a shell script in the guest's /root/repo.
func guestSh(e *env, script string) string {
	return e.must("vm", "exec", "g", "-w", "/root/repo", "--", "sh", "-ec", script).stdout
}

// vm diff and vm pull against a real guest: the agent's commit, an
// uncommitted change and an untracked file are shown and come home as a
// branch with the host's checkout untouched; a dirty checkout refuses
// --apply, a clean one takes it; a hostile guest (hooks, core.fsmonitor,
// a symlink to /etc/passwd, an oversized file) changes nothing outside the
// branch's objects; a full_copy workspace comes home into a new
// directory.
func testDiffAndPull(t *testing.T, e *env) {
	repo := makeRepo(t)
	e.must("vm", "workspace", "prepare", "g", repo)
	before := checkoutState(t, repo)
	sent := hostGit(t, repo, "rev-parse", api.SentRefPrefix+"g")
	if head := hostGit(t, repo, "rev-parse", "HEAD"); sent == head {
		t.Fatalf("the sent commit is HEAD although the checkout had uncommitted changes")
	}

	// Nothing changed yet.
	if out := e.must("vm", "diff", "g").stdout; !strings.Contains(out, "nothing changed since it was sent") {
		t.Errorf("vm diff of an untouched workspace:\n%s", out)
	}
	guestSh(e, `
		printf 'package deep\n\nfunc Answer() int { return 42 }\n' > src/deep/file.go
		git add src/deep/file.go
		git -c user.email=agent@vm -c user.name=agent commit -qm 'agent: answer'
		echo 'three (guest, uncommitted)' >> tracked.txt
		echo 'made in the guest' > guest-new.txt
		echo 'noise' > ignored.log
		git status --porcelain > /tmp/status-before
		cp .git/index /tmp/index-before`)

	// vm diff: all three, nothing sent shown as a change, ignored left out.
	out := e.must("vm", "diff", "g").stdout
	for _, want := range []string{"1 commit in the guest", "agent: answer", "changes not committed in the guest", "src/deep/file.go", "tracked.txt", "guest-new.txt", "3 files changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("vm diff lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"untracked.txt", "ignored.log", "link"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("vm diff shows %q, which was sent as it is or is ignored:\n%s", unwanted, out)
		}
	}
	var d api.WorkspaceDiff
	if err := json.Unmarshal([]byte(e.must("vm", "diff", "g", "--json").stdout), &d); err != nil {
		t.Fatal(err)
	}
	statuses := map[string]string{}
	for _, f := range d.Files {
		statuses[f.Path] = f.Status
	}
	if want := map[string]string{"src/deep/file.go": api.FileModified, "tracked.txt": api.FileModified, "guest-new.txt": api.FileAdded}; !maps.Equal(statuses, want) || !d.Uncommitted || len(d.Commits) != 1 || d.Workspace.Sent != sent {
		t.Errorf("vm diff --json: files %v commits %d uncommitted %v sent %s, want %v, 1, true, %s", statuses, len(d.Commits), d.Uncommitted, d.Workspace.Sent, want, sent)
	}
	if out := e.must("vm", "diff", "g", "-p", "--", "tracked.txt").stdout; !strings.Contains(out, "+three (guest, uncommitted)") || strings.Contains(out, "Answer") {
		t.Errorf("vm diff -p -- tracked.txt:\n%s", out)
	}
	// The guest's index, status and files are as they were.
	if got := guestSh(e, `git status --porcelain | diff - /tmp/status-before && cmp .git/index /tmp/index-before && echo same`); got != "same\n" {
		t.Errorf("vm diff changed the guest's index or status: %q", got)
	}

	// vm pull: both commits on banger/g, the checkout untouched.
	out = e.must("vm", "pull", "g").stdout
	if !strings.Contains(out, "branch banger/g") || !strings.Contains(out, "1 commit from the guest + 1 of its uncommitted changes") {
		t.Errorf("vm pull output:\n%s", out)
	}
	if log := hostGit(t, repo, "log", "--format=%s", "HEAD..banger/g"); log != "banger: uncommitted changes in VM g\nagent: answer" {
		t.Errorf("banger/g holds %q", log)
	}
	if got := hostGit(t, repo, "show", "banger/g:guest-new.txt"); got != "made in the guest" {
		t.Errorf("banger/g:guest-new.txt = %q", got)
	}
	if got := hostGit(t, repo, "symbolic-ref", "--short", "HEAD"); got != "main" {
		t.Errorf("current branch after pull = %q", got)
	}
	sameState(t, "vm pull", before, checkoutState(t, repo))
	if r := e.runWith(e.extra, "vm", "pull", "g"); r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("pull onto an existing branch: exit %d %q", r.code, r.stderr)
	}
	e.must("vm", "pull", "g", "--force")

	// --apply: refused on the dirty checkout (makeRepo leaves tracked.txt
	// modified), taken once the sent state is committed on the host.
	if r := e.runWith(e.extra, "vm", "pull", "g", "--apply"); r.code == 0 || !strings.Contains(r.stderr, "commit") {
		t.Errorf("--apply on a dirty checkout: exit %d %q", r.code, r.stderr)
	}
	sameState(t, "a refused --apply", before, checkoutState(t, repo))
	hostGit(t, repo, "add", "-A")
	hostGit(t, repo, "commit", "-qm", "host: what was sent")
	e.must("vm", "pull", "g", "--apply")
	if b, _ := os.ReadFile(filepath.Join(repo, "tracked.txt")); string(b) != "one\ntwo (uncommitted)\nthree (guest, uncommitted)\n" {
		t.Errorf("applied tracked.txt = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "guest-new.txt")); string(b) != "made in the guest\n" {
		t.Errorf("applied guest-new.txt = %q", b)
	}
	hostGit(t, repo, "reset", "-q", "--hard")
	hostGit(t, repo, "clean", "-qfd")

	// A hostile guest: hooks and core.fsmonitor in its repository, a
	// symlink to /etc/passwd committed, then an oversized file.
	marker := filepath.Join(t.TempDir(), "pwned")
	guestSh(e, `
		ln -s /etc/passwd evil
		git add evil
		git -c user.email=agent@vm -c user.name=agent commit -qm 'agent: evil link'
		for h in post-checkout post-merge reference-transaction pre-auto-gc fsmonitor-watchman; do
			printf '#!/bin/sh\ntouch `+marker+`\nexit 1\n' > .git/hooks/$h; chmod +x .git/hooks/$h
		done
		git config core.fsmonitor 'touch `+marker+`'
		git config core.hooksPath .git/hooks`)
	before = checkoutState(t, repo)
	passwd, _ := os.ReadFile("/etc/passwd")
	e.must("vm", "pull", "g", "--branch", "hostile")
	if got := hostGit(t, repo, "ls-tree", "hostile", "evil"); !strings.HasPrefix(got, "120000 blob ") {
		t.Errorf("evil in the branch: %q, want a symlink entry", got)
	}
	if got := hostGit(t, repo, "cat-file", "-p", "hostile:evil"); got != "/etc/passwd" {
		t.Errorf("evil's target: %q", got)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a hook or fsmonitor of the guest ran on the host")
	}
	if after, _ := os.ReadFile("/etc/passwd"); string(after) != string(passwd) {
		t.Error("/etc/passwd changed")
	}
	sameState(t, "pulling a hostile guest's work", before, checkoutState(t, repo))

	guestSh(e, `head -c 3145728 /dev/urandom > big.bin`)
	refs := hostGit(t, repo, "for-each-ref")
	writeConfig(t, e, "[pull]\nmax_size = \"1MiB\"\n")
	r := e.runWith(e.extra, "vm", "pull", "g", "--branch", "big")
	os.Remove(filepath.Join(e.home, "config", "config.toml"))
	if r.code == 0 || !strings.Contains(r.stderr, "pull.max_size") {
		t.Errorf("pull of an oversized work: exit %d %q", r.code, r.stderr)
	}
	if got := hostGit(t, repo, "for-each-ref"); got != refs {
		t.Errorf("a refused pull changed the refs:\n%s\n->\n%s", refs, got)
	}
	sameState(t, "a refused pull", before, checkoutState(t, repo))
	if _, err := os.Stat(marker); err == nil {
		t.Error("a hook or fsmonitor of the guest ran on the host")
	}

	// full_copy: no history on the host side; the changed files come home
	// into a new directory, never over the source tree.
	src := filepath.Join(t.TempDir(), "plain")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "keep.txt"), []byte("keep\n"), 0o644)
	os.WriteFile(filepath.Join(src, "edit.txt"), []byte("before\n"), 0o644)
	os.WriteFile(filepath.Join(src, "sub", "gone.txt"), []byte("gone\n"), 0o644)
	e.must("vm", "workspace", "prepare", "g", src, "--mode", "full_copy")
	srcBefore := checkoutState(t, src)
	guestSh(e, `echo after > edit.txt; rm sub/gone.txt; printf '#!/bin/sh\n' > sub/new.sh; chmod 755 sub/new.sh; ln -s /etc/passwd evil`)
	if err := json.Unmarshal([]byte(e.must("vm", "diff", "g", "--json").stdout), &d); err != nil {
		t.Fatal(err)
	}
	statuses = map[string]string{}
	for _, f := range d.Files {
		statuses[f.Path] = f.Status
	}
	if want := map[string]string{"edit.txt": api.FileModified, "sub/gone.txt": api.FileDeleted, "sub/new.sh": api.FileAdded, "evil": api.FileAdded}; !maps.Equal(statuses, want) {
		t.Errorf("full_copy vm diff: %v, want %v", statuses, want)
	}
	if r := e.runWith(e.extra, "vm", "pull", "g"); r.code == 0 || !strings.Contains(r.stderr, "--into") {
		t.Errorf("pull of a full_copy workspace as a branch: exit %d %q", r.code, r.stderr)
	}
	into := filepath.Join(t.TempDir(), "work")
	e.must("vm", "pull", "g", "--into", into)
	var got []string
	filepath.WalkDir(into, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(into, p)
		if !d.IsDir() {
			got = append(got, rel)
		}
		return nil
	})
	slices.Sort(got)
	if want := []string{"edit.txt", "evil", "sub/new.sh"}; !slices.Equal(got, want) {
		t.Errorf("--into wrote %v, want %v", got, want)
	}
	if l, err := os.Readlink(filepath.Join(into, "evil")); err != nil || l != "/etc/passwd" {
		t.Errorf("--into evil: %q %v, want a symlink to /etc/passwd", l, err)
	}
	if fi, err := os.Stat(filepath.Join(into, "sub", "new.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("--into sub/new.sh: %v %v", fi, err)
	}
	sameState(t, "vm pull --into", srcBefore, checkoutState(t, src))
	if r := e.runWith(e.extra, "vm", "pull", "g", "--into", into); r.code == 0 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("--into an existing directory: exit %d %q", r.code, r.stderr)
	}
}
