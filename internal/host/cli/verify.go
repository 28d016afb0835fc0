package cli

import (
	"context"
	"fmt"

	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newVerifyCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "verify",
		Short: "Report leaked resources (exit 1 when anything leaked)",
		Long: `List what no record explains: TAP devices that are neither pool capacity nor
leased to a VM, rules in banger's nftables table that banger would not make,
hypervisor processes and sockets without a running VM, and VM directories
without a VM. Idle tap-pool-N devices are capacity, not leaks.`,
		Example: "  banger verify\n  banger verify --json",
		Args:    noArgs,
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			rep, err := cl.Verify(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(app.Stdout, rep); err != nil {
					return err
				}
			} else if len(rep.Leaks) == 0 {
				fmt.Fprintln(app.Stdout, "nothing leaked")
			} else {
				t := newTable(app.Stdout, "KIND", "WHAT", "DETAIL")
				for _, l := range rep.Leaks {
					t.row(l.Kind, l.What, l.Detail)
				}
				t.flush()
			}
			if len(rep.Leaks) > 0 {
				return &exitError{code: ExitError}
			}
			return nil
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
