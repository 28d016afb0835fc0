package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/workimport"
	"github.com/bangerdev/banger/internal/shared/workspace"
	"github.com/spf13/cobra"
)

func newVMPullCmd(app *App) *cobra.Command {
	var (
		branch, into string
		force, apply bool
		asJSON       bool
	)
	c := &cobra.Command{
		Use:   "pull NAME [PATH] [--branch B | --apply | --into DIR]",
		Short: "Bring a VM's work home as a git branch",
		Long: `Bring the work done in a VM's /root/repo home: its commits since the workspace
was sent, as they are, plus one commit on top holding the changes not
committed in the guest (untracked files included, ignored ones not), become
a branch of the host repository (default: banger/NAME) in PATH, by default
the checkout the workspace was sent from. Your working tree, index and
current branch are not touched: review the branch with git log -p, then
merge it. An existing branch is refused unless --force. --apply instead
applies the work to the working tree of PATH, which must be clean (no
uncommitted changes to tracked files); it applies whole or not at all.

The guest is not trusted. Its work arrives as a git bundle, bounded by
pull.max_size (default 1GiB), that is checked and fetched into a private
staging repository first (git's fsck on every object, hooks off); nothing
of the guest's .git/config, hooks or attributes reaches the host; the only
ref created is the branch. Symlinks stay symlinks inside the branch.

A workspace sent in full_copy mode has no history: --into DIR writes its
added and changed files into DIR, a new directory (never over the source
tree), with the same bounds as vm cp out of a guest; deleted files are
listed by vm diff.`,
		Example: `  banger vm pull demo
  git log -p main..banger/demo && git merge banger/demo
  banger vm pull demo ~/src/project --branch agent/try-2 --force
  banger vm pull demo --apply
  banger vm pull scratch --into ./scratch-work`,
		Args: rangeArgs(1, 2, "a VM name and at most one repository path"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			name := args[0]
			if into != "" {
				if len(args) > 1 || branch != "" || force || apply {
					return usageError("--into takes no PATH, --branch, --force or --apply: it writes a full_copy workspace's changed files into a new directory")
				}
				ws, st, err := frontend.PullInto(ctx, cl, name, into, cfg.Pull.MaxBytes)
				if err != nil {
					return pullError(err)
				}
				if asJSON {
					return printJSON(app.Stdout, map[string]any{"workspace": ws, "into": into, "files": st.Files, "dirs": st.Dirs, "symlinks": st.Symlinks, "bytes": st.Bytes})
				}
				abs, _ := filepath.Abs(into)
				fmt.Fprintf(app.Stdout, "wrote the changed files of %s:%s into %s: %d files, %d symlinks, %s\n", name, ws.Dir, abs, st.Files, st.Symlinks, fmtBytes(st.Bytes))
				fmt.Fprintf(app.Stdout, "deleted files are not in it: see `banger vm diff %s`\n", name)
				return nil
			}
			if apply && (branch != "" || force) {
				return usageError("--apply changes the working tree instead of making a branch: drop --branch and --force")
			}
			req := frontend.PullRequest{VM: name, Branch: branch, Force: force, Apply: apply, MaxBytes: cfg.Pull.MaxBytes}
			if len(args) > 1 {
				req.Repo = args[1]
			}
			res, err := frontend.Pull(ctx, cl, req)
			if err != nil {
				return pullError(err)
			}
			if asJSON {
				return printJSON(app.Stdout, res)
			}
			printPull(app.Stdout, name, res)
			return nil
		}),
	}
	c.Flags().StringVar(&branch, "branch", "", "branch to create (default banger/NAME)")
	c.Flags().BoolVar(&force, "force", false, "replace the branch if it exists")
	c.Flags().BoolVar(&apply, "apply", false, "apply the work to the (clean) working tree instead of making a branch")
	c.Flags().StringVar(&into, "into", "", "full_copy workspaces: write the changed files into this new directory")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

// printPull says what a pull made and what to do next.
func printPull(w io.Writer, vm string, res frontend.PullResult) {
	if len(res.Commits) == 0 && len(res.Files) == 0 {
		fmt.Fprintf(w, "nothing changed in %s:%s since it was sent: no branch made\n", vm, res.Workspace.Dir)
		return
	}
	commits := fmt.Sprintf("%d %s from the guest", len(res.Commits), plural(len(res.Commits), "commit", "commits"))
	if res.Uncommitted {
		commits += " + 1 of its uncommitted changes"
	}
	if res.Applied {
		fmt.Fprintf(w, "applied the work of %s (%s) to the working tree of %s\n", vm, commits, res.Repo)
	} else {
		fmt.Fprintf(w, "branch %s in %s at %s: %s\n", res.Branch, res.Repo, short(res.Tip), commits)
	}
	printStat(w, res.Files)
	if res.Truncated {
		fmt.Fprintf(w, " (more files changed than the %d listed)\n", len(res.Files))
	}
	if !res.Applied {
		fmt.Fprintf(w, "review: git -C %s log -p %s..%s\nmerge:  git -C %s merge %s\n", res.Repo, short(res.Workspace.Sent), res.Branch, res.Repo, res.Branch)
	}
}

// pullError adds the fix to the refusals a pull's user can act on.
func pullError(err error) error {
	switch {
	case errors.Is(err, workspace.ErrWouldReplace):
		return fmt.Errorf("%w: --into writes a new directory: name one that does not exist", err)
	case errors.Is(err, workimport.ErrTooLarge), errors.Is(err, workspace.ErrTooLarge):
		return fmt.Errorf("%w: raise pull.max_size (max_size = \"4GiB\" under [pull] in the file `banger config path` names) if you trust the VM's work", err)
	}
	return err
}
