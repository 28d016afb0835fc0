package cli

import (
	"fmt"

	"github.com/bangerdev/banger/api"
	"github.com/spf13/cobra"
)

func newVMStartCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "start NAME",
		Short:   "Boot a stopped VM (auth files are synced again)",
		Example: "  banger vm start demo",
		Args:    exactArgs(1, "a vm name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			op, err := cl.BeginStartVM(c.Context(), args[0])
			if err != nil {
				return err
			}
			return finishVMOp(c, app, op, asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}

func newVMRestartCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "restart NAME",
		Short:   "Stop a VM cleanly and boot it again",
		Example: "  banger vm restart demo",
		Args:    exactArgs(1, "a vm name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			op, err := cl.BeginRestartVM(c.Context(), args[0])
			if err != nil {
				return err
			}
			return finishVMOp(c, app, op, asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}

func finishVMOp(c *cobra.Command, app *App, op api.Operation, asJSON bool) error {
	cl, err := app.Client(c.Context())
	if err != nil {
		return err
	}
	defer cl.Close()
	if !asJSON {
		fmt.Fprintf(app.Stderr, "%s: operation %s\n", op.Kind, op.ID)
	}
	final, err := followOperation(c.Context(), app, cl, op, asJSON)
	if err != nil || asJSON {
		return err
	}
	var v api.VM
	if err := decodeResult(final, &v); err != nil {
		return err
	}
	_, err = fmt.Fprintf(app.Stdout, "vm %s is running at %s\n", v.Name, v.IP)
	return err
}

func newVMStopCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "stop NAME",
		Short: "Shut a VM down cleanly (its disks are kept)",
		Long: `Ask the guest to power off (through the agent, then ACPI) and wait; the
hypervisor is killed only if the guest does not finish in time. The work
disk (/root) and rootfs are kept for the next start.`,
		Example: "  banger vm stop demo",
		Args:    exactArgs(1, "a vm name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			v, err := cl.StopVM(c.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "vm %s is %s\n", v.Name, v.State)
			return err
		},
	}
}
