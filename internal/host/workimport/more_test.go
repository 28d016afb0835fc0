package workimport

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// TestCommitsAreCapped has the guest make more commits than
// agentproto.MaxChangedCommits (with git fast-import): Commits returns
// the newest ones, newest first.
func TestCommitsAreCapped(t *testing.T) {
	hermetic(t)
	host := newHost(t)
	sent, err := RecordSent(context.Background(), host, "vm")
	if err != nil {
		t.Fatal(err)
	}
	guest := filepath.Join(t.TempDir(), "guest")
	copyTree(t, host, guest)
	n := agentproto.MaxChangedCommits + 5
	var stream bytes.Buffer
	for i := 1; i <= n; i++ {
		msg := fmt.Sprintf("agent commit %d", i)
		content := fmt.Sprintf("%d\n", i)
		fmt.Fprintf(&stream, "commit refs/banger/work\nmark :%d\ncommitter tester <tester@example.com> %d +0000\ndata %d\n%s\n", i, 1700000000+i, len(msg), msg)
		if i == 1 {
			fmt.Fprintf(&stream, "from %s\n", sent.Head)
		}
		fmt.Fprintf(&stream, "M 100644 inline counter.txt\ndata %d\n%s\n", len(content), content)
	}
	if _, err := tgitErr(guest, stream.Bytes(), "fast-import", "--quiet"); err != nil {
		t.Fatal(err)
	}
	bundle := bundleOf(t, guest, "refs/banger/work", "^"+sent.Head)
	ctx := context.Background()
	w, err := Open(ctx, host, bytes.NewReader(bundle), 1<<24)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Head != "" {
		t.Errorf("Head = %q for a bundle without %s", w.Head, agentproto.BundleRefHead)
	}
	commits, err := w.Commits(ctx, sent.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if len(commits) != agentproto.MaxChangedCommits {
		t.Fatalf("%d commits, want %d", len(commits), agentproto.MaxChangedCommits)
	}
	first, last := commits[0], commits[len(commits)-1]
	if first.ID != w.Tip || first.Subject != fmt.Sprintf("agent commit %d", n) || first.Time.Unix() != int64(1700000000+n) {
		t.Errorf("newest = %+v, want commit %d at the tip", first, n)
	}
	if last.Subject != fmt.Sprintf("agent commit %d", n-agentproto.MaxChangedCommits+1) {
		t.Errorf("oldest listed = %q", last.Subject)
	}
	files, err := w.Files(ctx, sent.Commit, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0] != (api.WorkspaceFile{Path: "counter.txt", Status: api.FileAdded, Added: 1}) {
		t.Errorf("Files = %+v", files)
	}
}

// TestLinkedWorktree sends from and pulls into a linked worktree: the
// staging repository borrows the shared objects, and the branch checked
// out in another worktree is refused.
func TestLinkedWorktree(t *testing.T) {
	hermetic(t)
	main := newHost(t)
	linked := filepath.Join(t.TempDir(), "linked")
	tgit(t, main, "worktree", "add", "-q", "-b", "feature", linked)
	writeFile(t, filepath.Join(linked, "untracked.txt"), "in the linked worktree\n")
	indexBefore := digest(t, filepath.Join(main, ".git", "worktrees", "linked", "index"))

	sent, err := RecordSent(context.Background(), linked, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if sent.Top != linked || sent.Commit == sent.Head {
		t.Fatalf("sent = %+v", sent)
	}
	if got := digest(t, filepath.Join(main, ".git", "worktrees", "linked", "index")); got != indexBefore {
		t.Errorf("the linked worktree's index changed")
	}
	guest := filepath.Join(t.TempDir(), "guest")
	tgit(t, main, "clone", "-q", "--no-local", main, guest)
	tgit(t, guest, "fetch", "-q", main, sent.Commit+":refs/banger/sent")
	tgit(t, guest, "checkout", "-q", "--detach", sent.Commit)
	writeFile(t, filepath.Join(guest, "agent.txt"), "agent\n")
	tgit(t, guest, "add", "-A")
	tgit(t, guest, "commit", "-q", "-m", "agent")
	tgit(t, guest, "update-ref", "refs/banger/work", "HEAD")
	bundle := bundleOf(t, guest, "refs/banger/work", "^"+sent.Commit)

	ctx := context.Background()
	w, err := Open(ctx, linked, bytes.NewReader(bundle), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Branch(ctx, "main", true); err == nil || !strings.Contains(err.Error(), "checked out") {
		t.Errorf("Branch(main) from the linked worktree = %v, want refused: checked out in the main worktree", err)
	}
	ref, err := w.Branch(ctx, "banger/vm", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := tgit(t, main, "rev-parse", ref); got != w.Tip {
		t.Errorf("%s in the main worktree = %s, want %s", ref, got, w.Tip)
	}
}

// TestSHA256Repository pulls into a repository with SHA-256 object ids.
func TestSHA256Repository(t *testing.T) {
	hermetic(t)
	host := filepath.Join(t.TempDir(), "host")
	if _, err := tgitErr(filepath.Dir(host), nil, "init", "-q", "--object-format=sha256", "-b", "main", host); err != nil {
		t.Skipf("this git cannot make a SHA-256 repository: %v", err)
	}
	writeFile(t, filepath.Join(host, "a.txt"), "a\n")
	tgit(t, host, "add", "-A")
	tgit(t, host, "commit", "-q", "-m", "first")
	sent, err := RecordSent(context.Background(), host, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if len(sent.Head) != 64 {
		t.Fatalf("Head = %q, want a SHA-256 id", sent.Head)
	}
	guest := filepath.Join(t.TempDir(), "guest")
	copyTree(t, host, guest)
	writeFile(t, filepath.Join(guest, "a.txt"), "b\n")
	tgit(t, guest, "commit", "-q", "-a", "-m", "agent")
	tgit(t, guest, "update-ref", "refs/banger/work", "HEAD")
	bundle := bundleOf(t, guest, "refs/banger/work", "^"+sent.Head)
	ctx := context.Background()
	w, err := Open(ctx, host, bytes.NewReader(bundle), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Branch(ctx, "banger/vm", false); err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(ctx, sent.Commit); err != nil {
		t.Fatal(err)
	}
	if got := tgit(t, host, "show", "HEAD:a.txt"); got != "a" {
		t.Errorf("HEAD moved: a.txt = %q", got)
	}
}

// TestV3BundleOfTheHostsFormat accepts what git bundle create --version=3
// makes in a SHA-1 repository: v3 with the object format only.
func TestV3BundleOfTheHostsFormat(t *testing.T) {
	hermetic(t)
	p := newPull(t, nil)
	b := bundleOf(t, p.guest, "refs/banger/work", "^"+p.sent.Head, "^"+p.sent.Commit, "--version=3")
	if !bytes.HasPrefix(b, []byte("# v3 git bundle\n@object-format=sha1\n")) {
		t.Fatalf("bundle starts %q", b[:40])
	}
	w, err := Open(context.Background(), p.host, bytes.NewReader(b), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Tip != p.work {
		t.Errorf("Tip = %s, want %s", w.Tip, p.work)
	}
}
