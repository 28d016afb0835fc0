package cli

import (
	"fmt"
	"path/filepath"

	"github.com/bangerdev/banger/api"
	"github.com/spf13/cobra"
)

func newImageRegisterCmd(app *App) *cobra.Command {
	var (
		req    api.RegisterImageRequest
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "register --name NAME --kernel FILE --rootfs FILE (--modules DIR | --initrd FILE)",
		Short: "Register a kernel and rootfs you already have as a managed image",
		Long: `Register artifacts you already have. They are checked first (ELF or bzImage
kernel, initramfs header, ext4 superblock, sizes): bad input is refused before
anything is written. Then they are copied into banger's store: a bzImage is
also unpacked to vmlinux; with --modules banger builds the initramfs (the
virtio modules plus banger-agent as /init); banger-agent and its services are
installed into the copied rootfs; without --work-seed one is made from the
rootfs's /root.

--link records the files where they are instead of copying them; such an
image is "unmanaged" until ` + "`banger image promote`" + ` copies them in.`,
		Example: `  banger image register --name void --kernel ./vmlinuz-6.6 \
      --modules ./lib/modules/6.6.30_1 --rootfs ./void-rootfs.ext4
  banger image register --name big --link --kernel /srv/vmlinux --initrd /srv/initrd.img --rootfs /srv/root.ext4`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			for _, p := range []*string{&req.Kernel, &req.Initrd, &req.Modules, &req.Rootfs, &req.WorkSeed} {
				if *p != "" {
					abs, err := filepath.Abs(*p)
					if err != nil {
						return err
					}
					*p = abs
				}
			}
			if req.Name == "" {
				return usageError("--name is required (see `banger image register --help`)")
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			op, err := cl.BeginRegisterImage(c.Context(), req)
			if err != nil {
				return err
			}
			return finishImageOp(c.Context(), app, cl, op, asJSON, fmt.Sprintf("registered image %s", req.Name))
		},
	}
	f := c.Flags()
	f.StringVar(&req.Name, "name", "", "image name (lowercase letters, digits, '-')")
	f.StringVar(&req.Kernel, "kernel", "", "kernel: bzImage (vmlinuz) or ELF vmlinux")
	f.StringVar(&req.Initrd, "initrd", "", "initramfs to use as is")
	f.StringVar(&req.Modules, "modules", "", "kernel modules tree (lib/modules/<release>); banger builds the initramfs from it")
	f.StringVar(&req.Rootfs, "rootfs", "", "root filesystem image (ext4)")
	f.StringVar(&req.WorkSeed, "work-seed", "", "ext4 image of the guest's /root (default: made from the rootfs)")
	f.BoolVar(&req.Link, "link", false, "record the files in place instead of copying (promote later)")
	f.BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}
