package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/bangerdev/banger/internal/shared/sizetext"
	"github.com/spf13/cobra"
)

func newVMListCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List VMs",
		Example: "  banger vm list\n  banger vm list --json | jq -r '.vms[] | select(.state==\"running\") | .name'",
		Args:    noArgs,
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			vms, err := cl.VMs(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, api.VMList{VMs: vms})
			}
			now := time.Now()
			t := newTable(app.Stdout, "NAME", "STATE", "IMAGE", "IP", "VCPUS", "MEMORY", "DISK", "HYPERVISOR", "CREATED")
			for _, v := range vms {
				hv := v.Hypervisor
				if v.Accel != "" {
					hv += "/" + v.Accel
				}
				t.row(v.Name, vmState(v), dash(v.Image), dash(v.IP), fmt.Sprint(v.VCPUs), fmtBytes(int64(v.MemoryMiB)<<20),
					fmtBytes(v.DiskBytes), hv, fmtAge(now, v.CreatedAt))
			}
			return t.flush()
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// vmState is a VM's state as vm list shows it: a paused VM's with the
// size of its saved state.
func vmState(v api.VM) string {
	if v.State == api.VMPaused && v.StateBytes > 0 {
		return fmt.Sprintf("%s (%s)", v.State, sizetext.Up(v.StateBytes))
	}
	return v.State
}

func newVMShowCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a VM",
		Example: "  banger vm show demo\n  banger vm show demo --json | jq -r .ip",
		Args:    exactArgs(1, "a vm name"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			v, err := cl.VM(ctx, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, v)
			}
			t := newTable(app.Stdout, "FIELD", "VALUE")
			t.row("name", v.Name)
			t.row("id", v.ID)
			t.row("state", v.State)
			if v.StateBytes > 0 {
				t.row("saved state", sizetext.Up(v.StateBytes)+" on disk (`banger vm resume "+v.Name+"` restores it)")
			}
			if v.ForkedFrom != "" {
				t.row("forked from", v.ForkedFrom)
			}
			if v.Warm {
				t.row("warm", "yes: restored from its image's warm snapshot")
			}
			t.row("image", dash(v.Image))
			t.row("hypervisor", strings.TrimSpace(v.Hypervisor+" "+v.Accel)) // a stopped VM has no accel
			t.row("vcpus", fmt.Sprint(v.VCPUs))
			t.row("memory", fmtBytes(int64(v.MemoryMiB)<<20))
			t.row("disk", fmtBytes(v.DiskBytes))
			t.row("ip", v.IP)
			if v.Egress != nil {
				t.row("egress", egressText(*v.Egress)+" (`banger vm egress "+v.Name+" --log` lists refusals)")
			} else {
				t.row("egress", api.EgressNAT)
			}
			t.row("mac", v.MAC)
			t.row("tap", dash(v.TAP))
			if v.PID != 0 {
				t.row("pid", fmt.Sprint(v.PID))
			}
			t.row("dir", v.Dir)
			t.row("console", v.ConsoleLog)
			t.row("ssh", v.SSH)
			for _, p := range v.Ports {
				t.row("port", fmt.Sprintf("guest %d on %s (`banger vm port %s --rm %d` removes it)", p.GuestPort, portURL(p), v.Name, p.GuestPort))
			}
			if ws := v.Workspace; ws != nil {
				from := ws.HostPath
				if ws.Head != "" {
					from += " at " + short(ws.Head)
				}
				t.row("workspace", fmt.Sprintf("%s from %s (%s mode, sent %s; `banger vm diff %s`)", ws.Dir, termsafe.Line(from), ws.Mode, fmtAge(time.Now(), ws.PreparedAt), v.Name))
			}
			t.row("created", v.CreatedAt.Local().Format(time.RFC3339))
			if !v.StartedAt.IsZero() {
				t.row("started", v.StartedAt.Local().Format(time.RFC3339))
			}
			for _, w := range v.Warnings {
				t.row("warning", w)
			}
			if e := v.LastExit; e != nil {
				// The daemon escapes both; so does this, whoever answered.
				t.row("last exit", termsafe.Line(e.Reason))
				t.row("exited", e.At.Local().Format(time.RFC3339))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if e := v.LastExit; e != nil && e.ConsoleTail != "" {
				fmt.Fprintf(app.Stdout, "\nconsole before it stopped (see `banger vm logs %s`):\n", v.Name)
				for _, l := range strings.Split(termsafe.Text(e.ConsoleTail), "\n") {
					fmt.Fprintf(app.Stdout, "  %s\n", l)
				}
			}
			return nil
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
