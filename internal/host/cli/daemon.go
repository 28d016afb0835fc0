package cli

import "github.com/spf13/cobra"

func newDaemonCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "daemon",
		Short: "Start, stop and inspect bangerd",
		Long: `bangerd owns banger's state, images, VMs and networking. Any banger command
starts it when it is not running, and restarts it when the installed bangerd
is a different build from the running one. Stopping the daemon never stops
running VMs.

Under systemd (bangerd.service enabled or active: a system unit for root's
daemon, a user unit for a rootless one) systemd runs bangerd, restarts it
on failure and keeps its log in the journal; banger then starts, stops and
restarts it through systemctl and never spawns one of its own.`,
		Example: "  banger daemon status\n  banger daemon restart\n  banger daemon logs -f",
	}
	c.AddCommand(
		newDaemonStartCmd(app),
		newDaemonStopCmd(app),
		newDaemonStatusCmd(app),
		newDaemonRestartCmd(app),
		newDaemonLogsCmd(app),
	)
	return c
}
