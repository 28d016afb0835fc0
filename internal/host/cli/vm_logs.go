package cli

import (
	"context"
	"io"
	"os"

	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newVMLogsCmd(app *App) *cobra.Command {
	var follow, raw bool
	c := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a VM's serial console (-f to follow)",
		Long: `Print the VM's serial console log (kernel, init and systemd output). The log is bounded in size; the oldest part is dropped first.

The console is written by the guest, which is not trusted. On a terminal,
colours are dropped and every other control character or escape sequence
is shown escaped (ESC as \x1b), so the guest cannot retitle the window,
move the cursor or talk to the terminal; --raw prints the bytes as they
are. Written to a file or a pipe, the bytes are passed on unchanged.`,
		Example: "  banger vm logs demo\n  banger vm logs demo -f\n  banger vm logs demo --raw > console.log",
		Args:    exactArgs(1, "a vm name"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			if raw || !isTerminal(app.Stdout) {
				return cl.Console(ctx, args[0], follow, app.Stdout)
			}
			w := termsafe.NewWriter(app.Stdout)
			err := cl.Console(ctx, args[0], follow, w)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			return err
		}),
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the console writes")
	c.Flags().BoolVar(&raw, "raw", false, "print the console's bytes unchanged, escape sequences included, even on a terminal")
	return c
}

// isTerminal reports whether w is a terminal.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
