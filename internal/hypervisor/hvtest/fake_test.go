package hvtest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/agentproto"
	"github.com/bangerdev/banger/internal/hypervisor"
)

// The Fake passes the suite it is meant to stand in for. One Fake value
// serves as every "fresh" driver: its VMs are the host's processes, which
// a restarted daemon's driver finds again.
func TestFakeConformance(t *testing.T) {
	f := NewFake()
	Run(t, func(*testing.T) hypervisor.Hypervisor { return f }, FakeGuest(t))
	if hs := f.Running(); len(hs) != 0 {
		t.Errorf("VMs left running after the suite: %+v", hs)
	}
}

func fakeSpec(t *testing.T, g Guest) hypervisor.Spec {
	t.Helper()
	return hypervisor.Spec{
		ID: "vm1", Name: "one", Dir: t.TempDir(),
		Boot:  hypervisor.Boot{Vmlinuz: g.Vmlinuz, Initrd: g.Initrd},
		Disks: []hypervisor.Disk{{ID: "root", Path: g.Root, ReadOnly: true}, {ID: "work", Path: g.Work}},
	}
}

func TestFakeFailuresAndCalls(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	tests := []struct {
		name    string
		set     func(f *Fake)
		call    func(f *Fake, h hypervisor.Handle) error
		wantOps []string
	}{
		{"launch", func(f *Fake) { f.LaunchErr = boom },
			func(f *Fake, _ hypervisor.Handle) error { _, err := f.Launch(ctx, hypervisor.Spec{}); return err },
			[]string{"launch", "launch"}},
		{"status", func(f *Fake) { f.StatusErr = boom },
			func(f *Fake, h hypervisor.Handle) error { _, err := f.Status(ctx, h); return err },
			[]string{"launch", "status"}},
		{"adopt", func(f *Fake) { f.AdoptErr = boom },
			func(f *Fake, h hypervisor.Handle) error { return f.Adopt(ctx, h) },
			[]string{"launch", "adopt"}},
		{"shutdown", func(f *Fake) { f.ShutdownErr = boom },
			func(f *Fake, h hypervisor.Handle) error { return f.Shutdown(ctx, h) },
			[]string{"launch", "shutdown"}},
		{"kill", func(f *Fake) { f.KillErr = boom },
			func(f *Fake, h hypervisor.Handle) error { return f.Kill(h) },
			[]string{"launch", "kill"}},
		{"dial", func(f *Fake) { f.DialErr = boom },
			func(f *Fake, h hypervisor.Handle) error { _, err := f.DialAgent(ctx, h); return err },
			[]string{"launch", "dial"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake()
			h, err := f.Launch(ctx, fakeSpec(t, FakeGuest(t)))
			if err != nil {
				t.Fatal(err)
			}
			tt.set(f)
			if err := tt.call(f, h); !errors.Is(err, boom) {
				t.Errorf("call = %v, want boom", err)
			}
			if diff := cmp.Diff(tt.wantOps, f.Ops()); diff != "" {
				t.Errorf("ops (-want +got):\n%s", diff)
			}
			last := f.Calls()[len(f.Calls())-1]
			if !errors.Is(last.Err, boom) {
				t.Errorf("the last call recorded error %v, want boom", last.Err)
			}
			if tt.name != "launch" && (last.VMID != "vm1" || last.PID != h.PID) {
				t.Errorf("the last call recorded VM %q pid %d, want vm1 pid %d", last.VMID, last.PID, h.PID)
			}
			// A failed stop leaves the VM running.
			if st, _ := (&Fake{vms: f.vms}).Status(ctx, h); tt.name != "launch" && st != hypervisor.Running {
				t.Errorf("after the failed %s the VM is %s, want running", tt.name, st)
			}
		})
	}
}

func TestFakeCrashLeavesSockets(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	h, err := f.Launch(ctx, fakeSpec(t, FakeGuest(t)))
	if err != nil {
		t.Fatal(err)
	}
	f.Crash(h)
	if st, err := f.Status(ctx, h); st != hypervisor.Stopped || err != nil {
		t.Errorf("Status after Crash = %s, %v; want stopped", st, err)
	}
	if _, err := os.Stat(h.ControlSocket); err != nil {
		t.Errorf("Crash removed the control socket: %v", err)
	}
	if err := f.Kill(h); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.ControlSocket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Kill after Crash left the control socket (%v)", err)
	}
}

func TestFakeIgnorePowerButton(t *testing.T) {
	f := NewFake()
	f.IgnorePowerButton = true
	h, err := f.Launch(context.Background(), fakeSpec(t, FakeGuest(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Shutdown(ctx, h) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) before its context ended although the guest ignores the power button", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Status(context.Background(), h); st != hypervisor.Stopped {
		t.Errorf("Status after Shutdown = %s, want stopped", st)
	}
}

func TestFakeHealth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := NewFake()
	f.Health = agentproto.Health{Hostname: "custom", RootMount: "/dev/vdb"}
	h, err := f.Launch(ctx, fakeSpec(t, FakeGuest(t)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := AgentHealth(ctx, f, h)
	if err != nil || got.Hostname != "custom" {
		t.Errorf("AgentHealth = %+v, %v; want hostname custom", got, err)
	}
	f.HealthErr = errors.New("disk on fire")
	conn, err := f.DialAgent(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := agentproto.NewClient(conn).Health(ctx); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Health with HealthErr = %v, want the error", err)
	}
}

// hvinit prints the marker LightGuest promises.
func TestLightPowerOffMarker(t *testing.T) {
	src, err := os.ReadFile("testdata/hvinit/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `"`+LightPowerOffMarker+`"`) {
		t.Errorf("testdata/hvinit does not print %q", LightPowerOffMarker)
	}
}
