package vm

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// appendConsole adds lines to a VM's console log, as its guest would.
func appendConsole(t *testing.T, h hypervisor.Handle, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(h.ConsoleLog, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		f.WriteString(l + "\n")
	}
}

// checkStoppedWith checks that a VM is recorded stopped with a LastExit
// whose reason holds want and whose console tail holds tail, and that
// nothing it had is left: no TAP held, no socket, no leak.
func checkStoppedWith(t *testing.T, f *fixture, name, want, tail string) api.VM {
	t.Helper()
	ctx := context.Background()
	v, err := f.m.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	a := f.m.API(ctx, v)
	if a.State != api.VMStopped || v.Runtime.Handle != nil {
		t.Errorf("%s is %s (handle %v), want stopped", name, a.State, v.Runtime.Handle)
	}
	if a.LastExit == nil {
		t.Fatalf("%s has no LastExit", name)
	}
	t.Logf("reason: %s\nconsole tail:\n%s", a.LastExit.Reason, a.LastExit.ConsoleTail)
	if !strings.Contains(a.LastExit.Reason, want) {
		t.Errorf("reason %q, want it to say %q", a.LastExit.Reason, want)
	}
	if !strings.Contains(a.LastExit.ConsoleTail, tail) {
		t.Errorf("console tail %q, want it to hold %q", a.LastExit.ConsoleTail, tail)
	}
	if a.LastExit.At.IsZero() {
		t.Error("LastExit.At is zero")
	}
	if n := f.net.holding(); n != 0 {
		t.Errorf("%d TAPs still held", n)
	}
	if v.Lease.TAP != "" || v.Runtime.TAP != "" {
		t.Errorf("TAP still recorded: lease %q runtime %q", v.Lease.TAP, v.Runtime.TAP)
	}
	leaks, err := f.m.Leaks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaks) != 0 {
		t.Errorf("leaks: %+v", leaks)
	}
	return a
}

// A hypervisor that ends while the daemon runs is reported on the VM by
// Watch (CheckRunning): how it ended, from its exit (a signal, a status,
// the guest's power-off) or, when the daemon did not see it end, from the
// console; the console's last lines come with it, escaped.
func TestWatchReportsWhyAVMStopped(t *testing.T) {
	tests := []struct {
		name    string
		console []string
		exit    *hypervisor.Exit // nil: the daemon did not see it end
		want    string
	}{
		{name: "hypervisor killed", console: []string{"[  5.0] systemd[1]: Started ssh.service"},
			exit: &hypervisor.Exit{Code: -1, Signal: syscall.SIGKILL}, want: "the hypervisor (fake) was killed by signal SIGKILL"},
		{name: "guest powered off", console: []string{"[ 9.1] systemd-shutdown[1]: Powering off.", "[ 9.2] reboot: Power down"},
			exit: &hypervisor.Exit{Code: 0}, want: "the guest powered off"},
		{name: "guest panicked", console: []string{"[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs", "[ 1.1] ---[ end Kernel panic ]---"},
			exit: &hypervisor.Exit{Code: 0}, want: "the guest kernel panicked"},
		{name: "hypervisor terminated", console: []string{"login:"},
			exit: &hypervisor.Exit{Code: 0, Stderr: "qemu-system-x86_64: terminating on signal 15 from pid 4242 (kill)"},
			want: "was terminated: qemu-system-x86_64: terminating on signal 15 from pid 4242"},
		{name: "hypervisor failed", console: []string{"login:"},
			exit: &hypervisor.Exit{Code: 1, Stderr: "qemu: virtio-blk: I/O error"}, want: "exited with exit status 1: qemu: virtio-blk: I/O error"},
		{name: "unseen, console says", console: []string{"reboot: Power down"}, want: "the guest powered off"},
		{name: "unseen, console silent", console: []string{"login:"}, want: "how is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			v, err := f.m.Create(ctx, req("vm"), &progress{})
			if err != nil {
				t.Fatal(err)
			}
			h := *v.Runtime.Handle
			appendConsole(t, h, append([]string{"\x1b[31mred\x1b[0m"}, tt.console...)...)
			if tt.exit != nil {
				f.hv.End(h, *tt.exit)
			} else {
				f.hv.Crash(h)
			}
			if got := f.m.CheckRunning(ctx); len(got) != 1 {
				t.Fatalf("CheckRunning found %v, want [vm]", got)
			}
			a := checkStoppedWith(t, f, "vm", tt.want, tt.console[len(tt.console)-1])
			if strings.Contains(a.LastExit.ConsoleTail, "\x1b") {
				t.Errorf("console tail not escaped: %q", a.LastExit.ConsoleTail)
			}

			// The next start clears the report.
			if _, err := f.m.Start(ctx, "vm", &progress{}); err != nil {
				t.Fatal(err)
			}
			if v, _ := f.m.Get(ctx, "vm"); v.Runtime.LastExit != nil {
				t.Errorf("after a start, LastExit is still %+v", v.Runtime.LastExit)
			}
		})
	}
}

// A stop that was asked for leaves no report.
func TestStopLeavesNoReport(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.m.Create(ctx, req("vm"), &progress{}); err != nil {
		t.Fatal(err)
	}
	v, err := f.m.Stop(ctx, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if v.State != api.VMStopped || v.Runtime.LastExit != nil {
		t.Errorf("after a stop: %s, LastExit %+v", v.State, v.Runtime.LastExit)
	}
}

// A VM found dead at daemon start is reported by Reconcile, saying so.
func TestReconcileReportsADeadVM(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.m.Create(ctx, req("vm"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	appendConsole(t, *v.Runtime.Handle, "[ 3.0] reboot: Power down")
	f.hv.Crash(*v.Runtime.Handle) // while no daemon ran: nobody saw it end
	if _, err := f.m.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	checkStoppedWith(t, f, "vm", "the guest powered off (found at daemon start)", "reboot: Power down")
}

// faultAt kills the VM's hypervisor when its start reaches a stage.
type faultAt struct {
	progress
	stage string
	kill  func()
}

func (p *faultAt) Stage(s string) {
	p.progress.Stage(s)
	if s == p.stage {
		p.kill()
	}
}

// A hypervisor killed while a start waits for the agent or for readiness
// fails the start at once (not at the agent timeout); the error and the
// VM's report say at which stage and how the hypervisor ended, with its
// console, and nothing it took is left.
func TestStartFailureIsReported(t *testing.T) {
	tests := []struct {
		stage string
		want  string
	}{
		{"agent health", "start failed at agent health: the hypervisor exited before the guest agent answered; the hypervisor (fake) was killed by signal SIGKILL"},
		{"readiness", "start failed at readiness: ssh (tcp/22) was not ready"},
	}
	for _, tt := range tests {
		t.Run(tt.stage, func(t *testing.T) {
			f := newFixture(t)
			f.m.AgentTimeout = 10 * time.Minute
			ctx := context.Background()
			if _, err := f.m.Create(ctx, req("vm"), &progress{}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.m.Stop(ctx, "vm"); err != nil {
				t.Fatal(err)
			}
			p := &faultAt{stage: tt.stage, kill: func() {
				for _, h := range f.hv.Running() {
					appendConsole(t, h, "[ 2.0] booting, then killed")
					f.hv.End(h, hypervisor.Exit{Code: -1, Signal: syscall.SIGKILL})
				}
			}}
			done := make(chan error, 1)
			go func() {
				_, err := f.m.Start(ctx, "vm", p)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatal("the start still waits, minutes after its hypervisor was killed")
			}
			if want := "the hypervisor (fake) was killed by signal SIGKILL during " + tt.stage; err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("start: %v, want an error saying %q first", err, want)
			}
			a := checkStoppedWith(t, f, "vm", tt.want, "booting, then killed")
			if !strings.Contains(a.LastExit.Reason, "killed by signal SIGKILL") {
				t.Errorf("reason %q does not say how the hypervisor ended", a.LastExit.Reason)
			}
		})
	}
}

// The console tail is bounded in lines and line length, without
// colours, and escaped.
func TestConsoleLines(t *testing.T) {
	path := t.TempDir() + "/console.log"
	var b strings.Builder
	b.WriteString(strings.Repeat("x", consoleTailBytes)) // cut away
	for i := 0; i < 50; i++ {
		b.WriteString("line\r\n\n")
	}
	b.WriteString("[\x1b[0;32m  OK  \x1b[0m] Started\n")
	b.WriteString(strings.Repeat("é", 300) + "\n\x1b]0;title\x07last\n")
	os.WriteFile(path, []byte(b.String()), 0o600)
	lines := consoleLines(path)
	if len(lines) != api.ConsoleTailLines {
		t.Fatalf("%d lines, want %d", len(lines), api.ConsoleTailLines)
	}
	for _, l := range lines {
		if len(l) > consoleLineMax+len("…") || strings.ContainsAny(l, "\x1b\x07\r") || strings.Contains(l, "xxx") {
			t.Errorf("line %q is not bounded and escaped", l)
		}
	}
	if !strings.HasSuffix(lines[len(lines)-1], "last") || lines[0] != "line" {
		t.Errorf("first %q, last %q", lines[0], lines[len(lines)-1])
	}
	if got := lines[len(lines)-3]; got != "[  OK  ] Started" {
		t.Errorf("a coloured line reads %q, want its colours dropped", got)
	}
	if got := lines[len(lines)-1]; got != `\x1b]0;title\x07last` {
		t.Errorf("a title sequence reads %q, want it escaped", got)
	}
	if consoleLines(path+".missing") != nil {
		t.Error("a missing console gave lines")
	}
}
