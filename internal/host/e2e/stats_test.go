package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
)

// checkStats reads `banger vm stats NAME --json` of a running VM that
// booted and answered ssh, and checks every figure is a real one: host
// RSS and CPU of its QEMU, the guest's own memory within its memMiB, both
// disk files, traffic both ways; GET /v1/stats lists it too.
func checkStats(t *testing.T, e *env, name string, memMiB int64) {
	t.Helper()
	var s api.VMStats
	if r := e.must("vm", "stats", name, "--json"); json.Unmarshal([]byte(r.stdout), &s) != nil {
		t.Fatalf("vm stats --json printed %q", r.stdout)
	}
	if s.VM != name || s.HostRSSBytes <= 0 || s.CPUPercent <= 0 {
		t.Errorf("stats %+v: want the VM's name, host RSS > 0 and CPU > 0 (its boot under emulation)", s)
	}
	total, used := s.GuestMemTotalBytes, s.GuestMemUsedBytes
	if total == nil || used == nil || *total <= 0 || *total > memMiB<<20 || *used <= 0 || *used > *total {
		t.Errorf("guest memory total %v used %v: want 0 < used <= total <= %d MiB", total, used, memMiB)
	}
	disks := map[string]api.DiskStats{}
	for _, d := range s.Disks {
		disks[d.Name] = d
	}
	for _, n := range []string{"rootfs", "work"} {
		if d, ok := disks[n]; !ok || d.SizeBytes <= 0 || d.UsedBytes <= 0 {
			t.Errorf("disk %s: %+v (disks %+v)", n, d, s.Disks)
		}
	}
	if s.NetRxBytes <= 0 || s.NetTxBytes <= 0 {
		t.Errorf("network rx %d tx %d after ssh sessions: want traffic both ways", s.NetRxBytes, s.NetTxBytes)
	}
	var all api.StatsList
	if r := e.must("vm", "stats", "--json"); json.Unmarshal([]byte(r.stdout), &all) != nil || len(all.Stats) != 1 || all.Stats[0].VM != name {
		t.Errorf("vm stats --json (all): %q", r.stdout)
	}
	t.Logf("vm stats:\n%s", e.must("vm", "stats").stdout)
}

// checkStatsStopped: a stopped VM's stats are refused with the fix, and
// the list of all leaves it out.
func checkStatsStopped(t *testing.T, e *env, name string) {
	t.Helper()
	r := e.runWith(e.extra, "vm", "stats", name)
	if want := "VM " + name + " is stopped: start it with `banger vm start " + name + "`"; r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("vm stats of a stopped VM: exit %d, stderr %q; want an error saying %q", r.code, r.stderr, want)
	}
	var all api.StatsList
	if r := e.must("vm", "stats", "--json"); json.Unmarshal([]byte(r.stdout), &all) != nil || len(all.Stats) != 0 {
		t.Errorf("vm stats --json with no VM running: %q", r.stdout)
	}
}
