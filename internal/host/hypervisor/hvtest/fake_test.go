package hvtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/initramfs"
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
	g := FakeGuest(t)
	key := newAgentKey()
	spec := fakeSpec(t, g)
	spec.Boot.Initrd = filepath.Join(t.TempDir(), "initrd-with-key.img")
	if err := WithBootKey(spec.Boot.Initrd, g.Initrd, key); err != nil {
		t.Fatal(err)
	}
	h, err := f.Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := AgentHealth(ctx, f, h, key)
	if err != nil || got.Hostname != "custom" {
		t.Errorf("AgentHealth = %+v, %v; want hostname custom", got, err)
	}
	f.HealthErr = errors.New("disk on fire")
	conn, err := f.DialAgent(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := upgradedHealth(ctx, conn, key); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Health with HealthErr = %v, want the error", err)
	}
}

// A VM booted without a boot payload has an agent that refuses every
// host; one booted with another key refuses this one.
func TestFakeAgentNeedsTheBootKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := NewFake()
	g := FakeGuest(t)
	withKey := filepath.Join(t.TempDir(), "initrd-with-key.img")
	if err := WithBootKey(withKey, g.Initrd, newAgentKey()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		initrd string
		want   error
	}{
		{"no boot payload", g.Initrd, agentmux.ErrAgentNoKey},
		{"another key", withKey, agentmux.ErrKeyRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := fakeSpec(t, g)
			spec.Boot.Initrd = tt.initrd
			h, err := f.Launch(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Kill(h)
			conn, err := f.DialAgent(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := upgradedHealth(ctx, conn, newAgentKey()); !errors.Is(err, tt.want) {
				t.Errorf("health = %v, want %v", err, tt.want)
			}
		})
	}
}

// BootKey finds the key WithBootKey appended, after an archive of its own.
func TestBootKeyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	var b bytes.Buffer
	a := initramfs.NewWriter(&b)
	for _, err := range []error{
		a.AddFile("init", 0o755, []byte("#!/bin/sh\n")),
		a.AddDirAll("banger/boot", 0o700),
		a.AddFile("banger/boot/key", 0o600, []byte("an older key that must not win!!")),
		a.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	b.WriteString("x") // an odd length: the next archive is padded
	if err := os.WriteFile(base, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	key := newAgentKey()
	out := filepath.Join(dir, "out.img")
	if err := WithBootKey(out, base, key); err != nil {
		t.Fatal(err)
	}
	got, err := BootKey(out)
	if err != nil || !bytes.Equal(got, key) {
		t.Errorf("BootKey = %x, %v; want %x", got, err, key)
	}
	if got, err := BootKey(base); err != nil || string(got) != "an older key that must not win!!" {
		t.Errorf("BootKey of the base = %q, %v", got, err)
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

// A Fake guest answers what a front end's views of a VM ask (an empty
// session list, the memory), refuses what it cannot do, and hangs up when
// its VM stops.
func TestFakeGuestCalls(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := NewFake()
	g := FakeGuest(t)
	key := newAgentKey()
	spec := fakeSpec(t, g)
	spec.MemoryMiB = 512
	spec.Boot.Initrd = filepath.Join(t.TempDir(), "initrd-with-key.img")
	if err := WithBootKey(spec.Boot.Initrd, g.Initrd, key); err != nil {
		t.Fatal(err)
	}
	h, err := f.Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := f.DialAgent(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := agentmux.Upgrade(ctx, conn, key)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	var sessions []agentproto.SessionInfo
	if err := sess.Call(ctx, agentproto.MethodSessionList, nil, &sessions); err != nil || sessions == nil || len(sessions) != 0 {
		t.Errorf("session list = %v, %v; want an empty list", sessions, err)
	}
	var mem agentproto.MemInfo
	if err := sess.Call(ctx, agentproto.MethodMemInfo, nil, &mem); err != nil || mem.TotalBytes != 512<<20 || mem.AvailableBytes != 384<<20 {
		t.Errorf("meminfo = %+v, %v; want 512 MiB, 384 MiB available", mem, err)
	}
	var e *agentmux.Error
	start := agentproto.SessionStart{Argv: []string{"true"}}
	if err := sess.Call(ctx, agentproto.MethodSessionStart, start, nil); !errors.As(err, &e) || e.Code != agentmux.CodeUnknownType {
		t.Errorf("session start = %v, want unknown_type", err)
	}

	if err := f.Kill(h); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sess.Done():
	case <-ctx.Done():
		t.Fatal("the agent session outlived its VM")
	}
}

// Any number of Fake VMs share a read-only disk; a read-write use of a
// file a running VM holds read-only is refused, and the reverse, as
// QEMU's image locking refuses them; once the holder stops, the other use
// is allowed. Files are matched by identity: a hard link is the same file.
func TestFakeSharedReadOnlyDisk(t *testing.T) {
	ctx := context.Background()
	g := FakeGuest(t)
	link := filepath.Join(t.TempDir(), "root-link.ext4")
	if err := os.Link(g.Root, link); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.ext4")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := func(id string, root string, readOnly bool) hypervisor.Spec {
		s := fakeSpec(t, g)
		s.ID = id
		s.Disks = []hypervisor.Disk{{ID: "root", Path: root, ReadOnly: readOnly}, {ID: "work", Path: filepath.Join(t.TempDir(), "work")}}
		os.WriteFile(s.Disks[1].Path, nil, 0o600)
		return s
	}
	f := NewFake()
	if _, err := f.Launch(ctx, spec("ro-a", g.Root, true)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Launch(ctx, spec("ro-b", link, true)); err != nil {
		t.Fatalf("a second read-only use of the same file: %v", err)
	}
	tests := []struct {
		name, path string
		readOnly   bool
		wantErr    string // "" : launched
	}{
		{"read-write by path", g.Root, false, "attached read-only to VM ro-a"},
		{"read-write through a hard link", link, false, "attached read-only to VM ro-a"},
		{"read-write of another file", other, false, ""},
		{"read-only of a file another VM writes", other, true, "attached read-write to VM rw-3"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "rw-" + string(rune('0'+i+1))
			before := len(f.Running())
			_, err := f.Launch(ctx, spec(id, tt.path, tt.readOnly))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Launch: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "stop that VM first") {
				t.Fatalf("Launch = %v; want it refused with %q and the fix", err, tt.wantErr)
			}
			if after := len(f.Running()); after != before {
				t.Errorf("the refused launch left a VM: %d running, was %d", after, before)
			}
		})
	}
	// The flag is recorded with the spec.
	var ro []bool
	for _, s := range f.Launched() {
		ro = append(ro, s.Disks[0].ReadOnly)
	}
	if diff := cmp.Diff([]bool{true, true, false}, ro); diff != "" {
		t.Errorf("recorded root ReadOnly flags (-want +got):\n%s", diff)
	}
	// Once every read-only holder stops, a read-write use is allowed.
	for _, h := range f.Running() {
		if err := f.Kill(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Launch(ctx, spec("rw-after", g.Root, false)); err != nil {
		t.Errorf("read-write use after the read-only VMs stopped: %v", err)
	}
}
