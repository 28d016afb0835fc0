package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newImageListCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List images",
		Example: "  banger image list\n  banger image list --json | jq -r '.images[].name'",
		Args:    noArgs,
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			imgs, err := cl.Images(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, api.ImageList{Images: imgs})
			}
			now := time.Now()
			t := newTable(app.Stdout, "NAME", "STATE", "DISTRO", "KERNEL", "SIZE", "PARENT", "VMS", "CREATED")
			for _, img := range imgs {
				state := img.State
				if len(img.Warm) > 0 {
					state += " (warm)"
				}
				t.row(img.Name, state, dash(strings.TrimSpace(img.Distro+" "+img.Suite)), dash(img.Kernel.Release),
					fmtBytes(imageSize(img)), dash(img.Parent), fmt.Sprint(len(img.UsedBy)), fmtAge(now, img.CreatedAt))
			}
			return t.flush()
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func imageSize(img api.Image) int64 {
	var n int64
	for _, a := range img.Artifacts {
		n += a.Size
	}
	return n
}

// fmtBytes renders a size in binary units: 512B, 3.2MiB, 1.5GiB.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
