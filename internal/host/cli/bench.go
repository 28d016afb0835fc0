package cli

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/createbench"
	"github.com/spf13/cobra"
)

func newBenchCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:     "bench",
		Short:   "Measure banger on this host",
		Example: "  banger bench create --runs 5",
	}
	c.AddCommand(newBenchCreateCmd(app))
	return c
}

// StageStats are the figures of one stage over the creates.
type StageStats struct {
	Stage string `json:"stage"`
	// Runs is how many creates the figures are over.
	Runs  int     `json:"runs"`
	P50MS float64 `json:"p50_ms"`
	P95MS float64 `json:"p95_ms"`
	MinMS float64 `json:"min_ms"`
	MaxMS float64 `json:"max_ms"`
}

// BenchRootfs is how big the booted image's rootfs is.
type BenchRootfs struct {
	Bytes int64 `json:"bytes"`
	// UsedBytes is what the file occupies on the host's disk (it is
	// sparse); absent when banger could not stat it.
	UsedBytes *int64 `json:"used_bytes,omitempty"`
}

// BenchReport is `banger bench create --json`.
type BenchReport struct {
	// Runs rounds of Parallel creates: Creates in all.
	Runs     int `json:"runs"`
	Parallel int `json:"parallel"`
	Creates  int `json:"creates"`
	// Image is the image every create booted, Rootfs its rootfs.
	Image  string       `json:"image,omitempty"`
	Rootfs *BenchRootfs `json:"rootfs,omitempty"`
	Stages []StageStats `json:"stages"`
	// HostSide is from the request to the hypervisor launched with every
	// disk and the network ready (createbench.HostSide).
	HostSide StageStats `json:"host_side"`
	// AgentReady is from the request to the guest agent answering: the
	// end of agent health (a boot) or identity (a warm create).
	AgentReady StageStats `json:"agent_ready"`
	Total      StageStats `json:"total"`
}

// BenchCompare is `banger bench create --compare --json`: the same
// creates cold (booted) and warm (restored from the image's warm
// snapshot), one run after the other, and how many times faster warm is.
type BenchCompare struct {
	Cold BenchReport `json:"cold"`
	Warm BenchReport `json:"warm"`
	// AgentReadySpeedup and TotalSpeedup are cold p50 / warm p50.
	AgentReadySpeedup float64 `json:"agent_ready_speedup"`
	TotalSpeedup      float64 `json:"total_speedup"`
}

func newBenchCreateCmd(app *App) *cobra.Command {
	var (
		runs, parallel int
		req            api.CreateVMRequest
		asJSON         bool
		compare        bool
	)
	c := &cobra.Command{
		Use:   "create [--runs N] [--parallel P] [--image I] [--cold | --compare] [--json]",
		Short: "Create and delete VMs; report each stage's p50/p95 and the host-side total",
		Long: `Create VMs, wait until they are ready, delete them: --runs rounds one
after another, each of --parallel creates at once. Then report every create
stage's duration (p50, p95, min, max) over all the creates, the host-side
total, the agent-ready time and the total. The figures come from the
operation records, the same durations the lifecycle log holds.

host-side is the host's share of a create: from the request to the end of
the hypervisor's launch stage — allocate, heal image, upper disk (or clone
rootfs for an image that is not a shared base), work
disk, sync auth files, acquire tap and launch, with the gaps between them —
when every disk and the network are ready. What follows is the guest booting.
agent-ready is from the request to the guest agent answering (the end of
agent health; for a VM restored from a warm snapshot, of identity).
The report names the image and its rootfs's size and what it occupies on
disk, so that images of different sizes can be compared.

A create restores the image's warm snapshot when it has one of the VM's
shape (banger image warm); --cold boots instead. --compare runs the same
creates cold, then warm, and reports both and how many times faster warm
is: warm the image first.`,
		Example: "  banger bench create --runs 5\n" +
			"  banger bench create --parallel 4 --runs 1\n" +
			"  banger image warm agents && banger bench create --image agents --compare --runs 3\n" +
			"  banger bench create --image agents --runs 3 --json | jq .host_side",
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if runs < 1 {
				return usageError("--runs must be at least 1: how many rounds of creates to run")
			}
			if parallel < 1 {
				return usageError("--parallel must be at least 1: how many creates each round begins at once")
			}
			if compare && req.Cold {
				return usageError("--compare runs cold and warm creates itself: leave out --cold")
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			bench := func(req api.CreateVMRequest, label string) (BenchReport, error) {
				ops, image, err := createbench.Run(c.Context(), cl, createbench.Options{
					Rounds: runs, Parallel: parallel, Request: req,
					Created: func(round int, v api.VM, op api.Operation) {
						if !asJSON {
							fmt.Fprintf(app.Stderr, "%sround %d/%d: %s ready in %s\n", label, round, runs, v.Name, fmtDuration(op.FinishedAt.Sub(op.CreatedAt)))
						}
					},
				})
				if err != nil {
					return BenchReport{}, err
				}
				sum := createbench.Summarize(ops)
				rep := BenchReport{Runs: runs, Parallel: parallel, Creates: len(ops),
					HostSide: stageStats(sum.HostSide), AgentReady: stageStats(sum.AgentReady), Total: stageStats(sum.Total)}
				for _, s := range sum.Stages {
					rep.Stages = append(rep.Stages, stageStats(s))
				}
				if image != "" {
					img, err := cl.Image(c.Context(), image)
					if err != nil {
						return rep, fmt.Errorf("reading image %s: %w", image, err)
					}
					rep.Image, rep.Rootfs = img.Name, benchRootfs(img)
				}
				if compare && !req.Cold {
					for _, op := range ops {
						if !createbench.Warm(op) {
							return rep, fmt.Errorf("image %s has no warm snapshot of this VM shape, so the warm creates booted: warm it first with `banger image warm %s`", rep.Image, rep.Image)
						}
					}
				}
				return rep, nil
			}
			if !compare {
				rep, err := bench(req, "")
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(app.Stdout, rep)
				}
				return printBench(app, rep)
			}
			cold := req
			cold.Cold = true
			var cmp BenchCompare
			if cmp.Cold, err = bench(cold, "cold "); err != nil {
				return err
			}
			if cmp.Warm, err = bench(req, "warm "); err != nil {
				return err
			}
			cmp.AgentReadySpeedup = speedup(cmp.Cold.AgentReady.P50MS, cmp.Warm.AgentReady.P50MS)
			cmp.TotalSpeedup = speedup(cmp.Cold.Total.P50MS, cmp.Warm.Total.P50MS)
			if asJSON {
				return printJSON(app.Stdout, cmp)
			}
			for _, r := range []struct {
				label string
				rep   BenchReport
			}{{"cold (booted)", cmp.Cold}, {"warm (restored from the image's warm snapshot)", cmp.Warm}} {
				fmt.Fprintf(app.Stdout, "%s\n", r.label)
				if err := printBench(app, r.rep); err != nil {
					return err
				}
				fmt.Fprintln(app.Stdout)
			}
			fmt.Fprintf(app.Stdout, "warm is %.1fx faster to agent-ready (p50 %s vs %s) and %.1fx faster in total (p50 %s vs %s)\n",
				cmp.AgentReadySpeedup, ms(cmp.Warm.AgentReady.P50MS), ms(cmp.Cold.AgentReady.P50MS),
				cmp.TotalSpeedup, ms(cmp.Warm.Total.P50MS), ms(cmp.Cold.Total.P50MS))
			return nil
		},
	}
	c.Flags().IntVar(&runs, "runs", 3, "how many rounds of creates (one after another)")
	c.Flags().IntVar(&parallel, "parallel", 1, "how many creates each round begins at once")
	c.Flags().StringVar(&req.Image, "image", "", "image to boot (default: the newest ready image)")
	c.Flags().BoolVar(&req.Cold, "cold", false, "boot every VM, even when the image has a warm snapshot")
	c.Flags().BoolVar(&compare, "compare", false, "run the creates cold, then warm, and compare")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}

// printBench prints one report as a table.
func printBench(app *App, rep BenchReport) error {
	if fs := rep.Rootfs; fs != nil {
		used := "used unknown"
		if fs.UsedBytes != nil {
			used = fmtBytes(*fs.UsedBytes) + " used"
		}
		fmt.Fprintf(app.Stdout, "image %s: rootfs %s, %s\n", rep.Image, fmtBytes(fs.Bytes), used)
	}
	fmt.Fprintf(app.Stdout, "%d creates: %d round(s) of %d at once\n\n", rep.Creates, rep.Runs, rep.Parallel)
	t := newTable(app.Stdout, "STAGE", "RUNS", "P50", "P95", "MIN", "MAX")
	for _, s := range append(rep.Stages, rep.HostSide, rep.AgentReady, rep.Total) {
		t.row(s.Stage, fmt.Sprint(s.Runs), ms(s.P50MS), ms(s.P95MS), ms(s.MinMS), ms(s.MaxMS))
	}
	return t.flush()
}

// speedup is a / b, or 0 when b is 0.
func speedup(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func ms(v float64) string { return fmtDuration(time.Duration(v * float64(time.Millisecond))) }

// stageStats is s in milliseconds.
func stageStats(s createbench.Stats) StageStats {
	m := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return StageStats{Stage: s.Name, Runs: s.N, P50MS: m(s.P50), P95MS: m(s.P95), MinMS: m(s.Min), MaxMS: m(s.Max)}
}

// benchRootfs is the size of img's rootfs (nil if it has none). The
// rootfs is a file on this host (the daemon's own); what it occupies is
// read from its blocks, and left out when the file cannot be read.
func benchRootfs(img api.Image) *BenchRootfs {
	for _, a := range img.Artifacts {
		if a.Kind != "rootfs" {
			continue
		}
		out := &BenchRootfs{Bytes: a.Size}
		if fi, err := os.Stat(a.Path); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				used := st.Blocks * 512
				out.UsedBytes = &used
			}
		}
		return out
	}
	return nil
}
