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

func newImageShowCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an image: artifacts, digests, kernel and hypervisor suitability",
		Example: `  banger image show debian-bookworm
  banger image show agents --json | jq .kernel`,
		Args: exactArgs(1, "an image name"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			img, err := cl.Image(ctx, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, img)
			}
			return printImage(app, img)
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func yesNo(ok bool, reason string) string {
	if ok {
		if reason != "" {
			return "yes (" + reason + ")"
		}
		return "yes"
	}
	return "no: " + reason
}

func printImage(app *App, img api.Image) error {
	t := newTable(app.Stdout, "FIELD", "VALUE")
	t.row("name", img.Name)
	t.row("id", img.ID)
	t.row("state", img.State)
	t.row("distro", dash(strings.TrimSpace(img.Distro+" "+img.Suite)))
	t.row("libc", dash(img.Libc))
	t.row("source", dash(img.Source))
	t.row("parent", dash(img.Parent))
	t.row("agent", dash(img.AgentVersion))
	t.row("fingerprint", img.Fingerprint)
	t.row("created", img.CreatedAt.Local().Format(time.RFC3339))
	if !img.HealedAt.IsZero() {
		t.row("healed", img.HealedAt.Local().Format(time.RFC3339))
	}
	k := img.Kernel
	t.row("kernel", dash(strings.TrimSpace(k.Release+" "+k.Compression)))
	t.row("initramfs modules", fmt.Sprint(len(k.Modules)))
	t.row("firecracker", yesNo(k.Firecracker, k.FirecrackerReason))
	t.row("qemu", yesNo(k.QEMU, k.QEMUReason))
	for _, s := range img.Services {
		t.row("service", fmt.Sprintf("%s (port %d)", s.Name, s.Port))
	}
	for _, p := range img.Probes {
		t.row("readiness probe", fmt.Sprintf("%s %s/%d", p.Name, p.Kind, p.Port))
	}
	for _, s := range img.Provisioning {
		t.row("provisioning", s)
	}
	if len(img.UsedBy) > 0 {
		t.row("used by", strings.Join(img.UsedBy, ", "))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(app.Stdout)
	a := newTable(app.Stdout, "ARTIFACT", "SIZE", "SHA256", "PATH")
	for _, art := range img.Artifacts {
		sum := art.SHA256
		if len(sum) > 16 {
			sum = sum[:16]
		}
		a.row(art.Kind, fmtBytes(art.Size), sum, art.Path)
	}
	if err := a.flush(); err != nil || len(img.Warm) == 0 {
		return err
	}
	fmt.Fprintln(app.Stdout)
	return printWarm(app, img, time.Now())
}
