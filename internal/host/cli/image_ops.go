package cli

import (
	"context"
	"fmt"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
)

// finishImageOp follows an image operation live and prints the image it
// produced (or, with --json, the event stream only).
func finishImageOp(ctx context.Context, app *App, cl *client.Client, op api.Operation, asJSON bool, done string) error {
	if !asJSON {
		fmt.Fprintf(app.Stderr, "%s: operation %s\n", op.Kind, op.ID)
	}
	final, err := followOperation(ctx, app, cl, op, asJSON)
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
