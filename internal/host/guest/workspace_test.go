package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// gitRepo makes a repository in a temporary directory with one commit,
// and returns it with that commit's id.
func gitRepo(t *testing.T) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: apt-get install git")
	}
	dir := t.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-qm", "first"}} {
		if args[0] == "add" {
			os.WriteFile(filepath.Join(dir, "a.txt"), []byte("one\n"), 0o644)
		}
		git(t, dir, args...)
	}
	return dir, strings.TrimSpace(git(t, dir, "rev-parse", "HEAD"))
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@example.com", "-c", "user.name=t"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// The daemon's side of vm diff and vm pull over a real agent: the diff
// summary is the guest's account, checked and converted; the patch and
// the bundle are relayed bounded; requests the workspace's record does not
// allow are refused naming the fix.
func TestWorkspaceDiffAndPull(t *testing.T) {
	s, f, _ := setup(t)
	ctx := context.Background()
	repo, sent := gitRepo(t)

	if _, err := s.WorkspaceDiff(ctx, "g", nil); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "banger vm workspace prepare g") {
		t.Fatalf("diff with nothing sent: %v", err)
	}
	if err := f.SetWorkspace(ctx, "g", api.Workspace{Dir: repo, Mode: api.WorkspaceGit, HostPath: "/src/x", Head: sent, Sent: sent}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(repo, "a.txt"), []byte("one\ntwo\n"), 0o644)
	git(t, repo, "commit", "-qam", "agent: two")
	os.WriteFile(filepath.Join(repo, "new.txt"), []byte("new\n"), 0o644)

	d, err := s.WorkspaceDiff(ctx, "g", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Commits) != 1 || d.Commits[0].Subject != "agent: two" || !d.Uncommitted || len(d.Files) != 2 || d.Added != 2 || d.Workspace.Sent != sent || d.VM != "g" {
		t.Errorf("diff: %+v", d)
	}
	if d, err := s.WorkspaceDiff(ctx, "g", []string{"new.txt"}); err != nil || len(d.Files) != 1 || d.Files[0].Status != api.FileAdded {
		t.Errorf("diff -- new.txt: %+v %v", d, err)
	}
	var patch bytes.Buffer
	if err := s.WorkspacePatch(ctx, "g", nil, 0, &patch); err != nil || !strings.Contains(patch.String(), "+two") {
		t.Errorf("patch: %v\n%s", err, patch.String())
	}
	if err := s.WorkspacePatch(ctx, "g", nil, 10, &bytes.Buffer{}); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "pull.max_size") {
		t.Errorf("patch over its bound: %v", err)
	}
	var bundle bytes.Buffer
	if err := s.WorkspaceBundle(ctx, "g", 0, &bundle); err != nil || !strings.HasPrefix(bundle.String(), "# v2 git bundle\n-"+sent) {
		t.Errorf("bundle: %v %q", err, bundle.String()[:min(80, bundle.Len())])
	}
	if err := s.WorkspaceFiles(ctx, "g", 0, &bytes.Buffer{}); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "banger vm pull g") {
		t.Errorf("files of a git workspace: %v", err)
	}
	if err := f.SetWorkspace(ctx, "g", api.Workspace{Dir: repo, Mode: api.WorkspaceGit, HostPath: "/src/x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WorkspaceDiff(ctx, "g", nil); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "send it again") {
		t.Errorf("diff of a workspace an older banger sent: %v", err)
	}
	if _, err := s.WorkspaceDiff(ctx, "g", []string{"a\x00b"}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("pathspec with a NUL: %v", err)
	}
}

// A guest's diff summary is checked before it is passed on: commit ids,
// statuses, paths and counts of the wrong shape are refused, bounds hold.
func TestCheckChanges(t *testing.T) {
	id := strings.Repeat("a", 40)
	ok := agentproto.Changes{Base: id, Head: id, Work: id,
		Commits: []agentproto.ChangedCommit{{ID: id, Subject: "s"}},
		Files:   []agentproto.ChangedFile{{Path: "a", Status: api.FileModified, Added: 1, Deleted: 2}, {Path: "b", OldPath: "c", Status: api.FileRenamed}}}
	tests := []struct {
		name   string
		change func(*agentproto.Changes)
		want   string // "" accepts
	}{
		{"well formed", func(*agentproto.Changes) {}, ""},
		{"short head", func(c *agentproto.Changes) { c.Head = "abc" }, `"abc" where a commit id belongs`},
		{"upper-case commit", func(c *agentproto.Changes) { c.Commits[0].ID = strings.Repeat("A", 40) }, "where a commit id belongs"},
		{"unknown status", func(c *agentproto.Changes) { c.Files[0].Status = "copied" }, `file status "copied"`},
		{"rename without its old path", func(c *agentproto.Changes) { c.Files[1].OldPath = "" }, "without the paths its status needs"},
		{"old path on a modification", func(c *agentproto.Changes) { c.Files[0].OldPath = "x" }, "without the paths its status needs"},
		{"empty path", func(c *agentproto.Changes) { c.Files[0].Path = "" }, "without the paths its status needs"},
		{"negative count", func(c *agentproto.Changes) { c.Files[0].Added = -1 }, "line counts -1"},
		{"too many files", func(c *agentproto.Changes) {
			c.Files = make([]agentproto.ChangedFile, agentproto.MaxChangedFiles+1)
		}, "more than the 1000 and 10000 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c agentproto.Changes
			b, _ := json.Marshal(ok)
			json.Unmarshal(b, &c)
			tt.change(&c)
			d, err := checkChanges(c)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want == "" && (d.Added != 1 || d.Deleted != 2 || !d.Uncommitted || len(d.Files) != 2):
				t.Errorf("converted to %+v", d)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want it to hold %q", err, tt.want)
			}
		})
	}
}
