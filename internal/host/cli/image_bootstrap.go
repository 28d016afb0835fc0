package cli

import (
	"fmt"

	"github.com/bangerdev/banger/api"
	"github.com/spf13/cobra"
)

func newImageBootstrapCmd(app *App) *cobra.Command {
	var (
		req    api.BootstrapImageRequest
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "bootstrap debian [--suite bookworm] [--name NAME]",
		Short: "Build a base image from nothing (debootstrap + Debian kernel + agent)",
		Long: `Build a first base image: debootstrap of a Debian suite with banger's package
manifest, Debian's cloud kernel staged into vmlinux + initramfs + modules,
banger-agent and its services, your SSH public key in root's authorized_keys
(fresh host keys per image), the guest network bootstrap (the address comes
on the kernel command line), /root on the work disk, and a work-seed. Runs as
an operation with live stages; downloads are cached by content, so a second
bootstrap skips debootstrap. Needs root (bangerd as root) and debootstrap.`,
		Example: `  banger image bootstrap debian
  banger image bootstrap debian --suite bookworm --name base`,
		Args: exactArgs(1, "a distro (debian)"),
		RunE: func(c *cobra.Command, args []string) error {
			req.Distro = args[0]
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			op, err := cl.BeginBootstrapImage(c.Context(), req)
			if err != nil {
				return err
			}
			return finishImageOp(c.Context(), app, cl, op, asJSON, fmt.Sprintf("bootstrapped image %s", op.Target))
		},
	}
	f := c.Flags()
	f.StringVar(&req.Suite, "suite", "bookworm", "Debian suite")
	f.StringVar(&req.Name, "name", "", "image name (default debian-SUITE)")
	f.StringVar(&req.Mirror, "mirror", "", "Debian mirror (default http://deb.debian.org/debian)")
	f.BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}
