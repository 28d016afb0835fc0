package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/spf13/cobra"
)

func newVMDiffCmd(app *App) *cobra.Command {
	var patch, asJSON bool
	c := &cobra.Command{
		Use:   "diff NAME [-- PATHSPEC...]",
		Short: "Show what changed in a VM's workspace since it was sent",
		Long: `Show what changed in a VM's /root/repo since ` + "`vm workspace prepare`" + ` (or vm run)
sent it: the commits made in the guest and the changes not committed there,
untracked files included (ignored files are not). A diffstat by default,
the whole patch with -p, JSON for tools with --json. PATHSPECs after --
limit it, as they do for git diff.

The comparison runs in the guest, against what was sent (git mode: the
host's HEAD with the uncommitted state it carried; full_copy mode: the tree
as it was installed); nothing in the guest's working tree, index or refs
changes. It is the guest's account, shown with terminal controls escaped:
` + "`banger vm pull`" + ` brings the work itself home, verified, as a branch to review.`,
		Example: `  banger vm diff demo
  banger vm diff demo -p
  banger vm diff demo -- src/ '*.go'
  banger vm diff demo --json | jq -r '.files[].path'`,
		Args: func(c *cobra.Command, args []string) error {
			n := len(args)
			if dash := c.ArgsLenAtDash(); dash >= 0 {
				n = dash
			}
			if n != 1 {
				return usageError("vm diff wants a VM name, then optionally -- and pathspecs: banger vm diff NAME [-- PATHSPEC...]")
			}
			return nil
		},
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			name, pathspec := args[0], args[1:]
			if patch {
				cfg, err := app.Config()
				if err != nil {
					return err
				}
				out := app.Stdout
				if isTerminal(out) {
					sw := termsafe.NewWriter(out)
					defer sw.Close()
					out = sw
				}
				return cl.WorkspacePatch(ctx, name, cfg.Pull.MaxBytes, out, pathspec...)
			}
			d, err := cl.WorkspaceDiff(ctx, name, pathspec...)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, d)
			}
			printDiff(app.Stdout, d, time.Now())
			return nil
		}),
	}
	c.Flags().BoolVarP(&patch, "patch", "p", false, "print the whole patch (git diff --binary) instead of a diffstat")
	c.Flags().BoolVar(&asJSON, "json", false, "print the commits and changed files as JSON")
	c.MarkFlagsMutuallyExclusive("patch", "json")
	return c
}

// printDiff renders a workspace diff: where it came from, the guest's
// commits, whether anything is uncommitted, and a diffstat. Everything
// from the guest is escaped.
func printDiff(w io.Writer, d api.WorkspaceDiff, now time.Time) {
	ws := d.Workspace
	from := ws.HostPath
	if ws.Head != "" {
		from += " at " + short(ws.Head)
	}
	fmt.Fprintf(w, "%s:%s, sent from %s (%s mode, %s)\n", d.VM, ws.Dir, from, ws.Mode, fmtAge(now, ws.PreparedAt))
	if len(d.Commits) == 0 && len(d.Files) == 0 {
		fmt.Fprintln(w, "nothing changed since it was sent")
		return
	}
	switch len(d.Commits) {
	case 0:
		fmt.Fprintln(w, "no commits in the guest")
	case 1:
		fmt.Fprintln(w, "1 commit in the guest:")
	default:
		fmt.Fprintf(w, "%d commits in the guest:\n", len(d.Commits))
	}
	for _, c := range d.Commits {
		fmt.Fprintf(w, "  %s %s (%s, %s)\n", short(c.ID), termsafe.Line(c.Subject), termsafe.Line(c.Author), fmtAge(now, c.Time))
	}
	if d.Uncommitted {
		fmt.Fprintln(w, "and changes not committed in the guest (untracked files included)")
	}
	fmt.Fprintln(w)
	printStat(w, d.Files)
	if d.Truncated {
		fmt.Fprintf(w, " (more files changed than the %d listed: narrow it with -- PATHSPEC)\n", len(d.Files))
	}
}

// printStat writes a diffstat in git's layout: path, count, a bar of +
// and -, and a summary line.
func printStat(w io.Writer, files []api.WorkspaceFile) {
	const barWidth = 40
	width, most, added, deleted := 0, 0, 0, 0
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = termsafe.Line(f.Path)
		if f.Status == api.FileRenamed {
			names[i] = termsafe.Line(f.OldPath) + " => " + names[i]
		}
		width = max(width, len(names[i]))
		most = max(most, f.Added+f.Deleted)
		added += f.Added
		deleted += f.Deleted
	}
	for i, f := range files {
		switch {
		case f.Binary:
			fmt.Fprintf(w, " %-*s | Bin\n", width, names[i])
		default:
			plus, minus := f.Added, f.Deleted
			if most > barWidth {
				plus, minus = scaled(f.Added, most, barWidth), scaled(f.Deleted, most, barWidth)
			}
			fmt.Fprintf(w, " %-*s | %d %s%s\n", width, names[i], f.Added+f.Deleted, strings.Repeat("+", plus), strings.Repeat("-", minus))
		}
	}
	fmt.Fprintf(w, " %d %s changed, %d %s(+), %d %s(-)\n", len(files), plural(len(files), "file", "files"),
		added, plural(added, "insertion", "insertions"), deleted, plural(deleted, "deletion", "deletions"))
}

// scaled is n of most in width columns, at least one when n > 0.
func scaled(n, most, width int) int {
	if n == 0 {
		return 0
	}
	return max(1, n*width/most)
}

// short is a commit id's first 12 digits.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
