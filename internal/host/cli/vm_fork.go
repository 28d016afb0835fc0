package cli

import (
	"context"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newVMForkCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "fork NAME [NEWNAME]",
		Short: "Copy a running VM (memory and disks) into a new VM, printing each stage live",
		Long: `Make a new VM that is a copy of a running one: the source is paused briefly
while its memory and device state are saved and its disks copied, then runs
on. The copy is restored from that state with its own identity: address,
MAC, hostname, machine-id, SSH host keys and a reseeded RNG. Its processes,
files and /root/repo are the source's as they were at the fork and diverge
after; its sessions are the source's, marked as forked. Without NEWNAME a
friendly name is generated.`,
		Example: `  banger vm fork demo
  banger vm fork demo demo-try2
  banger vm fork demo --json | jq -c 'select(.type=="stage_finished") | [.stage, .duration_ms]'`,
		Args: rangeArgs(1, 2, "a vm name and, optionally, the new VM's name"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			req := api.ForkVMRequest{}
			if len(args) == 2 {
				req.Name = args[1]
			}
			op, err := cl.BeginForkVM(ctx, args[0], req)
			if err != nil {
				return err
			}
			var v api.VM
			if printed, err := followResult(ctx, app, cl, op, asJSON, &v); !printed || err != nil {
				return err
			}
			return printNextSteps(ctx, app, cl, v, false)
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}
