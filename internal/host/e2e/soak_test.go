package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
)

// The load test's real-QEMU variant (the fake one, 200 cycles, is
// daemontest's TestFakeSoak): twice, four VMs are created at once from
// the shared base, each runs a command (its hostname, and / an overlay),
// and the four are deleted at
// once. Every command succeeds, the daemon's log has no error and no
// store trouble, and nothing leaks (verify: no QEMU, TAP, nftables rule
// or disk without its VM).
func TestSoakQEMU(t *testing.T) {
	const rounds, parallel = 2, 4
	e := vmEnv(t)
	all := func(args func(i int) []string) []result {
		out := make([]result, parallel)
		var wg sync.WaitGroup
		for i := range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := e.command(e.extra, args(i)...)
				var o, eb strings.Builder
				cmd.Stdout, cmd.Stderr = &o, &eb
				err := cmd.Run()
				out[i] = result{stdout: o.String(), stderr: eb.String()}
				if err != nil {
					out[i].code = -1
					if c := cmd.ProcessState; c != nil {
						out[i].code = c.ExitCode()
					}
				}
			}()
		}
		wg.Wait()
		return out
	}
	for round := range rounds {
		start := time.Now()
		name := func(i int) string { return fmt.Sprintf("soak-%d-%d", round, i) }
		for i, r := range all(func(i int) []string {
			return []string{"vm", "create", "--name", name(i), "--memory", "512MiB", "--disk", "1GiB"}
		}) {
			if r.code != 0 {
				t.Fatalf("round %d: vm create %s: exit %d\n%s", round, name(i), r.code, tail(r.stderr, 30))
			}
		}
		created := time.Since(start)
		// Each guest answers, on the shared base (its / an overlay).
		for i, r := range all(func(i int) []string {
			return []string{"vm", "exec", name(i), "--", "sh", "-c", "hostname; findmnt -no FSTYPE /"}
		}) {
			if want := name(i) + "\noverlay\n"; r.code != 0 || r.stdout != want {
				t.Errorf("round %d: exec in %s: exit %d, %q (want %q) %q", round, name(i), r.code, r.stdout, want, r.stderr)
			}
		}
		for i := range parallel {
			if v := vmShow(t, e, name(i)); v.State != api.VMRunning {
				t.Errorf("round %d: %s is %s, want running", round, v.Name, v.State)
			}
		}
		for i, r := range all(func(i int) []string { return []string{"vm", "delete", name(i)} }) {
			if r.code != 0 {
				t.Errorf("round %d: vm delete %s: exit %d\n%s", round, name(i), r.code, tail(r.stderr, 30))
			}
		}
		if out := e.must("vm", "list").stdout; strings.Contains(out, "soak-") {
			t.Errorf("round %d: VMs left after delete:\n%s", round, out)
		}
		verifyClean(t, e)
		st, _ := daemonStatus(t, e)
		t.Logf("round %d: %d creates at once in %s, then exec and delete, all in %s (wall time, for the record); daemon pid %d RSS %s",
			round, parallel, created.Round(time.Second), time.Since(start).Round(time.Second), st.PID, vmRSS(st.PID))
	}
	checkDaemonLog(t, e)
}

// vmRSS returns the VmRSS line of process pid, for the record.
func vmRSS(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// checkDaemonLog fails the test for every error-level line in the
// daemon's log and every line naming a busy or locked store.
func checkDaemonLog(t *testing.T, e *env) {
	t.Helper()
	for _, f := range []string{"bangerd.log.1", "bangerd.log"} {
		b, err := os.ReadFile(filepath.Join(e.home, "state", f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			low := strings.ToLower(line)
			if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(low, "sqlite_busy") || strings.Contains(low, "database is locked") {
				t.Errorf("daemon log: %s", line)
			}
		}
	}
}
