package createbench_test

import (
	"context"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/createbench"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// benchCreates runs b.N rounds of parallel creates of image through a
// fake bangerd's API (createbench.Run, as `banger bench create` does)
// and reports the host-side span per create: its mean as
// hostside-ns/op, its p50 and p95 in ms, and the clone rootfs stage's
// p50. ns/op is one round's wall time, the deletes included.
func benchCreates(b *testing.B, d *daemontest.Daemon, parallel int, image string) {
	b.ResetTimer()
	ops, _, err := createbench.Run(context.Background(), d.Client, createbench.Options{
		Rounds: b.N, Parallel: parallel, Request: api.CreateVMRequest{Image: image},
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	rep := createbench.Summarize(ops)
	if rep.HostSide.N != b.N*parallel {
		b.Fatalf("host-side over %d creates, want %d", rep.HostSide.N, b.N*parallel)
	}
	var sum time.Duration
	for _, op := range ops {
		d, _ := createbench.HostSide(op)
		sum += d
	}
	msOf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(sum)/float64(len(ops)), "hostside-ns/op")
	b.ReportMetric(msOf(rep.HostSide.P50), "hostside-p50-ms")
	b.ReportMetric(msOf(rep.HostSide.P95), "hostside-p95-ms")
	for _, s := range rep.Stages {
		if s.Name == "clone rootfs" {
			b.ReportMetric(msOf(s.P50), "clone-rootfs-p50-ms")
		}
		// Where the time goes (go test -v): each stage over the creates.
		b.Logf("%-16s n=%d p50 %v p95 %v", s.Name, s.N, s.P50, s.P95)
	}
	b.Logf("%-16s n=%d p50 %v p95 %v", rep.HostSide.Name, rep.HostSide.N, rep.HostSide.P50, rep.HostSide.P95)
}

// BenchmarkHostSide is the host's share of a create (request → the
// hypervisor launched with every disk and the network ready) against a
// fake bangerd (hvtest.Fake, in-memory network, a 32 MiB image): one
// create at a time, and rounds of 10 at once.
func BenchmarkHostSide(b *testing.B) {
	d := daemontest.Start(b, daemontest.Options{Fake: true})
	for _, bc := range []struct {
		name     string
		parallel int
	}{{"single", 1}, {"parallel10", 10}} {
		b.Run(bc.name, func(b *testing.B) { benchCreates(b, d, bc.parallel, daemontest.FakeImage) })
	}
}

// BenchmarkHostSideImageSize compares one create at a time from an image
// whose rootfs is a sparse 1 GiB ext4 filesystem with one of 16 GiB
// (both empty: the size alone differs). Today each VM gets its own copy
// of the rootfs, so this is the baseline a shared read-only base must
// beat (issue #13: the large within 10 % of the small).
func BenchmarkHostSideImageSize(b *testing.B) {
	d := daemontest.Start(b, daemontest.Options{Fake: true})
	for _, bc := range []struct {
		name  string
		bytes int64
	}{{"rootfs1GiB", 1 << 30}, {"rootfs16GiB", 16 << 30}} {
		img := d.SeedImageSized(b, "size-"+bc.name[len("rootfs"):len(bc.name)-3]+"g", bc.bytes)
		b.Run(bc.name, func(b *testing.B) { benchCreates(b, d, 1, img.Name) })
	}
}
