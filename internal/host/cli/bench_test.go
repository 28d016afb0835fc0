package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// rootfsUsed is the used part of bench create's image line: what a
// sparse file occupies depends on the filesystem under the test's root.
var rootfsUsed = regexp.MustCompile(`(?m)^(image \S+: rootfs \S+), \S+ used$`)

// TestBenchCreate runs bench create against a real bangerd (fake
// hypervisor): --parallel 3 --runs 2 makes 6 VMs, 3 at once, deletes
// every one, and reports each stage, the host-side total and the total
// over all 6; the table is pinned by a golden with the figures
// normalized, the JSON by its counts.
func TestBenchCreate(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	for _, tt := range []struct {
		golden string
		args   []string
	}{
		{"bench-create-parallel", []string{"bench", "create", "--parallel", "3", "--runs", "2"}},
		{"bench-create-parallel-json", []string{"bench", "create", "--parallel", "3", "--runs", "2", "--image", "base", "--json"}},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			acquired, released := h.d.Network.Counts()
			r := h.run(context.Background(), tt.args...)
			if r.code != ExitOK {
				t.Fatalf("banger %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tt.args, " "), r.code, r.stdout, r.stderr)
			}
			// Every VM is gone, and each took and gave back one TAP.
			if vms, err := h.d.Client.VMs(context.Background()); err != nil || len(vms) != 0 {
				t.Errorf("after the bench: VMs %v (%v), want none", vms, err)
			}
			if running := h.d.Fake.Running(); len(running) != 0 {
				t.Errorf("after the bench: %d fake hypervisors still run", len(running))
			}
			a, rel := h.d.Network.Counts()
			if a-acquired != 6 || rel-released != 6 {
				t.Errorf("TAPs acquired %d, released %d during the bench; want 6 and 6", a-acquired, rel-released)
			}
			if strings.HasSuffix(tt.golden, "-json") {
				checkBenchJSON(t, r.stdout)
				if r.stderr != "" {
					t.Errorf("--json printed on stderr:\n%s", r.stderr)
				}
				return
			}
			for round := 1; round <= 2; round++ {
				if n := strings.Count(r.stderr, fmt.Sprintf("round %d/2: ", round)); n != 3 {
					t.Errorf("stderr names %d VMs ready in round %d, want 3:\n%s", n, round, r.stderr)
				}
			}
			r.stdout = rootfsUsed.ReplaceAllString(r.stdout, "$1, <USED> used")
			r.stderr = "" // generated VM names, in the order they were ready
			compareGolden(t, "commands/"+tt.golden+".golden", h.golden(tt.args, r))
		})
	}
}

// checkBenchJSON checks the counts of bench create --json for 2 rounds of
// 3 creates, and that the host-side span is within the total.
func checkBenchJSON(t *testing.T, stdout string) {
	t.Helper()
	var rep BenchReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("bench create --json: %v\n%s", err, stdout)
	}
	if rep.Runs != 2 || rep.Parallel != 3 || rep.Creates != 6 {
		t.Errorf("runs %d, parallel %d, creates %d; want 2, 3, 6", rep.Runs, rep.Parallel, rep.Creates)
	}
	if fs := rep.Rootfs; rep.Image != daemontest.FakeImage || fs == nil || fs.Bytes != daemontest.SeedRootfsBytes || fs.UsedBytes == nil ||
		*fs.UsedBytes <= 0 || *fs.UsedBytes > fs.Bytes {
		t.Errorf("image %q, rootfs %+v; want %s with a 32 MiB rootfs, partly used", rep.Image, fs, daemontest.FakeImage)
	}
	var names []string
	for _, s := range rep.Stages {
		names = append(names, s.Stage)
		if s.Runs != 6 {
			t.Errorf("stage %s over %d creates, want 6", s.Stage, s.Runs)
		}
	}
	// The stages are the daemon's (the golden pins them); what matters
	// here is that the host-side span has its end, the launch, and that
	// the guest's stages follow it.
	launch, health := slices.Index(names, "launch fake"), slices.Index(names, "agent health")
	if len(names) == 0 || names[0] != "allocate" || launch < 0 || health < launch {
		t.Errorf("stages %v: want allocate first, launch fake, then agent health", names)
	}
	hs, total := rep.HostSide, rep.Total
	if hs.Stage != "host-side" || hs.Runs != 6 || total.Runs != 6 {
		t.Errorf("host_side %+v, total %+v: want both over 6 creates", hs, total)
	}
	if hs.MinMS <= 0 || hs.MaxMS > total.MaxMS || hs.MinMS > total.MinMS {
		t.Errorf("host_side %+v is not within total %+v", hs, total)
	}
}

// TestBenchCreateCompare runs the same creates cold and warm against a
// real bangerd (fake hypervisor) whose image was warmed: the cold ones
// boot, the warm ones restore, and the report compares them; without a
// warm snapshot --compare says how to make one.
func TestBenchCreateCompare(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	ctx := context.Background()
	r := h.run(ctx, "bench", "create", "--compare", "--runs", "1", "--image", daemontest.FakeImage)
	if r.code == ExitOK || !strings.Contains(r.stderr, "banger image warm "+daemontest.FakeImage) {
		t.Errorf("--compare of an image without a warm snapshot: exit %d\n%s", r.code, r.stderr)
	}
	if r := h.run(ctx, "bench", "create", "--compare", "--cold"); r.code != ExitUsage {
		t.Errorf("--compare --cold: exit %d, want a usage error", r.code)
	}
	op, err := h.d.Client.BeginWarmImage(ctx, daemontest.FakeImage, api.WarmImageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if op, err = h.d.Client.WatchOperation(ctx, op.ID, func(api.OperationEvent) error { return nil }); err != nil || op.Error != nil {
		t.Fatalf("warming the image: %v %+v", err, op.Error)
	}
	r = h.run(ctx, "bench", "create", "--compare", "--runs", "2", "--image", daemontest.FakeImage, "--json")
	if r.code != ExitOK {
		t.Fatalf("bench create --compare: exit %d\n%s", r.code, r.stderr)
	}
	var cmp BenchCompare
	if err := json.Unmarshal([]byte(r.stdout), &cmp); err != nil {
		t.Fatal(err)
	}
	stages := func(rep BenchReport) string {
		var names []string
		for _, s := range rep.Stages {
			names = append(names, s.Stage)
		}
		return strings.Join(names, ",")
	}
	if !strings.Contains(stages(cmp.Cold), "launch fake") || strings.Contains(stages(cmp.Cold), "restore") {
		t.Errorf("cold creates ran %s", stages(cmp.Cold))
	}
	if !strings.Contains(stages(cmp.Warm), "restore fake") || strings.Contains(stages(cmp.Warm), "agent health") {
		t.Errorf("warm creates ran %s", stages(cmp.Warm))
	}
	if cmp.Cold.Creates != 2 || cmp.Warm.Creates != 2 || cmp.Warm.AgentReady.Runs != 2 || cmp.AgentReadySpeedup <= 0 || cmp.TotalSpeedup <= 0 {
		t.Errorf("compare report: %+v", cmp)
	}
	if vms, _ := h.d.Client.VMs(ctx); len(vms) != 0 {
		t.Errorf("after the bench: %d VMs", len(vms))
	}
}
