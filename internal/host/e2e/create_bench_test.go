package e2e

import (
	"encoding/json"
	"testing"

	"github.com/bangerdev/banger/internal/host/cli"
)

// BenchmarkCreateHostSide runs `banger bench create` over real QEMU VMs
// on a shared base (the bootstrapped Debian image): one create at a time
// and four at once. It reports the host-side p50/p95 (request →
// hypervisor launched, disks and network ready) in ms per create, and
// logs the whole per-stage table. Figures only; run with
// `go test -run '^$' -bench CreateHostSide -benchtime 1x ./internal/host/e2e`.
func BenchmarkCreateHostSide(b *testing.B) {
	e := vmEnv(b)
	for _, c := range []struct {
		name     string
		parallel string
		runs     string
	}{{"single", "1", "5"}, {"parallel-4", "4", "2"}} {
		b.Run(c.name, func(b *testing.B) {
			var rep cli.BenchReport
			for b.Loop() {
				r := e.must("bench", "create", "--runs", c.runs, "--parallel", c.parallel, "--json")
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					b.Fatalf("bench create --json: %v\n%s", err, r.stdout)
				}
			}
			if rep.HostSide.Runs == 0 {
				b.Fatalf("no host-side figures: %+v", rep)
			}
			b.ReportMetric(rep.HostSide.P50MS, "host-p50-ms")
			b.ReportMetric(rep.HostSide.P95MS, "host-p95-ms")
			for _, st := range rep.Stages {
				b.Logf("%-14s p50 %7.1f ms  p95 %7.1f ms", st.Stage, st.P50MS, st.P95MS)
			}
			b.Logf("%-14s p50 %7.1f ms  p95 %7.1f ms", "host-side", rep.HostSide.P50MS, rep.HostSide.P95MS)
		})
	}
}
