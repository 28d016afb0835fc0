package workimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// Branch creates the branch name in the host repository at the work's
// Tip, by a fetch from the staging repository (hooks off, objects checked
// again), and returns its full ref. It refuses an existing branch unless
// force, and always refuses the branch checked out in a work tree. The
// host's work tree, index and HEAD are not touched.
func (w *Work) Branch(ctx context.Context, name string, force bool) (string, error) {
	ref, err := checkBranchName(ctx, w.top, name)
	if err != nil {
		return "", err
	}
	if !force {
		if id, _ := resolveCommit(ctx, w.top, ref); id != "" {
			return "", fmt.Errorf("%w: %s is at %.12s in %s: pass --force to replace it, or --branch to name another",
				ErrBranchExists, name, id, w.top)
		}
	}
	spec := agentproto.BundleRefWork + ":" + ref
	if force {
		spec = "+" + spec
	}
	args := []string{
		"-c", "core.hooksPath=/dev/null",
		"-c", "transfer.fsckObjects=true",
		"-c", "fetch.fsckObjects=true",
		"-c", "protocol.file.allow=always",
		"fetch", "-q", "--no-tags", "--no-write-fetch-head", "--no-prune",
		"--no-auto-gc", "--no-auto-maintenance", "--recurse-submodules=no",
		w.staging, spec,
	}
	if _, err := git(ctx, w.top, args...); err != nil {
		stderr := stderrOf(err)
		switch {
		case strings.Contains(stderr, "refusing to fetch into"):
			return "", fmt.Errorf("%s is checked out in %s and banger never changes a checked-out branch: pass --branch to name another, or switch the checkout to another branch first", name, w.top)
		case strings.Contains(stderr, "rejected") && !force:
			return "", fmt.Errorf("%w: %s appeared in %s while pulling: pass --force to replace it, or --branch to name another", ErrBranchExists, name, w.top)
		}
		return "", fmt.Errorf("creating branch %s in %s: %w", name, w.top, err)
	}
	return ref, nil
}

// checkBranchName returns refs/heads/name, refusing a name git would not
// take as a branch or would expand (@{-1}, -).
func checkBranchName(ctx context.Context, top, name string) (string, error) {
	bad := func(err error) error {
		msg := fmt.Sprintf("%q is not a valid branch name (see git check-ref-format): pass another with --branch", name)
		if err != nil {
			return fmt.Errorf("%s: %w", msg, err)
		}
		return errors.New(msg)
	}
	if name == "" || strings.HasPrefix(name, "-") || name == "HEAD" {
		return "", bad(nil)
	}
	out, err := git(ctx, top, "check-ref-format", "--branch", name)
	if err != nil {
		return "", bad(err)
	}
	if oneLine(out) != name {
		return "", bad(nil)
	}
	ref := "refs/heads/" + name
	if _, err := git(ctx, top, "check-ref-format", ref); err != nil {
		return "", bad(err)
	}
	return ref, nil
}

// Apply applies the work's changes since base to the host's work tree,
// the whole patch or nothing, leaving the index and HEAD as they are. It
// refuses a work tree with uncommitted changes to tracked files.
func (w *Work) Apply(ctx context.Context, base string) error {
	if err := w.checkBase(ctx, base); err != nil {
		return err
	}
	status, err := git(ctx, w.top, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(status))) > 0 {
		return fmt.Errorf("%w in %s: commit them, or put them aside with `git stash`, then pull again; or pull to a branch (without --apply) and merge it",
			ErrDirty, w.top)
	}

	// The patch goes through a file rather than a pipe: a diff that fails
	// halfway must not leave git apply a truncated patch to apply.
	patch, err := os.CreateTemp(w.dir, "work-*.patch")
	if err != nil {
		return err
	}
	defer patch.Close()
	if _, err := (gitRun{dir: w.staging, args: w.patchArgs(base, nil), stdout: patch}).run(ctx); err != nil {
		return err
	}
	if _, err := patch.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := (gitRun{dir: w.top, args: []string{"apply", "--binary", "-"}, stdin: patch}).run(ctx); err != nil {
		if stderrOf(err) != "" {
			return fmt.Errorf("the VM's changes do not apply to %s (the checkout moved since the workspace was sent), nothing was changed: pull to a branch (without --apply) and merge it instead: %w", w.top, err)
		}
		return err
	}
	return nil
}
