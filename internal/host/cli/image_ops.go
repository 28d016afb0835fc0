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
	var img api.Image
	if printed, err := followResult(ctx, app, cl, op, asJSON, &img); !printed || err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "%s (%s, %s)\n", done, img.ID, img.Fingerprint)
	return nil
}
