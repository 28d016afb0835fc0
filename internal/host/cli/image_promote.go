package cli

import (
	"context"
	"fmt"

	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newImagePromoteCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "promote NAME",
		Short: "Make an image fully managed (copy files in, add a work-seed, fingerprint)",
		Long: `Turn an image that still references outside files (registered with --link),
or one made by an older banger, into a fully managed image: outside artifacts
are copied into banger's store (banger-agent is installed into the copied
rootfs), a missing work-seed is made, and the fingerprint is recorded.
Promoting a complete image changes nothing.`,
		Example: "  banger image promote big",
		Args:    exactArgs(1, "an image name"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			op, err := cl.BeginPromoteImage(ctx, args[0])
			if err != nil {
				return err
			}
			return finishImageOp(ctx, app, cl, op, asJSON, fmt.Sprintf("image %s is managed", args[0]))
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}
