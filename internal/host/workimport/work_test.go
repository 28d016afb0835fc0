package workimport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// pull is a host checkout that sent a workspace and a guest copy of it
// where an agent worked.
type pull struct {
	host, guest string
	sent        Sent
	// agent is the agent's commit (refs/banger/head), work the commit of
	// its uncommitted changes on top (refs/banger/work).
	agent, work string
	bundle      []byte
}

// newPull sends a dirty checkout (a.txt modified, notes.txt untracked)
// to a guest (a copy of it, as the workspace pack makes), where an agent
// commits one change and leaves a rename, a modification, a new file and
// a symlink to /etc/passwd uncommitted; guestSetup runs in the guest
// before the work is bundled.
func newPull(t *testing.T, guestSetup func(t *testing.T, guest string)) *pull {
	t.Helper()
	p := &pull{host: newHost(t)}
	writeFile(t, filepath.Join(p.host, "a.txt"), "one\ntwo\nthree\nhost uncommitted\n")
	writeFile(t, filepath.Join(p.host, "notes.txt"), "host notes\n")
	var err error
	if p.sent, err = RecordSent(context.Background(), p.host, "vm-1"); err != nil {
		t.Fatal(err)
	}
	p.guest = filepath.Join(t.TempDir(), "guest")
	copyTree(t, p.host, p.guest)

	writeFile(t, filepath.Join(p.guest, "dir", "b.txt"), "bee\nagent\n")
	tgit(t, p.guest, "commit", "-q", "-a", "-m", "agent: edit b")
	p.agent = tgit(t, p.guest, "rev-parse", "HEAD")
	writeFile(t, filepath.Join(p.guest, "a.txt"), "one\ntwo\nthree\nhost uncommitted\nagent uncommitted\n")
	writeFile(t, filepath.Join(p.guest, "new.txt"), "new\nfile\n")
	if err := os.Rename(filepath.Join(p.guest, "notes.txt"), filepath.Join(p.guest, "notes.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(p.guest, "passwd")); err != nil {
		t.Fatal(err)
	}
	if guestSetup != nil {
		guestSetup(t, p.guest)
	}
	tgit(t, p.guest, "add", "-A")
	tgit(t, p.guest, "commit", "-q", "-m", "banger: uncommitted work in VM vm-1")
	p.work = tgit(t, p.guest, "rev-parse", "HEAD")
	tgit(t, p.guest, "update-ref", "refs/banger/head", p.agent)
	tgit(t, p.guest, "update-ref", "refs/banger/work", p.work)
	p.bundle = bundleOf(t, p.guest, "refs/banger/work", "refs/banger/head", "^"+p.sent.Head, "^"+p.sent.Commit)
	return p
}

// privateTemp points os.TempDir at a fresh directory and returns it, so a
// test can tell that Close left nothing behind.
func privateTemp(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in the temporary directory: %s", e.Name())
	}
}

func TestPullToBranch(t *testing.T) {
	hermetic(t)
	marker := filepath.Join(t.TempDir(), "guest-code-ran")
	hostile := func(t *testing.T, guest string) {
		// What an agent may plant in its .git: hooks, an fsmonitor and a
		// hooks path, attributes naming drivers. None is in a bundle.
		hook := "#!/bin/sh\ntouch " + marker + "\n"
		for _, h := range []string{"post-checkout", "reference-transaction", "post-merge", "pre-auto-gc"} {
			if err := os.WriteFile(filepath.Join(guest, ".git", "hooks", h), []byte(hook), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		script := filepath.Join(guest, "fsmonitor.sh")
		if err := os.WriteFile(script, []byte(hook), 0o755); err != nil {
			t.Fatal(err)
		}
		tgit(t, guest, "config", "core.fsmonitor", script)
		tgit(t, guest, "config", "diff.evil.textconv", script)
		tgit(t, guest, "config", "filter.evil.smudge", script)
		writeFile(t, filepath.Join(guest, ".gitattributes"), "* diff=evil filter=evil\n")
	}
	p := newPull(t, hostile)
	os.Remove(marker) // the guest's own git ran its hooks while it worked
	tmp := privateTemp(t)
	before := takeSnapshot(t, p.host)
	ctx := context.Background()

	w, err := Open(ctx, p.host, bytes.NewReader(p.bundle), int64(len(p.bundle)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if w.Head != p.agent || w.Tip != p.work {
		t.Errorf("Head, Tip = %s, %s; want %s, %s", w.Head, w.Tip, p.agent, p.work)
	}
	if d := cmp.Diff(before, takeSnapshot(t, p.host)); d != "" {
		t.Errorf("Open changed the host repository (-before +after):\n%s", d)
	}

	commits, err := w.Commits(ctx, p.sent.Commit)
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, c := range commits {
		subjects = append(subjects, c.ID[:7]+" "+c.Subject+" / "+c.Author)
	}
	wantSubjects := []string{
		p.work[:7] + " banger: uncommitted work in VM vm-1 / tester <tester@example.com>",
		p.agent[:7] + " agent: edit b / tester <tester@example.com>",
	}
	if d := cmp.Diff(wantSubjects, subjects); d != "" {
		t.Errorf("Commits (-want +got):\n%s", d)
	}

	files, err := w.Files(ctx, p.sent.Commit, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []api.WorkspaceFile{
		{Path: ".gitattributes", Status: api.FileAdded, Added: 1},
		{Path: "a.txt", Status: api.FileModified, Added: 1},
		{Path: "dir/b.txt", Status: api.FileModified, Added: 1},
		{Path: "fsmonitor.sh", Status: api.FileAdded, Added: 2},
		{Path: "new.txt", Status: api.FileAdded, Added: 2},
		{Path: "notes.md", OldPath: "notes.txt", Status: api.FileRenamed},
		{Path: "passwd", Status: api.FileAdded, Added: 1},
	}
	if d := cmp.Diff(wantFiles, files); d != "" {
		t.Errorf("Files (-want +got):\n%s", d)
	}
	limited, err := w.Files(ctx, p.sent.Commit, []string{"dir"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantFiles[2:3], limited); d != "" {
		t.Errorf("Files limited to dir (-want +got):\n%s", d)
	}
	var patch bytes.Buffer
	if err := w.Patch(ctx, p.sent.Commit, nil, &patch); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"diff --git a/new.txt b/new.txt\n", "+agent uncommitted\n", "rename from notes.txt\n", "new file mode 120000\n"} {
		if !strings.Contains(patch.String(), want) {
			t.Errorf("patch lacks %q:\n%s", want, patch.String())
		}
	}

	ref, err := w.Branch(ctx, "banger/vm-1", false)
	if err != nil {
		t.Fatalf("Branch: %v", err)
	}
	if ref != "refs/heads/banger/vm-1" {
		t.Errorf("ref = %q", ref)
	}
	if got := tgit(t, p.host, "rev-parse", ref); got != p.work {
		t.Errorf("%s = %s, want the work %s", ref, got, p.work)
	}
	if got := tgit(t, p.host, "rev-list", "--count", ref, "^"+p.sent.Head); got != "2" {
		t.Errorf("the branch has %s commits on top of the sent HEAD, want 2 (the agent's and the uncommitted work)", got)
	}
	// The symlink arrives as a symlink blob; nothing is checked out.
	if got := tgit(t, p.host, "ls-tree", ref, "passwd"); !strings.HasPrefix(got, "120000 blob ") {
		t.Errorf("passwd in the branch = %q, want a symlink entry", got)
	}
	if got := tgit(t, p.host, "cat-file", "-p", ref+":passwd"); got != "/etc/passwd" {
		t.Errorf("symlink target = %q", got)
	}

	after := takeSnapshot(t, p.host)
	if d := cmp.Diff(before, after, cmpopts.IgnoreFields(snapshot{}, "Refs", "Objects")); d != "" {
		t.Errorf("Branch changed the host beyond refs and objects (-before +after):\n%s", d)
	}
	wantRefs := strings.TrimSpace(before.Refs + "\n" + p.work + " refs/heads/banger/vm-1")
	if d := cmp.Diff(sortedLines(wantRefs), sortedLines(after.Refs)); d != "" {
		t.Errorf("refs (-want +got):\n%s", d)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("code the guest planted ran on the host (%s exists)", marker)
	}
	if out := tgit(t, p.host, "fsck", "--strict", "--no-dangling"); out != "" {
		t.Errorf("host fsck: %s", out)
	}

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	assertEmptyDir(t, tmp)
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return cmpSorted(lines)
}

func cmpSorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestBranchRefusals(t *testing.T) {
	hermetic(t)
	p := newPull(t, nil)
	ctx := context.Background()
	w, err := Open(ctx, p.host, bytes.NewReader(p.bundle), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tgit(t, p.host, "branch", "taken", p.sent.Head)
	before := takeSnapshot(t, p.host)

	tests := []struct {
		name, branch string
		force        bool
		wantIs       error
		wantMsg      []string
	}{
		{name: "existing branch", branch: "taken", wantIs: ErrBranchExists, wantMsg: []string{"--force", "--branch", "taken"}},
		{name: "checked-out branch, even forced", branch: "main", force: true, wantMsg: []string{"checked out", "--branch"}},
		{name: "previous-branch syntax", branch: "@{-1}", wantMsg: []string{"not a valid branch name"}},
		{name: "option-like", branch: "-f", wantMsg: []string{"not a valid branch name"}},
		{name: "double dot", branch: "a..b", wantMsg: []string{"not a valid branch name"}},
		{name: "HEAD", branch: "HEAD", wantMsg: []string{"not a valid branch name"}},
		{name: "empty", branch: "", wantMsg: []string{"not a valid branch name"}},
		{name: "control character", branch: "a\x1bb", wantMsg: []string{"not a valid branch name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.Branch(ctx, tt.branch, tt.force)
			if err == nil {
				t.Fatal("Branch succeeded, want refused")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %v, want it to mention %q", err, m)
				}
			}
			if d := cmp.Diff(before, takeSnapshot(t, p.host)); d != "" {
				t.Errorf("a refused Branch changed the host (-before +after):\n%s", d)
			}
		})
	}

	t.Run("force replaces", func(t *testing.T) {
		ref, err := w.Branch(ctx, "taken", true)
		if err != nil {
			t.Fatal(err)
		}
		if got := tgit(t, p.host, "rev-parse", ref); got != p.work {
			t.Errorf("taken = %s after --force, want %s", got, p.work)
		}
		after := takeSnapshot(t, p.host)
		if d := cmp.Diff(before, after, cmpopts.IgnoreFields(snapshot{}, "Refs", "Objects")); d != "" {
			t.Errorf("forced Branch changed the host beyond refs and objects:\n%s", d)
		}
	})
}

func TestOpenRefuses(t *testing.T) {
	hermetic(t)
	tests := []struct {
		name string
		// bundle makes the bundle from a pull's guest.
		bundle  func(t *testing.T, p *pull) []byte
		max     int64 // 0: the bundle's size
		wantIs  error
		wantMsg []string
	}{
		{
			name:    "larger than pull.max_size",
			bundle:  func(t *testing.T, p *pull) []byte { return p.bundle },
			max:     -1,
			wantIs:  ErrTooLarge,
			wantMsg: []string{"pull.max_size"},
		},
		{
			name: "an extra ref",
			bundle: func(t *testing.T, p *pull) []byte {
				return bundleOf(t, p.guest, "refs/banger/work", "refs/heads/main", "^"+p.sent.Head)
			},
			wantIs:  ErrBadBundle,
			wantMsg: []string{`"refs/heads/main"`},
		},
		{
			name: "no work ref",
			bundle: func(t *testing.T, p *pull) []byte {
				return bundleOf(t, p.guest, "refs/banger/head", "^"+p.sent.Head)
			},
			wantIs:  ErrBadBundle,
			wantMsg: []string{"lacks refs/banger/work"},
		},
		{
			name: "a v3 bundle with a filter (a partial pack)",
			bundle: func(t *testing.T, p *pull) []byte {
				b := bundleOf(t, p.guest, "refs/banger/work", "^"+p.sent.Head, "--version=3")
				return bytes.Replace(b, []byte("@object-format=sha1\n"), []byte("@object-format=sha1\n@filter=blob:none\n"), 1)
			},
			wantIs:  ErrBadBundle,
			wantMsg: []string{"capability"},
		},
		{
			name: "a v3 bundle of another object format",
			bundle: func(t *testing.T, p *pull) []byte {
				b := bundleOf(t, p.guest, "refs/banger/work", "^"+p.sent.Head, "--version=3")
				return bytes.Replace(b, []byte("@object-format=sha1\n"), []byte("@object-format=sha256\n"), 1)
			},
			wantIs:  ErrBadBundle,
			wantMsg: []string{"capability"},
		},
		{
			name: "a capability in a v2 bundle",
			bundle: func(t *testing.T, p *pull) []byte {
				b := bundleOf(t, p.guest, "refs/banger/work", "^"+p.sent.Head)
				return bytes.Replace(b, []byte("# v2 git bundle\n"), []byte("# v2 git bundle\n@object-format=sha1\n"), 1)
			},
			wantIs:  ErrBadBundle,
			wantMsg: []string{"capability"},
		},
		{
			name:   "not a bundle",
			bundle: func(t *testing.T, p *pull) []byte { return []byte("#!/bin/sh\necho hi\n") },
			wantIs: ErrBadBundle,
		},
		{
			name:   "empty",
			bundle: func(t *testing.T, p *pull) []byte { return nil },
			wantIs: ErrBadBundle,
		},
		{
			name: "a ref line without an object id",
			bundle: func(t *testing.T, p *pull) []byte {
				return []byte("# v2 git bundle\nHEAD refs/banger/work\n\nPACK")
			},
			wantIs: ErrBadBundle,
		},
		{
			name: "a header without end",
			bundle: func(t *testing.T, p *pull) []byte {
				return []byte("# v2 git bundle\n-" + strings.Repeat("a", 40) + " " + strings.Repeat("x", maxHeader) + "\n")
			},
			max:    1 << 20,
			wantIs: ErrBadBundle,
		},
		{
			name: "a work ref naming a blob",
			bundle: func(t *testing.T, p *pull) []byte {
				blob := tgit(t, p.guest, "hash-object", "-w", "--stdin", "--path=x")
				tgit(t, p.guest, "update-ref", "refs/banger/work", blob)
				return bundleOf(t, p.guest, "refs/banger/work")
			},
			wantIs:  ErrBadBundle,
			wantMsg: []string{"not a commit"},
		},
		{
			name: "a missing prerequisite",
			bundle: func(t *testing.T, p *pull) []byte {
				return bundleOf(t, p.guest, "refs/banger/work", "^"+p.agent)
			},
			wantIs:  ErrMissingBase,
			wantMsg: []string{"lacks a commit", "pull into the repository the workspace came from"},
		},
		{
			name: "a tree entry .git/hooks/post-checkout",
			bundle: func(t *testing.T, p *pull) []byte {
				return hostileTree(t, p, func(blob []byte) []byte {
					return treeEntry("100755", ".git/hooks/post-checkout", blob)
				})
			},
			wantIs:  ErrBadBundle,
			wantMsg: []string{"fsck", "fullPathname", "hasDotgit"},
		},
		{
			name: "a tree entry .GIT/config",
			bundle: func(t *testing.T, p *pull) []byte {
				return hostileTree(t, p, func(blob []byte) []byte {
					inner := hashObject(t, p.guest, "tree", treeEntry("100644", "config", blob))
					return treeEntry("40000", ".GIT", inner)
				})
			},
			wantIs:  ErrBadBundle,
			wantMsg: []string{"fsck", "hasDotgit"},
		},
		{
			name: "a tree entry ..",
			bundle: func(t *testing.T, p *pull) []byte {
				return hostileTree(t, p, func(blob []byte) []byte {
					inner := hashObject(t, p.guest, "tree", treeEntry("100644", "passwd", blob))
					return treeEntry("40000", "..", inner)
				})
			},
			wantIs:  ErrBadBundle,
			wantMsg: []string{"fsck", "hasDotdot"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPull(t, nil)
			b := tt.bundle(t, p)
			max := tt.max
			switch max {
			case 0:
				max = int64(len(b))
			case -1:
				max = int64(len(b)) - 1
			}
			tmp := privateTemp(t)
			before := takeSnapshot(t, p.host)
			w, err := Open(context.Background(), p.host, bytes.NewReader(b), max)
			if err == nil {
				w.Close()
				t.Fatalf("Open succeeded, want refused")
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %v, want it to mention %q", err, m)
				}
			}
			if d := cmp.Diff(before, takeSnapshot(t, p.host)); d != "" {
				t.Errorf("a refused bundle changed the host (-before +after):\n%s", d)
			}
			assertEmptyDir(t, tmp)
		})
	}
}

// hostileTree makes in the guest a commit on top of the agent's whose
// tree is the agent's entries plus the raw entry entry(blob) makes (git
// mktree would refuse it), and bundles it as the work.
func hostileTree(t *testing.T, p *pull, entry func(blob []byte) []byte) []byte {
	t.Helper()
	blob := hashObject(t, p.guest, "blob", []byte("#!/bin/sh\ntouch /tmp/banger-pwned\n"))
	// Sorted before a.txt, so fsck finds nothing but what entry holds.
	raw := append(entry(blob), treeEntry("100644", "a.txt", hashObject(t, p.guest, "blob", []byte("a\n")))...)
	tree := hashObject(t, p.guest, "tree", raw)
	commit := tgit(t, p.guest, "commit-tree", "-p", p.agent, "-m", "hostile", fmt.Sprintf("%x", tree))
	tgit(t, p.guest, "update-ref", "refs/banger/work", commit)
	return bundleOf(t, p.guest, "refs/banger/work", "^"+p.sent.Head)
}

// hashObject writes content to the guest's object store as a kind
// object, unchecked, and returns its binary id.
func hashObject(t *testing.T, repo, kind string, content []byte) []byte {
	t.Helper()
	out, err := tgitErr(repo, content, "hash-object", "-t", kind, "--literally", "-w", "--stdin")
	if err != nil {
		t.Fatal(err)
	}
	var id []byte
	if _, err := fmt.Sscanf(out, "%x", &id); err != nil {
		t.Fatal(err)
	}
	return id
}

// treeEntry is one raw tree entry.
func treeEntry(mode, name string, id []byte) []byte {
	return append([]byte(mode+" "+name+"\x00"), id...)
}

// TestBranchChecksObjectsAgain plants an object fsck refuses in the
// staging repository after Open (as if index-pack had let it through):
// the fetch that makes the branch checks the objects it brings too.
func TestBranchChecksObjectsAgain(t *testing.T) {
	hermetic(t)
	p := newPull(t, nil)
	ctx := context.Background()
	w, err := Open(ctx, p.host, bytes.NewReader(p.bundle), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	blob := hashObject(t, w.staging, "blob", []byte("#!/bin/sh\n"))
	tree := hashObject(t, w.staging, "tree", treeEntry("100755", ".git/hooks/post-checkout", blob))
	commit := tgit(t, w.staging, "commit-tree", "-p", p.work, "-m", "planted", fmt.Sprintf("%x", tree))
	tgit(t, w.staging, "update-ref", "refs/banger/work", commit)
	before := takeSnapshot(t, p.host)

	_, err = w.Branch(ctx, "banger/vm-1", false)
	if err == nil || !strings.Contains(err.Error(), "hasDotgit") {
		t.Fatalf("Branch = %v, want refused by fsck (hasDotgit)", err)
	}
	// git's index-pack leaves its temporary pack (objects/pack/tmp_pack_*)
	// when it dies; git gc removes those. Nothing else may change.
	after := takeSnapshot(t, p.host)
	for rel := range after.Objects {
		if strings.HasPrefix(rel, "pack/tmp_pack_") {
			delete(after.Objects, rel)
		}
	}
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("a refused Branch changed the host (-before +after):\n%s", d)
	}
	if got := tgit(t, p.host, "for-each-ref", "refs/heads/banger"); got != "" {
		t.Errorf("a refused Branch made %s", got)
	}
}
