package cli

import (
	"fmt"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/spf13/cobra"
)

func newDaemonStatusCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the running daemon (starting it if needed)",
		Long: `Show the daemon's version, build id, pid, socket, uptime and store. Like
every banger command, it starts the daemon when none runs. It works while
the config file is broken (it then reads only the file's directories, with a
warning), but then starts no daemon: one would refuse the file.`,
		Example: "  banger daemon status\n  banger daemon status --json",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			ctl, warn, err := app.lifecycleController()
			if err != nil {
				return err
			}
			cl, err := ctl.Ensure(ctx)
			if err != nil {
				return err
			}
			defer cl.Close()
			warn()
			st, err := cl.DaemonStatus(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, st)
			}
			return printDaemonStatus(app, st)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printDaemonStatus(app *App, st api.DaemonStatus) error {
	t := newTable(app.Stdout, "FIELD", "VALUE")
	t.row("status", "running")
	t.row("version", st.Version)
	t.row("build id", st.BuildID)
	t.row("pid", fmt.Sprint(st.PID))
	t.row("socket", st.Socket)
	t.row("uptime", fmtDuration(st.Uptime.D()))
	t.row("started", st.StartedAt.Local().Format(time.RFC3339))
	t.row("store", st.StorePath)
	if st.ManagedBy != "" {
		t.row("managed by", st.ManagedBy)
	}
	if st.LogFile != "" {
		t.row("log", st.LogFile)
	} else {
		t.row("log", "the journal (banger daemon logs)")
	}
	return t.flush()
}
