package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
)

func daemonStatus(t *testing.T, e *env) (api.DaemonStatus, result) {
	t.Helper()
	r := e.mustRun("daemon", "status", "--json")
	var st api.DaemonStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("decoding status %q: %v", r.stdout, err)
	}
	return st, r
}

// The lifecycle a user sees: the first command starts the daemon, a
// rebuilt bangerd replaces the running one on the next call, stop stops it.
func TestDaemonLifecycle(t *testing.T) {
	e := newEnv(t)
	e.privateBin()

	st, r := daemonStatus(t, e)
	if st.BuildID != "e2e-a" || st.PID == 0 || st.Socket != filepath.Join(e.home, "run", "bangerd.sock") {
		t.Fatalf("status = %+v", st)
	}
	if r.stderr != "" {
		t.Errorf("starting on demand printed %q; want silence", r.stderr)
	}
	if st.StorePath != filepath.Join(e.home, "state", "banger.db") {
		t.Errorf("store path %s", st.StorePath)
	}

	// The table form names every field the issue asks for.
	table := e.mustRun("daemon", "status").stdout
	for _, field := range []string{"version", "build id", "pid", "socket", "uptime", "store"} {
		if !strings.Contains(table, field) {
			t.Errorf("daemon status table lacks %q:\n%s", field, table)
		}
	}

	// Same build: the daemon is reused.
	st2, r2 := daemonStatus(t, e)
	if st2.PID != st.PID || r2.stderr != "" {
		t.Errorf("second call: pid %d (was %d), stderr %q; want the same daemon, silently", st2.PID, st.PID, r2.stderr)
	}

	// Rebuild bangerd with a new build id: the next call restarts it.
	if err := build(e.bin, "e2e-b", "bangerd"); err != nil {
		t.Fatal(err)
	}
	st3, r3 := daemonStatus(t, e)
	if st3.BuildID != "e2e-b" || st3.PID == st.PID {
		t.Fatalf("after rebuild: build %s pid %d, want e2e-b in a new process", st3.BuildID, st3.PID)
	}
	if !strings.Contains(r3.stderr, "stale") {
		t.Errorf("restart not announced: %q", r3.stderr)
	}
	waitGone(t, st.PID)

	// Stop: clean exit, no socket, no pid file.
	r4 := e.mustRun("daemon", "stop")
	if !strings.Contains(r4.stdout, "stopped") {
		t.Errorf("stop said %q", r4.stdout)
	}
	waitGone(t, st3.PID)
	for _, f := range []string{st3.Socket, e.pidFile()} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left behind after stop", f)
		}
	}
	if r := e.mustRun("daemon", "stop"); !strings.Contains(r.stdout, "not running") {
		t.Errorf("second stop said %q", r.stdout)
	}

	// restart from stopped starts it; logs show the lifecycle.
	e.mustRun("daemon", "restart")
	logs := e.mustRun("daemon", "logs", "-n", "0").stdout
	for _, want := range []string{"bangerd starting", "bangerd ready", "shutdown requested", "bangerd stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("daemon logs lack %q", want)
		}
	}
	e.mustRun("daemon", "stop")
}

// A long operation runs in the daemon and is followed live: `doctor --deep`
// begins one, prints its stages, and the record stays queryable.
func TestDeepDoctorIsAnOperation(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a probe guest (up to the probe timeout)")
	}
	e := newEnv(t)
	r := e.run("doctor", "--deep", "--probe-timeout", "5s")
	if r.code != 0 && r.code != 1 {
		t.Fatalf("doctor --deep: exit %d: %s", r.code, r.stderr)
	}
	for _, stage := range []string{"host checks", "kvm device"} {
		if !strings.Contains(r.stderr, "✓ "+stage) {
			t.Errorf("live stages lack %q:\n%s", stage, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "kvm-boot") {
		t.Errorf("report lacks the kvm-boot check:\n%s", r.stdout)
	}
	t.Logf("doctor --deep on this host:\n%s%s", r.stderr, r.stdout)

	var list api.OperationList
	if err := json.Unmarshal([]byte(e.mustRun("operation", "list", "--json").stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Operations) != 1 || list.Operations[0].Kind != "doctor" || list.Operations[0].State != api.OperationSucceeded {
		t.Fatalf("operations = %+v", list.Operations)
	}
	op := list.Operations[0]
	var rep api.DoctorReport
	if err := json.Unmarshal(op.Result, &rep); err != nil || len(rep.Checks) == 0 {
		t.Fatalf("operation result %s: %v", op.Result, err)
	}
	for _, st := range op.Stages {
		if st.FinishedAt.IsZero() {
			t.Errorf("stage %s not finished", st.Name)
		}
	}
	show := e.mustRun("operation", "show", op.ID).stdout
	if !strings.Contains(show, "host checks") {
		t.Errorf("operation show:\n%s", show)
	}
	// Watching a finished operation replays it and ends.
	w := e.mustRun("operation", "watch", op.ID)
	if !strings.Contains(w.stderr, "✓ host checks") || !strings.Contains(w.stderr, "done in") {
		t.Errorf("watch replay:\n%s", w.stderr)
	}

	// A quick doctor now reports the recorded probe instead of "not probed".
	quick := e.run("doctor", "--json")
	var qrep api.DoctorReport
	if err := json.Unmarshal([]byte(quick.stdout), &qrep); err != nil {
		t.Fatal(err)
	}
	for _, c := range qrep.Checks {
		if c.Name == "kvm-boot" && strings.Contains(c.Detail, "not probed yet") {
			t.Errorf("quick doctor forgot the probe: %+v", c)
		}
	}
}
