package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/spf13/cobra"
)

func newVMEgressCmd(app *App) *cobra.Command {
	var log, asJSON bool
	c := &cobra.Command{
		Use:   "egress NAME [nat | none | ALLOWLIST] [--log]",
		Short: "Show or change what a VM's guest may reach",
		Long: `Show a VM's egress policy, or change it: on a running VM the new policy is in
force when the command returns, without a restart.

  nat        the guest reaches the internet through NAT (the default)
  none       the guest reaches nothing outside its VM
  ALLOWLIST  comma-separated entries the guest may reach, nothing else:
             github.com          a domain
             *.npmjs.org         its subdomains (not npmjs.org itself)
             203.0.113.0/24      an IPv4 address or CIDR
             @agents             a preset from the config (egress.presets)
             each with an optional :PORT (repeat an entry for more ports)

Domains are enforced without trusting the guest: its DNS goes to a resolver
bangerd runs on the bridge (whatever server the guest asks), which answers
only allowed names and lets the answered addresses through for the record's
TTL; everything else is dropped and counted. --log lists recent refusals:
names the resolver refused and addresses the guest tried to reach.

Whatever the policy, guests never reach each other, the host's services, or
private, link-local and metadata ranges (except network.allow_cidrs).
Policies other than nat need a daemon that manages the host's network (a
root bangerd).`,
		Example: `  banger vm egress demo
  banger vm egress demo none
  banger vm egress demo 'github.com:443,*.npmjs.org:443,@agents'
  banger vm egress demo --log
  banger vm run . --egress @agents`,
		Args: rangeArgs(1, 2, "a VM name and optionally a policy"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			var (
				st  api.EgressStatus
				err error
			)
			if len(args) == 2 {
				if log {
					return usageError("--log shows refusals; give no policy with it")
				}
				st, err = cl.SetEgress(ctx, args[0], parseEgressFlag(args[1]))
			} else {
				st, err = cl.Egress(ctx, args[0], log)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, st)
			}
			printEgress(app.Stdout, args[0], st, log, time.Now())
			return nil
		}),
	}
	c.Flags().BoolVar(&log, "log", false, "list the recent refusals (refused names and addresses)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the policy (and refusals) as JSON")
	return c
}

// egressText is a policy as --egress takes it.
func egressText(p api.EgressPolicy) string {
	if p.Mode != api.EgressAllow {
		return p.Mode
	}
	return strings.Join(p.Allow, ",")
}

func printEgress(w io.Writer, vm string, st api.EgressStatus, log bool, now time.Time) {
	fmt.Fprintf(w, "%s: egress %s\n", vm, egressText(st.Policy))
	if !log {
		return
	}
	if len(st.Drops) == 0 {
		fmt.Fprintln(w, "no refusals recorded")
		return
	}
	t := newTable(w, "WHAT", "PORT", "PROTO", "COUNT", "LAST")
	for _, d := range st.Drops {
		what, port := d.Address, "-"
		if d.Name != "" {
			what = termsafe.Line(d.Name) + " (name refused)"
		}
		if d.Port != 0 {
			port = fmt.Sprint(d.Port)
		}
		t.row(what, port, d.Proto, fmt.Sprint(d.Count), fmtAge(now, d.Last))
	}
	t.flush()
}
