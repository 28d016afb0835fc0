package cli

import (
	"context"
	"fmt"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/shared/sizetext"
	"github.com/spf13/cobra"
)

func newVMPauseCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "pause NAME",
		Short: "Save a running VM's whole state to disk and free its memory",
		Long: `Write the VM's memory and device state to a file in its directory, then end
its hypervisor: the VM's RAM is freed on the host. Its processes, sessions,
/root/repo and address are kept as they were; ` + "`banger vm resume`" + ` (or
` + "`banger vm start`" + `) restores it, after a daemon restart or a host reboot too.
` + "`banger vm stop`" + ` of a paused VM discards the saved state (the VM is then
stopped, as after a power cut). ` + "`banger vm list`" + ` shows the state's size.`,
		Example: `  banger vm pause demo
  banger vm list          # demo  paused (1.1GiB) …
  banger vm resume demo`,
		Args: exactArgs(1, "a vm name"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			op, err := cl.BeginPauseVM(ctx, args[0])
			if err != nil {
				return err
			}
			var v api.VM
			if printed, err := followResult(ctx, app, cl, op, asJSON, &v); !printed || err != nil {
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "vm %s is %s (%s of state on disk): `banger vm resume %s` restores it\n",
				v.Name, v.State, sizetext.Up(v.StateBytes), v.Name)
			return err
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}

func newVMResumeCmd(app *App) *cobra.Command {
	c := newVMBootCmd(app, "resume NAME", "Restore a paused VM as it was", `  banger vm resume demo
  banger vm resume demo --json | jq -c 'select(.type=="stage_finished") | [.stage, .duration_ms]'`,
		(*client.Client).BeginResumeVM)
	c.Long = `Restore a VM paused by ` + "`banger vm pause`" + ` from its saved state: its
processes and sessions go on where they were (attachers resume from their
offsets), with the same address, disks and /root/repo. The saved state is
removed once the VM runs. ` + "`banger vm start`" + ` of a paused VM does the same.`
	return c
}
