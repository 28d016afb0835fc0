package cli

import (
	"context"
	"fmt"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newVMStartCmd(app *App) *cobra.Command {
	c := newVMBootCmd(app, "start NAME", "Boot a stopped VM (auth files are synced again), or resume a paused one", "  banger vm start demo",
		(*client.Client).BeginStartVM)
	c.Long = `Boot a stopped VM: its disks are kept from before, the auth files are synced
again. A paused VM (` + "`banger vm pause`" + `) is resumed from its saved state
instead, as ` + "`banger vm resume`" + ` does.`
	return c
}

func newVMRestartCmd(app *App) *cobra.Command {
	return newVMBootCmd(app, "restart NAME", "Stop a VM cleanly and boot it again", "  banger vm restart demo",
		(*client.Client).BeginRestartVM)
}

// newVMBootCmd is a command that begins an operation booting one VM and
// follows it until the VM runs.
func newVMBootCmd(app *App, use, short, example string,
	begin func(*client.Client, context.Context, string) (api.Operation, error)) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    exactArgs(1, "a vm name"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			op, err := begin(cl, ctx, args[0])
			if err != nil {
				return err
			}
			var v api.VM
			if printed, err := followResult(ctx, app, cl, op, asJSON, &v); !printed || err != nil {
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "vm %s is running at %s\n", v.Name, v.IP)
			return err
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}

func newVMStopCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "stop NAME",
		Short: "Shut a VM down cleanly (its disks are kept)",
		Long: `Ask the guest to power off (through the agent, then ACPI) and wait; the
hypervisor is killed only if the guest does not finish in time. The work
disk (/root) and rootfs are kept for the next start. Stopping a paused VM
discards its saved state: it is then stopped as after a power cut, and the
next start boots it.`,
		Example: "  banger vm stop demo",
		Args:    exactArgs(1, "a vm name"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			v, err := cl.StopVM(ctx, args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "vm %s is %s\n", v.Name, v.State)
			return err
		}),
	}
}
