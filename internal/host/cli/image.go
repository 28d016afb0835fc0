package cli

import (
	"github.com/spf13/cobra"
)

func newImageCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:     "image",
		Aliases: []string{"images", "img"},
		Short:   "Manage the images VMs boot from",
		Long: `A managed image owns its whole boot set in banger's store: vmlinux (for
Firecracker), the compressed kernel (for QEMU), an initramfs with banger-agent
as /init, the kernel modules, rootfs.ext4 and work-seed.ext4 (the guest's
/root). Every artifact's sha256 is recorded and the image is fingerprinted.
Images are bootstrapped, built from another image, or registered explicitly;
banger never makes one from host files on its own.`,
		Example: `  banger image bootstrap debian
  banger image build --from debian-bookworm --name agents --preset agents
  banger image list
  banger image show agents
  banger image warm agents`,
	}
	c.AddCommand(
		newImageListCmd(app),
		newImageShowCmd(app),
		newImageRmCmd(app),
		newImageRegisterCmd(app),
		newImagePromoteCmd(app),
		newImageWarmCmd(app),
		newImageBootstrapCmd(app),
		newImageBuildCmd(app),
	)
	return c
}
