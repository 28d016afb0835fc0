package cli

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newWebCmd(app *App) *cobra.Command {
	var (
		open   bool
		revoke bool
		listen string
	)
	c := &cobra.Command{
		Use:   "web",
		Short: "Open banger's web UI: print a one-time login URL",
		Long: `Print a URL that logs a browser in to banger's web UI, served by bangerd on
a loopback address only. The daemon turns its web listener on if it is off:
at --listen, else at web.listen of the configuration, else at ` + api.DefaultWebListen + `.

The URL carries a one-time token: it works once, within 5 minutes, and gives
the browser a session cookie (it ends after 12 hours unused, after 7 days in
any case, or at --revoke). Anyone who can read the URL before you open it
can log in: do not paste it where others see it.

From another machine, tunnel: ssh -L 7180:127.0.0.1:7180 HOST, then open the
URL on that machine.

--revoke ends every web session and drops unused tokens instead (the
listener stays on; a browser then needs a new URL).`,
		Example: `  banger web                        print the login URL
  banger web --open                 and open it in the default browser
  banger web --listen 127.0.0.1:8080
  banger web --revoke               log every browser out`,
		Args: noArgs,
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, _ []string) error {
			if revoke {
				if open || listen != "" {
					return usageError("--revoke takes neither --open nor --listen (see `banger web --help`)")
				}
				r, err := cl.WebRevoke(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(app.Stdout, "ended %d web %s and dropped %d unused login %s\n",
					r.Sessions, plural(r.Sessions, "session", "sessions"), r.Tokens, plural(r.Tokens, "token", "tokens"))
				return nil
			}
			l, err := cl.WebLogin(ctx, api.WebLoginRequest{Listen: listen})
			if err != nil {
				return err
			}
			fmt.Fprintln(app.Stdout, l.URL)
			fmt.Fprintf(app.Stderr, "banger's web UI listens on %s. The URL logs one browser in, once, until %s (5 minutes).\n",
				l.Listen, l.ExpiresAt.Local().Format(time.TimeOnly))
			if open {
				return openBrowser(ctx, l.URL)
			}
			return nil
		}),
	}
	c.Flags().BoolVar(&open, "open", false, "open the URL with xdg-open")
	c.Flags().BoolVar(&revoke, "revoke", false, "end every web session and drop unused login tokens")
	c.Flags().StringVar(&listen, "listen", "", "loopback address to turn the listener on at, e.g. 127.0.0.1:7180")
	return c
}

// openBrowser hands url to xdg-open.
func openBrowser(ctx context.Context, url string) error {
	bin, err := exec.LookPath("xdg-open")
	if err != nil {
		return errors.New("--open needs xdg-open, which is not on PATH (apt-get install xdg-utils): open the URL printed above yourself")
	}
	if out, err := exec.CommandContext(ctx, bin, url).CombinedOutput(); err != nil {
		return fmt.Errorf("xdg-open failed (%v): %s: open the URL printed above yourself", err, out)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
