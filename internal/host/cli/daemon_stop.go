package cli

import (
	"fmt"

	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newDaemonStopCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop bangerd gracefully (VMs keep running)",
		Long: `Ask bangerd to finish in-flight requests and exit, and wait until it has.
Running VMs are not stopped. A daemon systemd started is stopped with
` + "`systemctl stop bangerd`" + ` (--user for a rootless one), so systemd does not
start it again. It works while the config file is broken (it
then reads only the file's directories, with a warning), so a daemon
running with the old file can always be stopped.`,
		Example: "  banger daemon stop",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctl, warn, err := app.lifecycleController()
			if err != nil {
				return err
			}
			st, err := ctl.Status(c.Context())
			if err == nil || client.IsNotRunning(err) {
				warn()
			}
			if client.IsNotRunning(err) {
				_, err := fmt.Fprintln(app.Stdout, "bangerd is not running")
				return err
			}
			if err != nil {
				return err
			}
			if err := ctl.Stop(c.Context()); err != nil {
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "bangerd stopped (pid %d)\n", st.PID)
			return err
		},
	}
}
