package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/bangerdev/banger/api"
	"github.com/spf13/cobra"
)

func newImageBuildCmd(app *App) *cobra.Command {
	var (
		req    api.BuildImageRequest
		script string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "build --from IMAGE --name NAME [--preset agents] [--packages p1,p2] [--script FILE]",
		Short: "Derive a new image from a registered one",
		Long: `Derive a new image from a registered one: a copy of its rootfs is provisioned
in a chroot (with the host's network) by Go-defined steps, in this order:
distro packages (--packages), presets (--preset), then your script
(--script, run with /bin/sh as root). The new image gets a fresh work-seed
and fingerprint, records its parent, and carries the current banger-agent.

Presets:
  agents   node, opencode, claude and pi from npm, plus an opencode serve
           service on guest port 4096 whose readiness VM create waits for
           (glibc images)`,
		Example: `  banger image build --from debian-bookworm --name agents --preset agents
  banger image build --from agents --name agents-go --packages golang-go,make
  banger image build --from debian-bookworm --name custom --script ./provision.sh`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if req.From == "" || req.Name == "" {
				return usageError("--from and --name are required (see `banger image build --help`)")
			}
			if script != "" {
				b, err := os.ReadFile(script)
				if err != nil {
					return fmt.Errorf("--script: %w", err)
				}
				req.Script, req.ScriptName = string(b), filepath.Base(script)
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			op, err := cl.BeginBuildImage(c.Context(), req)
			if err != nil {
				return err
			}
			return finishImageOp(c.Context(), app, cl, op, asJSON, fmt.Sprintf("built image %s from %s", req.Name, req.From))
		},
	}
	f := c.Flags()
	f.StringVar(&req.From, "from", "", "registered image to start from")
	f.StringVar(&req.Name, "name", "", "name of the new image")
	f.StringSliceVar(&req.Presets, "preset", nil, "provisioning preset (agents)")
	f.StringSliceVar(&req.Packages, "packages", nil, "distro packages to install")
	f.StringVar(&script, "script", "", "shell script to run in the image as root")
	f.BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}
