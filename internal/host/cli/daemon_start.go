package cli

import (
	"fmt"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newDaemonStartCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Start bangerd in the background (or through systemd)",
		Long: `Start bangerd in its own session, detached from this terminal, and wait until
it answers. When systemd manages bangerd (its unit, bangerd.service, is
enabled or active), ` + "`systemctl start bangerd`" + ` (--user for a rootless
daemon) starts it instead: banger never runs a second daemon beside the
unit's. A broken config file is refused (see ` + "`banger config validate`" + `):
nothing is started.`,
		Example: "  banger daemon start",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctl, _, err := app.lifecycleController()
			if err != nil {
				return err
			}
			st, err := ctl.Status(c.Context())
			if err == nil && ctl.ConfigErr == nil {
				_, err := fmt.Fprintf(app.Stdout, "bangerd is already running (pid %d, build %s)\n", st.PID, st.BuildID)
				return err
			}
			if err != nil && !client.IsNotRunning(err) {
				return err
			}
			st, err = ctl.Start(c.Context())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "bangerd started%s (pid %d, socket %s)\n", byManager(st), st.PID, st.Socket)
			return err
		},
	}
}

// byManager names the service manager that runs the daemon, if any, for
// a message such as "bangerd started by systemd".
func byManager(st api.DaemonStatus) string {
	if st.ManagedBy == "" {
		return ""
	}
	return " by " + st.ManagedBy
}
