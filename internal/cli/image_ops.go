package cli

import (
	"fmt"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

// finishImageOp follows an image operation live and prints the image it
// produced (or, with --json, the event stream only).
func finishImageOp(c *cobra.Command, app *App, cl *client.Client, op api.Operation, asJSON bool, done string) error {
	if !asJSON {
		fmt.Fprintf(app.Stderr, "%s: operation %s\n", op.Kind, op.ID)
	}
	final, err := followOperation(c.Context(), app, cl, op, asJSON)
	if err != nil {
		return err
	}
	if asJSON {
		return nil
	}
	var img api.Image
	if err := decodeResult(final, &img); err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "%s (%s, %s)\n", done, img.ID, img.Fingerprint)
	return nil
}
