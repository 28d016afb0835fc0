package cli

import (
	"context"
	"fmt"

	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newImageRmCmd(app *App) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove an image (refused while VMs use it, unless --force)",
		Long: `Remove an image and its files. While VMs or derived images use it the
removal is refused; --force removes the files anyway (running VMs keep their
own disk clones) and the record goes when its last user does.`,
		Example: "  banger image rm old-base\n  banger image rm old-base --force",
		Args:    exactArgs(1, "an image name"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			if err := cl.RemoveImage(ctx, args[0], force); err != nil {
				return err
			}
			_, err := fmt.Fprintf(app.Stdout, "removed image %s\n", args[0])
			return err
		}),
	}
	c.Flags().BoolVar(&force, "force", false, "remove even while VMs use the image")
	return c
}
