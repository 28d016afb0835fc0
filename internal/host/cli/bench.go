package cli

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/bangerdev/banger/api"
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

// StageStats are the figures of one stage over the runs.
type StageStats struct {
	Stage string  `json:"stage"`
	Runs  int     `json:"runs"`
	P50MS float64 `json:"p50_ms"`
	P95MS float64 `json:"p95_ms"`
	MinMS float64 `json:"min_ms"`
	MaxMS float64 `json:"max_ms"`
}

// BenchReport is `banger bench create --json`.
type BenchReport struct {
	Runs   int          `json:"runs"`
	Image  string       `json:"image,omitempty"`
	Stages []StageStats `json:"stages"`
	Total  StageStats   `json:"total"`
}

func newBenchCreateCmd(app *App) *cobra.Command {
	var (
		runs   int
		req    api.CreateVMRequest
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "create [--runs N] [--image I] [--json]",
		Short: "Create and delete VMs N times; report each stage's p50/p95",
		Long: `Create a VM, wait until it is ready, delete it, N times in a row, then
report every create stage's duration (p50, p95, min, max) and the total. The
figures come from the operation records, the same durations the lifecycle
log holds.`,
		Example: "  banger bench create --runs 5\n  banger bench create --runs 3 --json | jq .total",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if runs < 1 {
				return usageError("--runs must be at least 1")
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			samples := map[string][]float64{}
			var order []string
			var totals []float64
			for i := range runs {
				r := req
				r.Name = ""
				op, err := cl.BeginCreateVM(c.Context(), r)
				if err != nil {
					return err
				}
				final, err := cl.WatchOperation(c.Context(), op.ID, nil)
				if err != nil {
					return err
				}
				var v api.VM
				if final.State != api.OperationSucceeded {
					if final.Error != nil {
						return fmt.Errorf("run %d: %w", i+1, final.Error)
					}
					return fmt.Errorf("run %d failed", i+1)
				}
				if err := decodeResult(final, &v); err != nil {
					return err
				}
				for _, st := range final.Stages {
					if _, ok := samples[st.Name]; !ok {
						order = append(order, st.Name)
					}
					samples[st.Name] = append(samples[st.Name], float64(st.Duration.D())/float64(time.Millisecond))
				}
				total := final.FinishedAt.Sub(final.CreatedAt)
				totals = append(totals, float64(total)/float64(time.Millisecond))
				if err := cl.DeleteVM(c.Context(), v.Name); err != nil {
					return fmt.Errorf("deleting %s: %w", v.Name, err)
				}
				if !asJSON {
					fmt.Fprintf(app.Stderr, "run %d/%d: %s ready in %s\n", i+1, runs, v.Name, fmtDuration(total))
				}
				req.Image = v.Image
			}
			rep := BenchReport{Runs: runs, Image: req.Image, Total: stats("total", totals)}
			for _, name := range order {
				rep.Stages = append(rep.Stages, stats(name, samples[name]))
			}
			if asJSON {
				return printJSON(app.Stdout, rep)
			}
			t := newTable(app.Stdout, "STAGE", "RUNS", "P50", "P95", "MIN", "MAX")
			for _, s := range append(rep.Stages, rep.Total) {
				t.row(s.Stage, fmt.Sprint(s.Runs), ms(s.P50MS), ms(s.P95MS), ms(s.MinMS), ms(s.MaxMS))
			}
			return t.flush()
		},
	}
	c.Flags().IntVar(&runs, "runs", 3, "how many VMs to create (one after another)")
	c.Flags().StringVar(&req.Image, "image", "", "image to boot (default: the newest ready image)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}

func ms(v float64) string { return fmtDuration(time.Duration(v * float64(time.Millisecond))) }

// stats computes percentiles by the nearest-rank method.
func stats(name string, xs []float64) StageStats {
	s := StageStats{Stage: name, Runs: len(xs)}
	if len(xs) == 0 {
		return s
	}
	sorted := append([]float64(nil), xs...)
	sort.Float64s(sorted)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return sorted[max(0, min(i, len(sorted)-1))]
	}
	s.P50MS, s.P95MS, s.MinMS, s.MaxMS = rank(0.50), rank(0.95), sorted[0], sorted[len(sorted)-1]
	return s
}
