package cli

import (
	"context"
	"fmt"
	"sync"

	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/spf13/cobra"
)

func newVMDeleteCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete VMs and everything they had (process, disks, TAP, address)",
		Long:    "Delete one or more VMs at once; they are deleted concurrently.",
		Example: "  banger vm delete demo\n  banger vm delete $(banger vm list --json | jq -r '.vms[].name')",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("vm delete wants one or more vm names (see `banger vm delete --help`)")
			}
			return nil
		},
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			// Deleted concurrently, reported in the order given, so the
			// output is the same from run to run.
			errs := make([]error, len(args))
			var wg sync.WaitGroup
			for i, name := range args {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := cl.DeleteVM(ctx, name); err != nil {
						errs[i] = fmt.Errorf("%s: %w", name, err)
						return
					}
					forgetCursors(app, name, "")
				}()
			}
			wg.Wait()
			var failed []error
			for i, name := range args {
				if errs[i] == nil {
					fmt.Fprintf(app.Stdout, "deleted vm %s\n", name)
				} else {
					failed = append(failed, errs[i])
				}
			}
			if len(failed) == 0 {
				return nil
			}
			// One line per VM that was not deleted, each as Run prints
			// an error (the last is Run's own).
			for _, err := range failed[:len(failed)-1] {
				fmt.Fprintf(app.Stderr, "banger: %s\n", termsafe.Text(err.Error()))
			}
			return failed[len(failed)-1]
		}),
	}
}
