package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDaemonRestartCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "restart",
		Short: "Stop bangerd if it runs, then start it again",
		Long: `Stop bangerd if it runs, then start it again with the current config file.
When systemd manages bangerd, this is ` + "`systemctl restart bangerd`" + `.
A broken config file is refused before anything is stopped (see
` + "`banger config validate`" + `): the running daemon goes on.`,
		Example: "  banger daemon restart",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctl, _, err := app.lifecycleController()
			if err != nil {
				return err
			}
			st, err := ctl.Restart(c.Context())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "bangerd restarted%s (pid %d, build %s)\n", byManager(st), st.PID, st.BuildID)
			return err
		},
	}
}
