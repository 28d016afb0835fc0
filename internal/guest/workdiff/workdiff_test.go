package workdiff

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/workspace"
)

func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed on this host: workdiff shells out to git")
	}
}

// git runs git as a test's "user" would, in dir, and returns its trimmed
// stdout.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return gitIn(t, dir, nil, args...)
}

func gitIn(t *testing.T, dir string, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com",
		"GIT_AUTHOR_DATE=1700000000 +0000", "GIT_COMMITTER_DATE=1700000000 +0000"}
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixture is a host repository and the guest's copy of it, with the
// guest's work done.
type fixture struct {
	host, guest   string
	head, sent    string // the host's HEAD and the sent commit
	guestHead     string
	marker        string // written by any program the guest's repo configures
	ctx           context.Context
	ignoredInSent string
}

// newFixture: the host commits a.txt, b.txt and .gitignore (*.log), and
// sends HEAD plus the untracked sent.txt as commit S; the guest (a copy of
// the host repository) commits a change to a.txt, leaves a change to
// b.txt uncommitted, adds the untracked new.txt and the ignored debug.log,
// then plants hooks, an fsmonitor, a filter, diff drivers and a signing
// program that would each write the marker.
func newFixture(t *testing.T) *fixture {
	requireGit(t)
	f := &fixture{ctx: context.Background()}
	root := t.TempDir()
	f.host, f.guest = filepath.Join(root, "host"), filepath.Join(root, "guest")
	f.marker = filepath.Join(root, "marker")
	git(t, root, "init", "-q", "-b", "main", f.host)
	write(t, filepath.Join(f.host, "a.txt"), "one\ntwo\n")
	write(t, filepath.Join(f.host, "b.txt"), "bee\n")
	write(t, filepath.Join(f.host, ".gitignore"), "*.log\n")
	git(t, f.host, "add", ".")
	git(t, f.host, "commit", "-q", "-m", "host: first")
	f.head = git(t, f.host, "rev-parse", "HEAD")
	// The sent commit, made as prepare makes it: a scratch index.
	write(t, filepath.Join(f.host, "sent.txt"), "sent along\n")
	idx := filepath.Join(root, "sent-index")
	cmd := func(args ...string) string {
		c := exec.Command("git", append([]string{"-C", f.host}, args...)...)
		c.Env = []string{"PATH=" + os.Getenv("PATH"), "GIT_INDEX_FILE=" + idx, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=banger", "GIT_AUTHOR_EMAIL=banger@localhost", "GIT_COMMITTER_NAME=banger", "GIT_COMMITTER_EMAIL=banger@localhost"}
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	cmd("read-tree", "HEAD")
	cmd("add", "-A")
	f.sent = cmd("commit-tree", "-p", "HEAD", "-m", "sent", cmd("write-tree"))
	git(t, f.host, "update-ref", "refs/banger/sent/vm1", f.sent)

	if out, err := exec.Command("cp", "-a", f.host, f.guest).CombinedOutput(); err != nil {
		t.Fatalf("copying the repository: %v\n%s", err, out)
	}
	write(t, filepath.Join(f.guest, "a.txt"), "one\ntwo\nthree\n")
	git(t, f.guest, "commit", "-q", "-am", "guest: third line")
	f.guestHead = git(t, f.guest, "rev-parse", "HEAD")
	write(t, filepath.Join(f.guest, "b.txt"), "bee\nbuzz\n")
	write(t, filepath.Join(f.guest, "new.txt"), "new\n")
	write(t, filepath.Join(f.guest, "debug.log"), "ignored\n")

	// What a hostile guest plants: every one writes the marker.
	script := filepath.Join(root, "evil.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$0 $*\" >> "+f.marker+"\ncat\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, hook := range []string{"pre-commit", "post-commit", "commit-msg", "post-index-change", "reference-transaction", "fsmonitor-watchman"} {
		if err := os.WriteFile(filepath.Join(f.guest, ".git", "hooks", hook), []byte("#!/bin/sh\necho hook >> "+f.marker+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range [][2]string{
		{"core.fsmonitor", script},
		{"core.hooksPath", filepath.Join(f.guest, ".git", "hooks")},
		{"filter.evil.clean", script},
		{"filter.evil.smudge", script},
		{"filter.evil.process", script},
		{"filter.evil.required", "true"},
		{"diff.evil.textconv", script},
		{"diff.evil.command", script},
		{"diff.external", script},
		{"commit.gpgSign", "true"},
		{"gpg.program", script},
		{"core.pager", script},
		{"log.showSignature", "true"},
		{"diff.noprefix", "true"},
		{"color.ui", "always"},
	} {
		git(t, f.guest, "config", kv[0], kv[1])
	}
	write(t, filepath.Join(f.guest, ".git", "info", "attributes"), "* filter=evil diff=evil\n")
	return f
}

// tree is every file under dir, .git included, with its mode, mtime and
// content (a symlink's target). The mtimes of objects are left out: git
// freshens an object it would write that exists already, in an alternate
// too, and W is made of mostly existing objects.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		v := fi.Mode().String() + " " + fi.ModTime().String()
		if strings.Contains("/"+rel, ".git/objects/") && fi.Mode().IsRegular() {
			v = fi.Mode().String()
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		m[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) changes(t *testing.T, p agentproto.ChangesParams) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Changes(f.ctx, f.guest, t.TempDir(), p, &out)
	return out.String(), err
}

func (f *fixture) summary(t *testing.T, pathspec ...string) agentproto.Changes {
	t.Helper()
	out, err := f.changes(t, agentproto.ChangesParams{Base: f.sent, Format: agentproto.ChangesSummary, Pathspec: pathspec, VM: "vm1"})
	if err != nil {
		t.Fatal(err)
	}
	var ch agentproto.Changes
	if err := json.Unmarshal([]byte(out), &ch); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	return ch
}

// The guest's commit, uncommitted change and untracked file are listed,
// the ignored file and the file the host sent untracked are not; the
// commit of the uncommitted state is the guest's HEAD plus them.
func TestSummary(t *testing.T) {
	f := newFixture(t)
	got := f.summary(t)
	want := agentproto.Changes{
		Base:    f.sent,
		Head:    f.guestHead,
		Commits: []agentproto.ChangedCommit{{ID: f.guestHead, Subject: "guest: third line", Author: "Ada <ada@example.com>"}},
		Files: []agentproto.ChangedFile{
			{Path: "a.txt", Status: "modified", Added: 1},
			{Path: "b.txt", Status: "modified", Added: 1},
			{Path: "new.txt", Status: "added", Added: 1},
		},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(agentproto.Changes{}, "Work"), cmpopts.IgnoreFields(agentproto.ChangedCommit{}, "Time")); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if got.Work == "" || got.Work == f.guestHead {
		t.Fatalf("Work = %q: want a commit on top of HEAD %s", got.Work, f.guestHead)
	}
	if got.Commits[0].Time.Unix() != 1700000000 {
		t.Errorf("commit time %v, want 1700000000", got.Commits[0].Time)
	}
	// W was made in a scratch object directory: the repository lacks it.
	if err := exec.Command("git", "-C", f.guest, "cat-file", "-e", got.Work).Run(); err == nil {
		t.Errorf("W %s was written into the guest's repository", got.Work)
	}
	if _, err := os.Stat(f.marker); err == nil {
		b, _ := os.ReadFile(f.marker)
		t.Errorf("a program the guest's repository configures ran:\n%s", b)
	}

	// A pathspec narrows the files, not the commits.
	narrowed := f.summary(t, "b.txt")
	if len(narrowed.Files) != 1 || narrowed.Files[0].Path != "b.txt" || len(narrowed.Commits) != 1 {
		t.Errorf("summary of b.txt: %+v", narrowed)
	}
}

// The patch holds the three changes and nothing else, with a/ and b/
// prefixes and no colour whatever the repository configures.
func TestPatch(t *testing.T) {
	f := newFixture(t)
	out, err := f.changes(t, agentproto.ChangesParams{Base: f.sent, Format: agentproto.ChangesPatch})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"diff --git a/a.txt b/a.txt", "+three", "diff --git a/b.txt b/b.txt", "+buzz", "diff --git a/new.txt b/new.txt", "new file mode 100644"} {
		if !strings.Contains(out, want) {
			t.Errorf("the patch lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"debug.log", "sent.txt", "\x1b["} {
		if strings.Contains(out, not) {
			t.Errorf("the patch holds %q:\n%s", not, out)
		}
	}
	// The host can apply it to what it sent.
	check := t.TempDir()
	git(t, check, "init", "-q")
	git(t, check, "fetch", "-q", f.host, "refs/banger/sent/vm1")
	git(t, check, "checkout", "-q", f.sent)
	gitIn(t, check, []byte(out), "apply", "--index", "-")
	if got := git(t, check, "show", ":b.txt"); got != "bee\nbuzz" {
		t.Errorf("b.txt after applying the patch: %q", got)
	}
	if _, err := os.Stat(f.marker); err == nil {
		t.Error("a program the guest's repository configures ran")
	}
}

// No answer changes a byte of the guest's repository or working tree,
// .git included (objects, index, HEAD, refs, config).
func TestLeavesTheWorkspaceAlone(t *testing.T) {
	f := newFixture(t)
	before := tree(t, f.guest)
	ops := []struct {
		name string
		run  func() error
	}{
		{"summary", func() error {
			_, err := f.changes(t, agentproto.ChangesParams{Base: f.sent, Format: agentproto.ChangesSummary})
			return err
		}},
		{"patch", func() error {
			_, err := f.changes(t, agentproto.ChangesParams{Base: f.sent, Format: agentproto.ChangesPatch})
			return err
		}},
		{"bundle", func() error {
			return Bundle(f.ctx, f.guest, agentproto.BundleParams{Have: []string{f.sent, f.head}}, io.Discard)
		}},
		{"bundle too large", func() error {
			err := Bundle(f.ctx, f.guest, agentproto.BundleParams{Have: []string{f.sent}, MaxBytes: 10}, io.Discard)
			if errors.Is(err, workspace.ErrTooLarge) {
				return nil
			}
			return err
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			if err := op.run(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, tree(t, f.guest)); diff != "" {
				t.Errorf("the guest's workspace changed (-before +after):\n%s", diff)
			}
			if _, err := os.Stat(f.marker); err == nil {
				b, _ := os.ReadFile(f.marker)
				t.Errorf("a program the guest's repository configures ran:\n%s", b)
			}
		})
	}
}

// A host clone that holds what it sent verifies the bundle and fetches the
// guest's commit plus W from it; the bundle names the host's commits as
// prerequisites instead of carrying them.
func TestBundle(t *testing.T) {
	f := newFixture(t)
	var b bytes.Buffer
	if err := Bundle(f.ctx, f.guest, agentproto.BundleParams{Have: []string{f.sent, f.head, strings.Repeat("1", 40)}, VM: "vm1"}, &b); err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(b.String(), "\n\n")
	lines := strings.Split(header, "\n")
	if lines[0] != "# v2 git bundle" || lines[1] != "-"+f.sent || lines[2] != "-"+f.head || lines[3] != f.guestHead+" refs/banger/head" || !strings.HasSuffix(lines[4], " refs/banger/work") {
		t.Errorf("bundle header:\n%s", header)
	}
	file := filepath.Join(t.TempDir(), "work.bundle")
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	git(t, filepath.Dir(clone), "clone", "-q", f.host, clone)
	git(t, clone, "fetch", "-q", f.host, "refs/banger/sent/vm1:refs/banger/sent/vm1")
	git(t, clone, "bundle", "verify", "-q", file)
	git(t, clone, "fetch", "-q", file, "refs/banger/work:refs/heads/x", "refs/banger/head:refs/heads/h")
	if got := git(t, clone, "rev-parse", "x^"); got != f.guestHead {
		t.Errorf("x^ = %s, want the guest's HEAD %s", got, f.guestHead)
	}
	if got := git(t, clone, "log", "--format=%s", "h"); got != "guest: third line\nhost: first" {
		t.Errorf("the guest's history on the host: %q", got)
	}
	if got := git(t, clone, "show", "x:b.txt"); got != "bee\nbuzz" {
		t.Errorf("b.txt in W: %q", got)
	}
	if got := git(t, clone, "show", "x:new.txt"); got != "new" {
		t.Errorf("new.txt in W: %q", got)
	}
	if out, err := exec.Command("git", "-C", clone, "cat-file", "-e", "x:debug.log").CombinedOutput(); err == nil {
		t.Errorf("the ignored debug.log travelled: %s", out)
	}
	// A host without the prerequisites refuses it.
	empty := t.TempDir()
	git(t, empty, "init", "-q")
	if out, err := exec.Command("git", "-C", empty, "bundle", "verify", file).CombinedOutput(); err == nil {
		t.Errorf("a repository without the sent commits verified the bundle:\n%s", out)
	}
}

// Over MaxBytes, nothing is sent and the error says the size, the limit
// and the config key that raises it.
func TestTooLarge(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name string
		run  func(w io.Writer) error
	}{
		{"bundle", func(w io.Writer) error {
			return Bundle(f.ctx, f.guest, agentproto.BundleParams{Have: []string{f.sent}, MaxBytes: 100}, w)
		}},
		{"patch", func(w io.Writer) error {
			return Changes(f.ctx, f.guest, t.TempDir(), agentproto.ChangesParams{Base: f.sent, Format: agentproto.ChangesPatch, MaxBytes: 100}, w)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			err := c.run(&out)
			if !errors.Is(err, workspace.ErrTooLarge) || !strings.Contains(err.Error(), "pull.max_size") || !strings.Contains(err.Error(), "100-byte limit") {
				t.Errorf("error %v: want ErrTooLarge naming the limit and pull.max_size", err)
			}
			if out.Len() != 0 {
				t.Errorf("%d bytes were sent before the refusal", out.Len())
			}
		})
	}
}

// A repository whose HEAD is unborn: everything is uncommitted, W has no
// parent, the bundle carries refs/banger/work alone; one without any file
// has nothing to pull.
func TestUnbornHead(t *testing.T) {
	requireGit(t)
	ctx := context.Background()
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	var empty bytes.Buffer
	if err := Bundle(ctx, dir, agentproto.BundleParams{}, &empty); !errors.Is(err, ErrNoWork) {
		t.Errorf("bundle of an empty repository: %v, want ErrNoWork", err)
	}
	write(t, filepath.Join(dir, "f.txt"), "f\n")
	var out bytes.Buffer
	if err := Changes(ctx, dir, t.TempDir(), agentproto.ChangesParams{Format: agentproto.ChangesSummary}, &out); err != nil {
		t.Fatal(err)
	}
	var ch agentproto.Changes
	if err := json.Unmarshal(out.Bytes(), &ch); err != nil {
		t.Fatal(err)
	}
	want := agentproto.Changes{Files: []agentproto.ChangedFile{{Path: "f.txt", Status: "added", Added: 1}}}
	if diff := cmp.Diff(want, ch, cmpopts.IgnoreFields(agentproto.Changes{}, "Work")); diff != "" || ch.Work == "" {
		t.Errorf("summary (-want +got):\n%s\nWork %q", diff, ch.Work)
	}
	var b bytes.Buffer
	if err := Bundle(ctx, dir, agentproto.BundleParams{}, &b); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "b.bundle")
	os.WriteFile(file, b.Bytes(), 0o600)
	host := t.TempDir()
	git(t, host, "init", "-q")
	git(t, host, "fetch", "-q", file, "refs/banger/work:refs/heads/x")
	if got := git(t, host, "show", "x:f.txt"); got != "f" {
		t.Errorf("f.txt in W: %q", got)
	}
	if strings.Contains(b.String(), "refs/banger/head") {
		t.Error("a bundle of an unborn HEAD names refs/banger/head")
	}
}

// Bad params are refused before git runs, naming what is wrong; a base
// the guest does not have names prepare.
func TestRefused(t *testing.T) {
	f := newFixture(t)
	state := t.TempDir()
	cases := []struct {
		name string
		p    agentproto.ChangesParams
		is   error
		says string
	}{
		{"unknown format", agentproto.ChangesParams{Format: "tarball"}, ErrBadParams, `want "summary", "patch" or "files"`},
		{"short base", agentproto.ChangesParams{Format: "summary", Base: "abc123"}, ErrBadParams, "not a full commit id"},
		{"empty pathspec", agentproto.ChangesParams{Format: "summary", Base: f.sent, Pathspec: []string{""}}, ErrBadParams, "pathspec"},
		{"NUL in pathspec", agentproto.ChangesParams{Format: "summary", Base: f.sent, Pathspec: []string{"a\x00b"}}, ErrBadParams, "NUL"},
		{"files of a git workspace", agentproto.ChangesParams{Format: "files", Base: f.sent}, ErrBadParams, "full_copy"},
		{"unknown mode", agentproto.ChangesParams{Format: "summary", Mode: "rsync"}, ErrBadParams, "unknown workspace mode"},
		{"newline in VM", agentproto.ChangesParams{Format: "summary", VM: "a\nb"}, ErrBadParams, "control characters"},
		{"unknown base", agentproto.ChangesParams{Format: "summary", Base: strings.Repeat("1", 40)}, ErrNoBase, "banger vm workspace prepare"},
		{"no base recorded", agentproto.ChangesParams{Format: "summary", Mode: "full_copy"}, ErrNoBase, "banger vm workspace prepare"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Changes(f.ctx, f.guest, state, c.p, io.Discard)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %v: want %v saying %q", err, c.is, c.says)
			}
		})
	}
	if err := Bundle(f.ctx, f.guest, agentproto.BundleParams{Have: []string{"HEAD"}}, io.Discard); !errors.Is(err, ErrBadParams) {
		t.Errorf("bundle with Have HEAD: %v, want ErrBadParams", err)
	}
	notRepo := t.TempDir()
	if err := Changes(f.ctx, notRepo, state, agentproto.ChangesParams{Format: "summary"}, io.Discard); !errors.Is(err, ErrNoBase) {
		t.Errorf("changes of a directory without .git: %v, want ErrNoBase", err)
	}
}

// full_copy: the installed tree (ignored files too) is the base; the
// files tar holds what was added, modified or made executable, a symlink
// to /etc/passwd as a symlink, and is accepted by workspace.Place as the
// host's `vm pull --into` uses it.
func TestFullCopy(t *testing.T) {
	requireGit(t)
	ctx := context.Background()
	root := t.TempDir()
	dir, state := filepath.Join(root, "repo"), filepath.Join(root, "state")
	write(t, filepath.Join(dir, ".gitignore"), "*.log\n")
	write(t, filepath.Join(dir, "keep.txt"), "same\n")
	write(t, filepath.Join(dir, "edit.txt"), "before\n")
	write(t, filepath.Join(dir, "gone.txt"), "bye\n")
	write(t, filepath.Join(dir, "run.sh"), "echo hi\n")
	write(t, filepath.Join(dir, "old.log"), "ignored but sent\n")
	if err := RecordBase(ctx, dir, state); err != nil {
		t.Fatal(err)
	}
	// Recording again replaces the base.
	if err := RecordBase(ctx, dir, state); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 1 {
		t.Errorf("state directory holds %d entries, want one base", len(entries))
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		t.Error("RecordBase created .git in the workspace")
	}
	write(t, filepath.Join(dir, "edit.txt"), "after\n")
	write(t, filepath.Join(dir, "sub", "new.log"), "new and ignored by .gitignore\n")
	os.Remove(filepath.Join(dir, "gone.txt"))
	os.Chmod(filepath.Join(dir, "run.sh"), 0o755)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "sub", "passwd")); err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	stateBefore := tree(t, state)

	var out bytes.Buffer
	if err := Changes(ctx, dir, state, agentproto.ChangesParams{Mode: "full_copy", Format: agentproto.ChangesSummary}, &out); err != nil {
		t.Fatal(err)
	}
	var ch agentproto.Changes
	if err := json.Unmarshal(out.Bytes(), &ch); err != nil {
		t.Fatal(err)
	}
	want := []agentproto.ChangedFile{
		{Path: "edit.txt", Status: "modified", Added: 1, Deleted: 1},
		{Path: "gone.txt", Status: "deleted", Deleted: 1},
		{Path: "run.sh", Status: "modified"},
		{Path: "sub/new.log", Status: "added", Added: 1},
		{Path: "sub/passwd", Status: "added", Added: 1},
	}
	if diff := cmp.Diff(want, ch.Files); diff != "" || ch.Base == "" || ch.Work == "" || ch.Head != "" || len(ch.Commits) != 0 {
		t.Errorf("full_copy summary %+v; files (-want +got):\n%s", ch, diff)
	}

	var files bytes.Buffer
	if err := Changes(ctx, dir, state, agentproto.ChangesParams{Mode: "full_copy", Format: agentproto.ChangesFiles}, &files); err != nil {
		t.Fatal(err)
	}
	entries := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(files.Bytes()))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = string(h.Typeflag) + " " + fs.FileMode(h.Mode).String() + " " + h.Linkname
	}
	wantEntries := map[string]string{
		"work/":            "5 -rwxr-xr-x ",
		"work/edit.txt":    "0 -rw-r--r-- ",
		"work/run.sh":      "0 -rwxr-xr-x ",
		"work/sub/":        "5 -rwxr-xr-x ",
		"work/sub/new.log": "0 -rw-r--r-- ",
		"work/sub/passwd":  "2 -rwxrwxrwx /etc/passwd",
	}
	if diff := cmp.Diff(wantEntries, entries); diff != "" {
		t.Errorf("files tar (-want +got):\n%s", diff)
	}
	into := filepath.Join(root, "pulled")
	final, _, err := workspace.Place(ctx, bytes.NewReader(files.Bytes()), into, workspace.ExtractOptions{Name: "work", Umask: 0o022, MaxBytes: 1 << 20, NoReplace: true})
	if err != nil || final != into {
		t.Fatalf("Place: %v (at %s)", err, final)
	}
	if b, _ := os.ReadFile(filepath.Join(into, "edit.txt")); string(b) != "after\n" {
		t.Errorf("pulled edit.txt = %q", b)
	}
	if fi, err := os.Stat(filepath.Join(into, "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("pulled run.sh: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(into, "sub", "passwd")); err != nil || target != "/etc/passwd" {
		t.Errorf("pulled sub/passwd: %q, %v: want a symlink to /etc/passwd", target, err)
	}
	for _, absent := range []string{"keep.txt", "gone.txt", "old.log"} {
		if _, err := os.Lstat(filepath.Join(into, absent)); err == nil {
			t.Errorf("%s was pulled", absent)
		}
	}

	if diff := cmp.Diff(before, tree(t, dir)); diff != "" {
		t.Errorf("the workspace changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(stateBefore, tree(t, state)); diff != "" {
		t.Errorf("the recorded base changed (-before +after):\n%s", diff)
	}
	if err := Changes(ctx, dir, state, agentproto.ChangesParams{Mode: "full_copy", Format: agentproto.ChangesFiles, MaxBytes: 600}, io.Discard); !errors.Is(err, workspace.ErrTooLarge) {
		t.Errorf("files over MaxBytes: %v, want ErrTooLarge", err)
	}

	// Recording the tree as it now is leaves nothing to report.
	if err := RecordBase(ctx, dir, state); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Changes(ctx, dir, state, agentproto.ChangesParams{Mode: "full_copy", Format: agentproto.ChangesSummary}, &out); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); !strings.HasPrefix(got, `{"base":"`) || strings.Contains(got, "files") || strings.Contains(got, "work") {
		t.Errorf("summary after recording the tree again: %s", got)
	}
}

// Each kind of change gets its status and counts, in a commit or left
// uncommitted alike.
func TestStatuses(t *testing.T) {
	requireGit(t)
	ctx := context.Background()
	long := strings.Repeat("a line long enough for rename detection\n", 20)
	cases := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   []agentproto.ChangedFile
	}{
		{"renamed", func(t *testing.T, dir string) {
			os.Rename(filepath.Join(dir, "long.txt"), filepath.Join(dir, "moved.txt"))
		}, []agentproto.ChangedFile{{Path: "moved.txt", OldPath: "long.txt", Status: "renamed"}}},
		{"renamed and edited", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "long.txt"))
			write(t, filepath.Join(dir, "sub", "moved.txt"), long+"one more\n")
		}, []agentproto.ChangedFile{{Path: "sub/moved.txt", OldPath: "long.txt", Status: "renamed", Added: 1}}},
		{"deleted", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "short.txt"))
		}, []agentproto.ChangedFile{{Path: "short.txt", Status: "deleted", Deleted: 1}}},
		{"type changed", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "short.txt"))
			os.Symlink("/etc/passwd", filepath.Join(dir, "short.txt"))
		}, []agentproto.ChangedFile{{Path: "short.txt", Status: "type_changed", Added: 1, Deleted: 1}}},
		{"binary", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "blob.bin"), []byte{0, 1, 2, 0, 'x'}, 0o644)
		}, []agentproto.ChangedFile{{Path: "blob.bin", Status: "added", Binary: true}}},
		{"odd names", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "tab\there \"q\" é.txt"), "x\n")
		}, []agentproto.ChangedFile{{Path: "tab\there \"q\" é.txt", Status: "added", Added: 1}}},
	}
	for _, c := range cases {
		for _, commit := range []bool{false, true} {
			name := c.name + " uncommitted"
			if commit {
				name = c.name + " committed"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				git(t, dir, "init", "-q")
				write(t, filepath.Join(dir, "long.txt"), long)
				write(t, filepath.Join(dir, "short.txt"), "short\n")
				git(t, dir, "add", ".")
				git(t, dir, "commit", "-q", "-m", "base")
				base := git(t, dir, "rev-parse", "HEAD")
				c.change(t, dir)
				if commit {
					git(t, dir, "add", "-A")
					git(t, dir, "commit", "-q", "-m", "change")
				}
				var out bytes.Buffer
				if err := Changes(ctx, dir, t.TempDir(), agentproto.ChangesParams{Base: base, Format: agentproto.ChangesSummary}, &out); err != nil {
					t.Fatal(err)
				}
				var ch agentproto.Changes
				if err := json.Unmarshal(out.Bytes(), &ch); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(c.want, ch.Files); diff != "" {
					t.Errorf("files (-want +got):\n%s", diff)
				}
				if commit != (len(ch.Commits) == 1) || commit == (ch.Work != "") {
					t.Errorf("commits %+v, work %q: want the change %s", ch.Commits, ch.Work, map[bool]string{true: "committed", false: "in W"}[commit])
				}
			})
		}
	}
}

// A SHA-256 repository's bundle is a v3 bundle naming its object format,
// which a SHA-256 host repository fetches.
func TestBundleSHA256(t *testing.T) {
	requireGit(t)
	ctx := context.Background()
	host := t.TempDir()
	if out, err := exec.Command("git", "-C", host, "init", "-q", "--object-format=sha256").CombinedOutput(); err != nil {
		t.Skipf("this git makes no SHA-256 repositories: %v: %s", err, out)
	}
	write(t, filepath.Join(host, "a.txt"), "a\n")
	git(t, host, "add", ".")
	git(t, host, "commit", "-q", "-m", "first")
	sent := git(t, host, "rev-parse", "HEAD")
	guest := filepath.Join(t.TempDir(), "guest")
	if out, err := exec.Command("cp", "-a", host, guest).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	write(t, filepath.Join(guest, "a.txt"), "a\nb\n")
	var b bytes.Buffer
	if err := Bundle(ctx, guest, agentproto.BundleParams{Have: []string{sent}}, &b); err != nil {
		t.Fatal(err)
	}
	if want := "# v3 git bundle\n@object-format=sha256\n-" + sent + "\n"; !strings.HasPrefix(b.String(), want) {
		t.Errorf("bundle starts %q, want %q", b.String()[:min(b.Len(), 120)], want)
	}
	file := filepath.Join(t.TempDir(), "b.bundle")
	os.WriteFile(file, b.Bytes(), 0o600)
	git(t, host, "bundle", "verify", "-q", file)
	git(t, host, "fetch", "-q", file, "refs/banger/work:refs/heads/x")
	if got := git(t, host, "show", "x:a.txt"); got != "a\nb" {
		t.Errorf("a.txt in W: %q", got)
	}
}

// A workspace whose path holds ":" and a quote (which git's alternates
// list would split or unquote) is answered too, in both modes.
func TestOddWorkspacePath(t *testing.T) {
	requireGit(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), `we:ird "dir`)
	git(t, filepath.Dir(dir), "init", "-q", dir)
	write(t, filepath.Join(dir, "a.txt"), "a\n")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "a")
	head := git(t, dir, "rev-parse", "HEAD")
	for _, mode := range []string{"git", "full_copy"} {
		t.Run(mode, func(t *testing.T) {
			state := t.TempDir()
			p := agentproto.ChangesParams{Mode: mode, Base: head, Format: agentproto.ChangesSummary}
			if mode == "full_copy" {
				if err := RecordBase(ctx, dir, state); err != nil {
					t.Fatal(err)
				}
				p.Base = ""
			}
			write(t, filepath.Join(dir, "b.txt"), "b\n")
			defer os.Remove(filepath.Join(dir, "b.txt"))
			var out bytes.Buffer
			if err := Changes(ctx, dir, state, p, &out); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), `"status":"added"`) || strings.Count(out.String(), `"path"`) != 1 {
				t.Errorf("summary: %s", out.String())
			}
		})
	}
}

// Nested repositories: one without a commit is skipped rather than
// failing the answer; one with a commit is a gitlink in the summary and
// left out of the files tar.
func TestNestedRepositories(t *testing.T) {
	requireGit(t)
	ctx := context.Background()
	for _, mode := range []string{"git", "full_copy"} {
		t.Run(mode, func(t *testing.T) {
			dir, state := filepath.Join(t.TempDir(), "repo"), t.TempDir()
			write(t, filepath.Join(dir, "a.txt"), "a\n")
			p := agentproto.ChangesParams{Mode: mode, Format: agentproto.ChangesSummary}
			if mode == "git" {
				git(t, dir, "init", "-q")
				git(t, dir, "add", ".")
				git(t, dir, "commit", "-q", "-m", "a")
				p.Base = git(t, dir, "rev-parse", "HEAD")
			}
			git(t, dir, "init", "-q", "empty")
			write(t, filepath.Join(dir, "empty", "x.txt"), "x\n")
			if mode == "full_copy" {
				if err := RecordBase(ctx, dir, state); err != nil {
					t.Fatalf("RecordBase with a nested repository without commits: %v", err)
				}
			}
			write(t, filepath.Join(dir, "new.txt"), "new\n")
			git(t, dir, "init", "-q", "full")
			write(t, filepath.Join(dir, "full", "y.txt"), "y\n")
			git(t, filepath.Join(dir, "full"), "add", ".")
			git(t, filepath.Join(dir, "full"), "commit", "-q", "-m", "y")
			var out bytes.Buffer
			if err := Changes(ctx, dir, state, p, &out); err != nil {
				t.Fatal(err)
			}
			var ch agentproto.Changes
			if err := json.Unmarshal(out.Bytes(), &ch); err != nil {
				t.Fatal(err)
			}
			want := []agentproto.ChangedFile{{Path: "full", Status: "added", Added: 1}, {Path: "new.txt", Status: "added", Added: 1}}
			if diff := cmp.Diff(want, ch.Files); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			if mode == "full_copy" {
				var files bytes.Buffer
				p.Format = agentproto.ChangesFiles
				if err := Changes(ctx, dir, state, p, &files); err != nil {
					t.Fatal(err)
				}
				var names []string
				tr := tar.NewReader(&files)
				for h, err := tr.Next(); err == nil; h, err = tr.Next() {
					names = append(names, h.Name)
				}
				if diff := cmp.Diff([]string{"work/", "work/new.txt"}, names); diff != "" {
					t.Errorf("files tar (-want +got):\n%s", diff)
				}
			}
		})
	}
}
