package frontend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/workimport"
	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/workspace"
)

// PullRequest asks for a git-mode VM's work as a branch of a host
// repository (or applied to its working tree).
type PullRequest struct {
	VM string
	// Repo is the host repository; "" is the checkout the workspace was
	// sent from.
	Repo string
	// Branch is the branch to create; "" is DefaultBranch(VM).
	Branch string
	// Force replaces an existing branch.
	Force bool
	// Apply applies the work to Repo's working tree (which must be clean)
	// instead of creating a branch.
	Apply bool
	// MaxBytes bounds the bundle (the user's pull.max_size).
	MaxBytes int64
}

// PullResult is what a pull brought home.
type PullResult struct {
	Workspace api.Workspace
	// Repo is the top of the host repository pulled into.
	Repo string
	// Branch is the branch created (not set by an apply, nor when nothing
	// changed since the workspace was sent: then nothing is made).
	Branch string
	// Tip is the commit the branch points at (or that was applied); Head
	// the guest's last commit under it.
	Tip, Head string
	// Uncommitted says Tip is a commit banger made of the guest's
	// uncommitted changes.
	Uncommitted bool
	// Commits are the guest's own commits, newest first (the one of its
	// uncommitted changes is not among them).
	Commits []api.WorkspaceCommit
	Files   []api.WorkspaceFile
	// Truncated says more files changed than Files lists (10000).
	Truncated bool
	Applied   bool
}

// DefaultBranch is the branch `vm pull` creates for a VM's work.
func DefaultBranch(vm string) string { return "banger/" + vm }

// Pull brings a git-mode VM's work home: the guest's commits since the
// workspace was sent, plus one commit holding its uncommitted changes,
// arrive as a git bundle that is verified in a private staging repository
// (workimport.Open: fsck, no hooks, nothing of the guest's configuration)
// and become a branch of the host repository, or are applied to its
// clean working tree. The host's working tree, index and HEAD are never
// touched to make a branch.
func Pull(ctx context.Context, cl *client.Client, req PullRequest) (PullResult, error) {
	v, err := cl.VM(ctx, req.VM)
	if err != nil {
		return PullResult{}, err
	}
	ws, err := sentWorkspace(v)
	if err != nil {
		return PullResult{}, err
	}
	if ws.Mode != api.WorkspaceGit {
		return PullResult{}, api.Errorf(api.CodeFailedPrecondition, "the workspace of VM %s was sent in %s mode, which has no history to pull as a branch: get its changed files with `banger vm pull %s --into DIR`", v.Name, ws.Mode, v.Name)
	}
	res := PullResult{Workspace: ws, Repo: req.Repo}
	if res.Repo == "" {
		res.Repo = ws.HostPath
	}
	pr, pw := io.Pipe()
	fetched := make(chan error, 1)
	go func() {
		err := cl.WorkspaceBundle(ctx, v.Name, req.MaxBytes, pw)
		pw.CloseWithError(err)
		fetched <- err
	}()
	work, err := workimport.Open(ctx, res.Repo, pr, req.MaxBytes)
	pr.CloseWithError(io.ErrClosedPipe)
	if ferr := <-fetched; ferr != nil && !errors.Is(ferr, io.ErrClosedPipe) {
		err = ferr // the daemon's reason is the real one
	}
	if err != nil {
		return res, fmt.Errorf("pulling the work of %s: %w", v.Name, err)
	}
	defer work.Close()
	res.Tip, res.Head, res.Uncommitted = work.Tip, work.Head, work.Tip != work.Head
	base := ws.Sent
	if res.Commits, err = work.Commits(ctx, base); err != nil {
		return res, err
	}
	if res.Uncommitted && len(res.Commits) > 0 && res.Commits[0].ID == res.Tip {
		// The guest's own commits: the one banger made of its uncommitted
		// changes is counted apart (Uncommitted).
		res.Commits = res.Commits[1:]
	}
	if res.Files, err = work.Files(ctx, base, nil); err != nil {
		return res, err
	}
	if len(res.Files) > agentproto.MaxChangedFiles {
		res.Files, res.Truncated = res.Files[:agentproto.MaxChangedFiles], true
	}
	if len(res.Commits) == 0 && len(res.Files) == 0 {
		return res, nil // nothing changed since it was sent: nothing to make
	}
	if req.Apply {
		if err := work.Apply(ctx, base); err != nil {
			return res, err
		}
		res.Applied = true
		return res, nil
	}
	branch := req.Branch
	if branch == "" {
		branch = DefaultBranch(v.Name)
	}
	ref, err := work.Branch(ctx, branch, req.Force)
	res.Branch = strings.TrimPrefix(ref, "refs/heads/")
	return res, err
}

// PullInto writes the added and changed files of a full_copy VM's
// workspace into dir, a directory that must not exist yet (its parent
// must). The stream comes from the guest and is placed as an untrusted
// one: the name is ours, modes are masked by the user's umask, at most
// maxBytes are written, symlinks are created as links and never
// followed, and nothing outside dir is written.
func PullInto(ctx context.Context, cl *client.Client, vm, dir string, maxBytes int64) (api.Workspace, workspace.Stats, error) {
	v, err := cl.VM(ctx, vm)
	if err != nil {
		return api.Workspace{}, workspace.Stats{}, err
	}
	ws, err := sentWorkspace(v)
	if err != nil {
		return ws, workspace.Stats{}, err
	}
	if ws.Mode != api.WorkspaceFullCopy {
		return ws, workspace.Stats{}, api.Errorf(api.CodeFailedPrecondition, "the workspace of VM %s was sent in git mode: pull it as a branch with `banger vm pull %s` (a new directory of changed files is for full_copy workspaces)", v.Name, v.Name)
	}
	if _, err := os.Lstat(dir); err == nil {
		return ws, workspace.Stats{}, fmt.Errorf("%s exists: a pull writes a new directory, never over one: name a path that does not exist yet", dir)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Clean(dir))); err != nil {
		return ws, workspace.Stats{}, fmt.Errorf("the parent of %s: %w: create it first", dir, err)
	}
	pr, pw := io.Pipe()
	fetched := make(chan error, 1)
	go func() {
		err := cl.WorkspaceFiles(ctx, v.Name, maxBytes, pw)
		pw.CloseWithError(err)
		fetched <- err
	}()
	_, st, err := workspace.Place(ctx, pr, dir, workspace.ExtractOptions{
		Name: "work", Umask: workspace.ProcessUmask(), MaxBytes: maxBytes, NoReplace: true,
	})
	pr.CloseWithError(io.ErrClosedPipe)
	if ferr := <-fetched; ferr != nil && !errors.Is(ferr, io.ErrClosedPipe) {
		err = ferr
	}
	if err != nil {
		return ws, st, fmt.Errorf("pulling the changed files of %s: %w", v.Name, err)
	}
	return ws, st, nil
}

// sentWorkspace is what was sent into v's workspace, or the error naming
// how to send one.
func sentWorkspace(v api.VM) (api.Workspace, error) {
	if v.Workspace == nil {
		return api.Workspace{}, api.Errorf(api.CodeFailedPrecondition, "nothing was sent into the workspace of VM %s: send a checkout with `banger vm workspace prepare %s [PATH]` (or create it with `banger vm run`) first", v.Name, v.Name)
	}
	return *v.Workspace, nil
}
