package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

// minStatsInterval is the shortest --interval: CPU % needs a window.
const minStatsInterval = 500 * time.Millisecond

func newVMStatsCmd(app *App) *cobra.Command {
	var (
		watch    bool
		asJSON   bool
		interval time.Duration
	)
	c := &cobra.Command{
		Use:   "stats [NAME]",
		Short: "Show running VMs' CPU, memory, disk and network figures",
		Long: `Show each running VM's figures, or one VM's:

  CPU%       the hypervisor process's CPU use since the previous sample
             (100 = one core busy; the first sample after bangerd starts
             is the average since the VM booted; - when not known)
  HOST-RSS   the hypervisor process's resident memory on the host
  GUEST-MEM  used/total memory as the guest's own kernel reports it
             (total minus available); - when its agent did not answer
             in time, is too old to report it, or reported something
             impossible: the guest's word is checked, not trusted
  DISK       bytes the VM's disk files (rootfs and work) occupy on the
             host / their size as the guest sees it
  NET-RX/TX  bytes the guest received/sent on its network device

--watch redraws every --interval until Ctrl-C, with one request per
refresh for all VMs. --json prints the API's figures (bytes, and
cpu_percent -1 when not known); with --watch, one JSON object a line.`,
		Example: `  banger vm stats
  banger vm stats demo
  banger vm stats --watch --interval 5s
  banger vm stats --json | jq '.stats[] | {vm, cpu_percent}'
  banger vm stats demo --watch --json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("vm stats takes at most one vm name, got %d arguments", len(args))
			}
			if interval < minStatsInterval {
				return usageError("--interval %s is too short: give %s or more", interval, minStatsInterval)
			}
			return nil
		},
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			fetch := func() ([]api.VMStats, error) { return cl.Stats(ctx) }
			if len(args) == 1 {
				fetch = func() ([]api.VMStats, error) {
					s, err := cl.VMStats(ctx, args[0])
					return []api.VMStats{s}, err
				}
			}
			if !watch {
				stats, err := fetch()
				if err != nil {
					return err
				}
				if asJSON {
					if len(args) == 1 {
						return printJSON(app.Stdout, stats[0])
					}
					return printJSON(app.Stdout, api.StatsList{Stats: stats})
				}
				if len(stats) == 0 {
					fmt.Fprintln(app.Stderr, "no VM is running: start one with `banger vm start NAME`")
				}
				return renderStats(app.Stdout, stats)
			}
			return watchStats(ctx, app, fetch, interval, asJSON, len(args) == 1)
		}),
	}
	c.Flags().BoolVarP(&watch, "watch", "w", false, "redraw every --interval until Ctrl-C")
	c.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between refreshes with --watch")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (with --watch, one object a line)")
	return c
}

// watchStats fetches and prints every interval until ctx ends (Ctrl-C),
// which is a normal end. On a terminal each table replaces the last.
func watchStats(ctx context.Context, app *App, fetch func() ([]api.VMStats, error), interval time.Duration, asJSON, one bool) error {
	tty := !asJSON && isTerminal(app.Stdout)
	enc := json.NewEncoder(app.Stdout)
	t := time.NewTicker(interval)
	defer t.Stop()
	for first := true; ; first = false {
		stats, err := fetch()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case asJSON && one:
			err = enc.Encode(stats[0])
		case asJSON:
			err = enc.Encode(api.StatsList{Stats: stats})
		default:
			if tty {
				fmt.Fprint(app.Stdout, "\x1b[H\x1b[2J") // home, clear
			} else if !first {
				fmt.Fprintln(app.Stdout)
			}
			fmt.Fprintf(app.Stdout, "every %s, %s (Ctrl-C ends)\n", interval, time.Now().Format("15:04:05"))
			err = renderStats(app.Stdout, stats)
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// renderStats prints the figures as a table, sizes in binary units.
func renderStats(w io.Writer, stats []api.VMStats) error {
	t := newTable(w, "NAME", "CPU%", "HOST-RSS", "GUEST-MEM", "DISK", "NET-RX", "NET-TX")
	for _, s := range stats {
		cpu := "-"
		if s.CPUPercent >= 0 {
			cpu = fmt.Sprintf("%.1f", s.CPUPercent)
		}
		guest := "-"
		if s.GuestMemTotalBytes != nil && s.GuestMemUsedBytes != nil {
			guest = fmtBytes(*s.GuestMemUsedBytes) + "/" + fmtBytes(*s.GuestMemTotalBytes)
		}
		disk := "-"
		if len(s.Disks) > 0 {
			var used, size int64
			for _, d := range s.Disks {
				used += d.UsedBytes
				size += d.SizeBytes
			}
			disk = fmtBytes(used) + "/" + fmtBytes(size)
		}
		t.row(s.VM, cpu, fmtBytes(s.HostRSSBytes), guest, disk, fmtBytes(s.NetRxBytes), fmtBytes(s.NetTxBytes))
	}
	return t.flush()
}
