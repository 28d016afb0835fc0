package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/bangerdev/banger/internal/shared/workspace"
	"github.com/spf13/cobra"
)

func newVMWorkspaceCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "workspace",
		Short: "Copy a host checkout into a VM as /root/repo",
		Example: `  banger vm workspace prepare demo
  banger vm workspace prepare demo ~/src/project --mode full_copy`,
	}
	c.AddCommand(newVMWorkspacePrepareCmd(app))
	return c
}

func newVMWorkspacePrepareCmd(app *App) *cobra.Command {
	var mode, dir string
	c := &cobra.Command{
		Use:   "prepare NAME [PATH] [--mode git|full_copy]",
		Short: "Copy a checkout (default: the current directory) to /root/repo",
		Long: `Copy a host checkout into a running VM as /root/repo, replacing what was there
atomically: the old tree stays in place until the new one is complete.

--mode git (the default) copies what git tracks or would track — tracked
files with their uncommitted changes, untracked files that .gitignore does
not exclude — plus .git, so the guest has the history. Submodules are
refused: use --mode full_copy. --mode full_copy copies the whole tree,
ignored files and submodules included.

Modes, executable bits and symlinks survive; the guest agent refuses any
entry that would land outside /root/repo. The copy is packed here, as you,
so it can only contain what you can read.`,
		Example: `  banger vm workspace prepare demo
  banger vm workspace prepare demo ~/src/project
  banger vm workspace prepare demo . --mode full_copy`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError("vm workspace prepare wants a VM name and at most one path: banger vm workspace prepare NAME [PATH]")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			m, path, err := checkoutArgs(mode, args, 1)
			if err != nil {
				return err
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			_, err = prepareWorkspace(c.Context(), app, cl, args[0], path, dir, m)
			return err
		},
	}
	c.Flags().StringVar(&mode, "mode", "git", "git (tracked + untracked, .gitignore honoured, .git kept) or full_copy (the whole tree)")
	c.Flags().StringVar(&dir, "dir", "", "guest directory to install (default /root/repo)")
	return c
}

// checkoutArgs reads --mode and the optional checkout path at args[i]
// (default: the current directory).
func checkoutArgs(mode string, args []string, i int) (workspace.Mode, string, error) {
	m, err := workspace.ParseMode(mode)
	if err != nil {
		return "", "", usageError("--mode: %v", err)
	}
	if len(args) > i {
		return m, args[i], nil
	}
	return m, ".", nil
}

// prepareWorkspace packs path and installs it in the VM
// (frontend.PrepareWorkspace), reporting files, bytes and time on stderr.
func prepareWorkspace(ctx context.Context, app *App, cl *client.Client, vm, path, dir string, mode workspace.Mode) (api.TransferResult, error) {
	start := time.Now()
	res, err := frontend.PrepareWorkspace(ctx, cl, vm, path, dir, mode)
	if err != nil {
		return res, err
	}
	printWorkspace(app, vm, path, mode, res, time.Since(start))
	return res, nil
}

// printWorkspace says what a workspace copy installed where.
func printWorkspace(app *App, vm, path string, mode workspace.Mode, res api.TransferResult, took time.Duration) {
	fmt.Fprintf(app.Stderr, "workspace %s (%s mode) → %s:%s: %s\n", path, mode, vm, termsafe.Line(res.Path), transferSummary(res, took))
}
