package cli

import (
	"fmt"

	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newDaemonRestartCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "restart",
		Short:   "Stop bangerd if it runs, then start it again",
		Example: "  banger daemon restart",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctl, err := app.controller()
			if err != nil {
				return err
			}
			if err := ctl.Stop(c.Context()); err != nil && !client.IsNotRunning(err) {
				return err
			}
			st, err := ctl.Start(c.Context())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "bangerd restarted (pid %d, build %s)\n", st.PID, st.BuildID)
			return err
		},
	}
}
