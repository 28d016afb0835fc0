package e2e

import (
	"bytes"
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/poll"
)

// waitFor polls every second until ok says done or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if err := poll.Until(ctx, time.Second, func() (bool, error) { return ok(), nil }); err != nil {
		t.Fatalf("%s: not within %s", what, limit)
	}
}

// checkExited checks that a VM is recorded stopped with a LastExit
// whose reason holds want and whose console tail holds tail, and that
// nothing leaked.
func checkExited(t *testing.T, e *env, name, want, tail string) {
	t.Helper()
	var v api.VM
	waitFor(t, 30*time.Second, name+" recorded stopped", func() bool {
		v = vmShow(t, e, name)
		return v.State == api.VMStopped
	})
	if v.LastExit == nil {
		t.Fatalf("%s stopped without a LastExit", name)
	}
	t.Logf("%s: last exit: %s; console tail:\n%s", name, v.LastExit.Reason, v.LastExit.ConsoleTail)
	if !strings.Contains(v.LastExit.Reason, want) {
		t.Errorf("reason %q, want it to say %q", v.LastExit.Reason, want)
	}
	if !strings.Contains(v.LastExit.ConsoleTail, tail) {
		t.Errorf("console tail does not hold %q:\n%s", tail, v.LastExit.ConsoleTail)
	}
	if out := e.must("vm", "show", name).stdout; !strings.Contains(out, "last exit") || !strings.Contains(out, "console before it stopped") {
		t.Errorf("vm show does not show the last exit:\n%s", out)
	}
	verifyClean(t, e)
}

// Faults under a real guest: the agent killed in the guest (systemd
// starts it again and the VM recovers), the agent stopped (exec says so
// and how to recover), the guest powering itself off, QEMU killed with
// SIGKILL while a start boots it and while the VM runs: each is reported
// on the VM and nothing leaks.
func TestVMFaults(t *testing.T) {
	e := vmEnv(t)
	e.must("vm", "create", "--name", "faulty", "--memory", "1GiB", "--disk", "2GiB")
	exec := func() result { return e.runWith(e.extra, "vm", "exec", "faulty", "--", "true") }
	e.must("vm", "exec", "faulty", "--", "true")

	// The agent killed: Restart=always brings it back, and the daemon's
	// next request reconnects.
	e.must("vm", "ssh", "faulty", "--", "systemctl", "kill", "--kill-whom=main", "--signal=KILL", "banger-agent")
	var errs []string
	waitFor(t, 60*time.Second, "exec after the agent was killed", func() bool {
		r := exec()
		if r.code != 0 {
			errs = append(errs, strings.TrimSpace(r.stderr))
		}
		return r.code == 0
	})
	t.Logf("exec failed %d time(s) while the agent restarted: %q", len(errs), errs)

	// The agent stopped for good: the VM still runs, and exec says the
	// agent does not answer and how to recover.
	e.must("vm", "ssh", "faulty", "--", "systemctl", "stop", "banger-agent")
	r := exec()
	if r.code == 0 {
		t.Fatal("exec worked with the agent stopped")
	}
	t.Logf("exec with the agent stopped: %s", r.stderr)
	for _, want := range []string{"agent", "banger vm restart faulty"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("exec's error does not say %q:\n%s", want, r.stderr)
		}
	}
	if v := vmShow(t, e, "faulty"); v.State != api.VMRunning {
		t.Errorf("with its agent stopped the VM is %s", v.State)
	}
	e.must("vm", "ssh", "faulty", "--", "systemctl", "start", "banger-agent")
	waitFor(t, 60*time.Second, "exec after the agent was started again", func() bool { return exec().code == 0 })

	// The guest powers itself off: QEMU exits (-no-reboot), the daemon
	// notices within its watch interval.
	e.runWith(e.extra, "vm", "ssh", "faulty", "--", "systemctl", "poweroff") // the connection may drop
	checkExited(t, e, "faulty", "the guest powered off", "reboot: Power down")

	// A start whose QEMU is killed while it boots fails at once, saying
	// so; the VM reports it.
	start := e.command(e.extra, "vm", "start", "faulty")
	var startErr bytes.Buffer
	start.Stderr = &startErr
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	var booting api.VM
	waitFor(t, 60*time.Second, "the start's QEMU", func() bool {
		booting = vmShow(t, e, "faulty")
		return booting.PID != 0
	})
	if err := syscall.Kill(booting.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := start.Wait(); err == nil {
		t.Fatal("vm start succeeded although its QEMU was killed")
	}
	t.Logf("vm start with its QEMU killed: %s", tail(startErr.String(), 3))
	if !strings.Contains(startErr.String(), "the hypervisor (qemu) was killed by signal SIGKILL during") {
		t.Errorf("vm start's error does not say how QEMU ended:\n%s", startErr.String())
	}
	checkExited(t, e, "faulty", "start failed at ", "")
	if v := vmShow(t, e, "faulty"); !strings.Contains(v.LastExit.Reason, "killed by signal SIGKILL") {
		t.Errorf("reason %q does not name the signal", v.LastExit.Reason)
	}

	// Started again: the report is gone; then QEMU killed from outside.
	e.must("vm", "start", "faulty")
	v := vmShow(t, e, "faulty")
	if v.LastExit != nil || v.State != api.VMRunning {
		t.Fatalf("after a start: %s, last exit %+v", v.State, v.LastExit)
	}
	if err := syscall.Kill(v.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	checkExited(t, e, "faulty", "killed by signal SIGKILL", "")

	e.must("vm", "delete", "faulty")
	verifyClean(t, e)
}
