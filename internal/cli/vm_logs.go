package cli

import (
	"context"

	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newVMLogsCmd(app *App) *cobra.Command {
	var follow bool
	c := &cobra.Command{
		Use:     "logs NAME",
		Short:   "Print a VM's serial console (-f to follow)",
		Long:    "Print the VM's serial console log (kernel, init and systemd output). The log is bounded in size; the oldest part is dropped first.",
		Example: "  banger vm logs demo\n  banger vm logs demo -f",
		Args:    exactArgs(1, "a vm name"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			return cl.Console(ctx, args[0], follow, app.Stdout)
		}),
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the console writes")
	return c
}
