package cli

import (
	"fmt"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/sizetext"
	"github.com/spf13/cobra"
)

func newImageWarmCmd(app *App) *cobra.Command {
	var (
		cf     createFlags
		rm     bool
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "warm NAME [--vcpus N] [--memory SIZE] [--disk SIZE] [--hypervisor H] | warm --rm NAME",
		Short: "Boot an image once and keep its snapshot, so creates restore instead of booting",
		Long: `Boot a VM of the image to readiness (agent and readiness probes), save its
whole state and keep it as the image's warm snapshot for that shape (vCPUs,
memory, work disk, hypervisor; flags left out take the configured defaults,
as for vm create). A later ` + "`banger vm create`" + ` of that shape restores the
snapshot instead of booting, and gives the new VM its own identity.

A snapshot is invalidated when the image, its kernel, the agent or the
shape changes: such a create boots cold, with a notice. --rm removes all the
image's warm snapshots; ` + "`banger image show`" + ` lists them.`,
		Example: `  banger image warm agents
  banger image warm agents --vcpus 4 --memory 4GiB
  banger vm create --image agents          # restored from the snapshot
  banger image warm --rm agents`,
		Args: exactArgs(1, "an image name"),
		RunE: func(c *cobra.Command, args []string) error {
			req, err := cf.request()
			if err != nil {
				return err
			}
			if rm {
				for _, f := range []string{"vcpus", "memory", "disk", "hypervisor", "json"} {
					if c.Flags().Changed(f) {
						return usageError("--rm removes every warm snapshot of %s; it takes no --%s", args[0], f)
					}
				}
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx := c.Context()
			if rm {
				img, err := cl.UnwarmImage(ctx, args[0])
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(app.Stdout, "image %s has no warm snapshot: VMs made from it boot cold\n", img.Name)
				return err
			}
			op, err := cl.BeginWarmImage(ctx, args[0], api.WarmImageRequest{
				VCPUs: req.VCPUs, MemoryMiB: req.MemoryMiB, DiskBytes: req.DiskBytes, Hypervisor: req.Hypervisor,
			})
			if err != nil {
				return err
			}
			var img api.Image
			if printed, err := followResult(ctx, app, cl, op, asJSON, &img); !printed || err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "image %s is warm: a `banger vm create --image %s` of a shape below restores instead of booting\n", img.Name, img.Name)
			return printWarm(app, img, time.Now())
		},
	}
	cf.bindShape(c.Flags())
	c.Flags().BoolVar(&rm, "rm", false, "remove the image's warm snapshots instead")
	c.Flags().BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}

// printWarm prints an image's warm snapshots as a table, or nothing when
// it has none.
func printWarm(app *App, img api.Image, now time.Time) error {
	if len(img.Warm) == 0 {
		return nil
	}
	t := newTable(app.Stdout, "WARM", "VCPUS", "MEMORY", "DISK", "SIZE", "CREATED")
	for _, w := range img.Warm {
		t.row(warmShape(w), fmt.Sprint(w.VCPUs), fmtBytes(int64(w.MemoryMiB)<<20), fmtBytes(w.DiskBytes),
			sizetext.Up(w.Bytes), fmtAge(now, w.CreatedAt))
	}
	return t.flush()
}

// warmShape names a warm snapshot's hypervisor as vm list names a VM's.
func warmShape(w api.WarmSnapshot) string {
	if w.Accel != "" {
		return w.Hypervisor + "/" + w.Accel
	}
	return w.Hypervisor
}
