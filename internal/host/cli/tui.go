package cli

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/tui"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newTUICmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "tui",
		Short: "Browse and operate VMs, sessions and images in a terminal UI",
		Long: `Open banger's terminal UI: a live table of VMs (kept current by the
daemon's event feed, with CPU figures), VM details with the stages of the
last create or start, the serial console and the sessions, and forms to
create VMs and start sessions. Attaching to a session or opening ssh hands
the terminal over; ctrl+] (a TTY session) or ctrl+c (a pipe session)
detaches back to the TUI, as does leaving ssh.

Keys are listed at the foot of the screen (? shows them all). The daemon is
started if it is not running; when it goes away the TUI says so and
reconnects. NO_COLOR turns colours off.`,
		Example: `  banger tui
  NO_COLOR=1 banger tui`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			in, inOK := app.Stdin.(*os.File)
			out, outOK := app.Stdout.(*os.File)
			if !inOK || !outOK || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
				return errors.New("banger tui needs a terminal: run it in one, or use the CLI commands")
			}
			cursors, err := app.cursors()
			if err != nil {
				return err
			}
			connect := func(ctx context.Context) (*client.Client, error) {
				ctl, err := app.controller()
				if err != nil {
					return nil, err
				}
				// A notice on stderr would scribble over the screen.
				ctl.Notices = io.Discard
				return ctl.Ensure(ctx)
			}
			noColor, _ := app.Env("NO_COLOR")
			return tui.Run(c.Context(), tui.Options{
				Connect: connect,
				NoColor: noColor != "",
				Cursors: cursors,
			}, in, out)
		},
	}
}
