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
	Total    StageStats `json:"total"`
}

func newBenchCreateCmd(app *App) *cobra.Command {
	var (
		runs, parallel int
		req            api.CreateVMRequest
		asJSON         bool
	)
	c := &cobra.Command{
		Use:   "create [--runs N] [--parallel P] [--image I] [--json]",
		Short: "Create and delete VMs; report each stage's p50/p95 and the host-side total",
		Long: `Create VMs, wait until they are ready, delete them: --runs rounds one
after another, each of --parallel creates at once. Then report every create
stage's duration (p50, p95, min, max) over all the creates, the host-side
total and the total. The figures come from the operation records, the same
durations the lifecycle log holds.

host-side is the host's share of a create: from the request to the end of
the hypervisor's launch stage — allocate, heal image, upper disk (or clone
rootfs for an image that is not a shared base), work
disk, sync auth files, acquire tap and launch, with the gaps between them —
when every disk and the network are ready. What follows is the guest booting.
The report names the image and its rootfs's size and what it occupies on
disk, so that images of different sizes can be compared.`,
		Example: "  banger bench create --runs 5\n" +
			"  banger bench create --parallel 4 --runs 1\n" +
			"  banger bench create --image agents --runs 3 --json | jq .host_side",
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if runs < 1 {
				return usageError("--runs must be at least 1: how many rounds of creates to run")
			}
			if parallel < 1 {
				return usageError("--parallel must be at least 1: how many creates each round begins at once")
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			created := 0
			ops, image, err := createbench.Run(c.Context(), cl, createbench.Options{
				Rounds: runs, Parallel: parallel, Request: req,
				Created: func(round int, v api.VM, op api.Operation) {
					created++
					if !asJSON {
						fmt.Fprintf(app.Stderr, "round %d/%d: %s ready in %s\n", round, runs, v.Name, fmtDuration(op.FinishedAt.Sub(op.CreatedAt)))
					}
				},
			})
			if err != nil {
				return err
			}
			sum := createbench.Summarize(ops)
			rep := BenchReport{Runs: runs, Parallel: parallel, Creates: len(ops),
				HostSide: stageStats(sum.HostSide), Total: stageStats(sum.Total)}
			for _, s := range sum.Stages {
				rep.Stages = append(rep.Stages, stageStats(s))
			}
			if image != "" {
				img, err := cl.Image(c.Context(), image)
				if err != nil {
					return fmt.Errorf("reading image %s: %w", image, err)
				}
				rep.Image, rep.Rootfs = img.Name, benchRootfs(img)
			}
			if asJSON {
				return printJSON(app.Stdout, rep)
			}
			if fs := rep.Rootfs; fs != nil {
				used := "used unknown"
				if fs.UsedBytes != nil {
					used = fmtBytes(*fs.UsedBytes) + " used"
				}
				fmt.Fprintf(app.Stdout, "image %s: rootfs %s, %s\n", rep.Image, fmtBytes(fs.Bytes), used)
			}
			fmt.Fprintf(app.Stdout, "%d creates: %d round(s) of %d at once\n\n", rep.Creates, runs, parallel)
			t := newTable(app.Stdout, "STAGE", "RUNS", "P50", "P95", "MIN", "MAX")
			for _, s := range append(rep.Stages, rep.HostSide, rep.Total) {
				t.row(s.Stage, fmt.Sprint(s.Runs), ms(s.P50MS), ms(s.P95MS), ms(s.MinMS), ms(s.MaxMS))
			}
			return t.flush()
		},
	}
	c.Flags().IntVar(&runs, "runs", 3, "how many rounds of creates (one after another)")
	c.Flags().IntVar(&parallel, "parallel", 1, "how many creates each round begins at once")
	c.Flags().StringVar(&req.Image, "image", "", "image to boot (default: the newest ready image)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
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
