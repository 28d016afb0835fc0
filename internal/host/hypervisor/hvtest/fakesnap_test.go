package hvtest

import (
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
)

// keyedSpec is fakeSpec booting an initramfs that carries key.
func keyedSpec(t *testing.T, g Guest, key []byte) hypervisor.Spec {
	t.Helper()
	spec := fakeSpec(t, g)
	spec.ID = "vm-" + randomHex(4)
	spec.VCPUs, spec.MemoryMiB = 2, 512
	spec.Boot.Initrd = filepath.Join(t.TempDir(), "initrd-with-key.img")
	if err := WithBootKey(spec.Boot.Initrd, g.Initrd, key); err != nil {
		t.Fatal(err)
	}
	return spec
}

// cloneSpec is spec for another VM: its own id, directory and copy of the
// work disk.
func cloneSpec(t *testing.T, spec hypervisor.Spec) hypervisor.Spec {
	t.Helper()
	c := spec
	c.ID = "clone-" + randomHex(4)
	c.Dir = t.TempDir()
	c.Disks = append([]hypervisor.Disk(nil), spec.Disks...)
	c.Disks[1].Path = filepath.Join(t.TempDir(), "work.ext4")
	if err := copySparse(c.Disks[1].Path, spec.Disks[1].Path); err != nil {
		t.Fatal(err)
	}
	return c
}

// session upgrades a new channel to h's agent with key.
func session(t *testing.T, f *Fake, h hypervisor.Handle, key []byte) (*agentmux.Session, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := f.DialAgent(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := agentmux.Upgrade(ctx, conn, key)
	if err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { sess.Close() })
	return sess, nil
}

// identity sends id to h's guest over a channel opened with key.
func identity(t *testing.T, f *Fake, h hypervisor.Handle, key []byte, id agentproto.Identity) (agentproto.IdentityResult, error) {
	t.Helper()
	sess, err := session(t, f, h, key)
	if err != nil {
		t.Fatalf("upgrading with the key: %v", err)
	}
	var res agentproto.IdentityResult
	err = sess.Call(context.Background(), agentproto.MethodIdentity, id, &res)
	return res, err
}

func mustSave(t *testing.T, f *Fake, h hypervisor.Handle) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := f.Save(context.Background(), h, dir); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return dir
}

// A restored Fake VM is the saved guest: paused and silent until resumed,
// then answering the key it took by an identity call before the save
// (not its spec's boot key), with the saved hostname, host keys, machine
// ID, identities and a channel count that goes on.
func TestFakeRestoreKeepsTheGuestMemory(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	g := FakeGuest(t)
	bootKey, newKey := newAgentKey(), newAgentKey()
	spec := keyedSpec(t, g, bootKey)
	h, err := f.Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	id := agentproto.Identity{
		TimeUnixNano: time.Now().UnixNano(),
		MachineID:    strings.Repeat("ab", 16),
		Hostname:     "saved-otter",
		HostKeys:     true,
		Key:          newKey,
	}
	res, err := identity(t, f, h, bootKey, id)
	if err != nil {
		t.Fatalf("identity: %v", err)
	}
	if len(res.HostKeys) != 1 || res.HostKeys[0] == FakeHostKey || !strings.HasPrefix(res.HostKeys[0], "ssh-ed25519 ") {
		t.Fatalf("identity with HostKeys answered host keys %q; want one new ed25519 key", res.HostKeys)
	}
	before, _ := f.Memory(h)
	dir := mustSave(t, f, h)
	if err := f.Kill(h); err != nil {
		t.Fatal(err)
	}

	// The clone boots (if it booted) a third key: the saved memory wins.
	clone := cloneSpec(t, spec)
	clone.Boot.Initrd = keyedSpec(t, g, newAgentKey()).Boot.Initrd
	ch, err := f.Restore(ctx, clone, dir)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if st, _ := f.Status(ctx, ch); st != hypervisor.Paused {
		t.Errorf("Status after Restore = %s, want paused", st)
	}
	// A paused guest does not answer.
	conn, err := f.DialAgent(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	uctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if _, err := agentmux.Upgrade(uctx, conn, newKey); err == nil {
		t.Error("the agent of a paused VM answered an upgrade")
	}
	cancel()
	conn.Close()

	if err := f.Resume(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := session(t, f, ch, bootKey); !errors.Is(err, agentmux.ErrKeyRefused) {
		t.Errorf("upgrade with the boot key the identity call replaced = %v, want ErrKeyRefused", err)
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	health, err := AgentHealth(hctx, f, ch, newKey)
	if err != nil {
		t.Fatalf("health with the key the saved guest took: %v", err)
	}
	if health.Hostname != "saved-otter" {
		t.Errorf("the restored guest's hostname = %q, want the saved guest's saved-otter (not the clone's name)", health.Hostname)
	}
	after, ok := f.Memory(ch)
	if !ok {
		t.Fatal("Memory: the restored VM is unknown")
	}
	if after.Channels <= before.Channels {
		t.Errorf("channel count = %d after the restore, %d before: it must go on", after.Channels, before.Channels)
	}
	if after.UptimeMS < before.UptimeMS {
		t.Errorf("uptime %d ms after the restore, %d ms before", after.UptimeMS, before.UptimeMS)
	}
	if diff := cmp.Diff(before.HostKeys, after.HostKeys); diff != "" {
		t.Errorf("host keys (-saved +restored):\n%s", diff)
	}
	if after.MachineID != id.MachineID || after.BootID != before.BootID || len(after.Identities) != 1 || after.Identities[0].Hostname != "saved-otter" {
		t.Errorf("restored memory %+v; want the saved guest's machine ID, boot ID and its one identity", after)
	}
	if keys, err := (&fakeAgent{f: f, vm: f.vms[ch.PID]}).HostKeys(ctx); err != nil || !cmp.Equal(keys, before.HostKeys) {
		t.Errorf("the agent's host keys = %q, %v; want the saved ones", keys, err)
	}
}

// Two clones of one state are the same guest until each takes an
// identity: then their host keys, boot IDs and hostnames differ, and each
// answers only its new key.
func TestFakeClonesTakeOwnIdentities(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	g := FakeGuest(t)
	key := newAgentKey()
	spec := keyedSpec(t, g, key)
	h, err := f.Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := mustSave(t, f, h)
	if err := f.Resume(ctx, h); err != nil { // a fork: the source runs on
		t.Fatal(err)
	}
	type clone struct {
		h   hypervisor.Handle
		key []byte
		res agentproto.IdentityResult
	}
	var clones []clone
	for i := range 2 {
		c := clone{key: newAgentKey()}
		if c.h, err = f.Restore(ctx, cloneSpec(t, spec), dir); err != nil {
			t.Fatal(err)
		}
		if err := f.Resume(ctx, c.h); err != nil {
			t.Fatal(err)
		}
		c.res, err = identity(t, f, c.h, key, agentproto.Identity{
			TimeUnixNano: time.Now().UnixNano(),
			BootID:       newBootID(),
			Hostname:     "clone" + string(rune('a'+i)),
			HostKeys:     true,
			Key:          c.key,
		})
		if err != nil {
			t.Fatalf("identity of clone %d: %v", i, err)
		}
		clones = append(clones, c)
	}
	a, _ := f.Memory(clones[0].h)
	b, _ := f.Memory(clones[1].h)
	if cmp.Equal(a.HostKeys, b.HostKeys) || a.BootID == b.BootID || a.Hostname == b.Hostname {
		t.Errorf("the clones share an identity: %+v and %+v", a, b)
	}
	if src, _ := f.Memory(h); cmp.Equal(src.HostKeys, a.HostKeys) || src.BootID == a.BootID {
		t.Errorf("a clone took the source's identity: source %+v, clone %+v", src, a)
	}
	mems := []FakeMemory{a, b}
	for i, c := range clones {
		if _, err := session(t, f, c.h, key); !errors.Is(err, agentmux.ErrKeyRefused) {
			t.Errorf("clone %d: the saved key after the identity call = %v, want ErrKeyRefused", i, err)
		}
		if _, err := session(t, f, c.h, c.key); err != nil {
			t.Errorf("clone %d: its new key: %v", i, err)
		}
		if !cmp.Equal(c.res.HostKeys, mems[i].HostKeys) {
			t.Errorf("clone %d: identity answered host keys %q, its memory holds others", i, c.res.HostKeys)
		}
	}
	// The source is untouched by its clones.
	if _, err := session(t, f, h, key); err != nil {
		t.Errorf("the source refuses its own key after the clones took theirs: %v", err)
	}
}

// The identity call's own channel keeps its key; a bad identity is
// refused as bad_request and changes nothing; IdentityErr fails it.
func TestFakeIdentityChecks(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UnixNano()
	tests := []struct {
		name string
		id   agentproto.Identity
		want string // in the refusal
	}{
		{"no time", agentproto.Identity{Hostname: "x"}, "time_unix_nano"},
		{"short seed", agentproto.Identity{TimeUnixNano: now, Seed: make([]byte, agentproto.IdentitySeedMin-1)}, "seed"},
		{"long seed", agentproto.Identity{TimeUnixNano: now, Seed: make([]byte, agentproto.IdentitySeedMax+1)}, "seed"},
		{"machine id", agentproto.Identity{TimeUnixNano: now, MachineID: strings.Repeat("AB", 16)}, "machine ID"},
		{"boot id", agentproto.Identity{TimeUnixNano: now, BootID: "not-a-uuid"}, "boot ID"},
		{"hostname", agentproto.Identity{TimeUnixNano: now, Hostname: "bad/name"}, "hostname"},
		{"address", agentproto.Identity{TimeUnixNano: now, Net: &agentproto.IdentityNet{Address: "10.0.0.5", Gateway: "10.0.0.1", MAC: "02:00:00:00:00:01"}}, "address"},
		{"mac", agentproto.Identity{TimeUnixNano: now, Net: &agentproto.IdentityNet{Address: "10.0.0.5/24", Gateway: "10.0.0.1", MAC: "nope"}}, "MAC"},
		{"key", agentproto.Identity{TimeUnixNano: now, Key: []byte("short")}, "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake()
			key := newAgentKey()
			h, err := f.Launch(ctx, keyedSpec(t, FakeGuest(t), key))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := f.Memory(h)
			want.Channels++ // the call's own channel
			_, err = identity(t, f, h, key, tt.id)
			var e *agentmux.Error
			if !errors.As(err, &e) || e.Code != agentmux.CodeBadRequest || !strings.Contains(e.Message, tt.want) {
				t.Errorf("identity = %v, want bad_request naming %q", err, tt.want)
			}
			if after, _ := f.Memory(h); !cmp.Equal(want, after) {
				t.Errorf("a refused identity changed the guest (-want +got):\n%s", cmp.Diff(want, after))
			}
		})
	}

	t.Run("own channel keeps its key", func(t *testing.T) {
		f := NewFake()
		key, newKey := newAgentKey(), newAgentKey()
		h, err := f.Launch(ctx, keyedSpec(t, FakeGuest(t), key))
		if err != nil {
			t.Fatal(err)
		}
		sess, err := session(t, f, h, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.Call(ctx, agentproto.MethodIdentity, agentproto.Identity{TimeUnixNano: now, Key: newKey}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := sess.Health(ctx); err != nil {
			t.Errorf("the identity call's session after the key changed: %v", err)
		}
		if _, err := session(t, f, h, newKey); err != nil {
			t.Errorf("a new channel with the new key: %v", err)
		}
	})
	t.Run("IdentityErr", func(t *testing.T) {
		f := NewFake()
		key := newAgentKey()
		h, err := f.Launch(ctx, keyedSpec(t, FakeGuest(t), key))
		if err != nil {
			t.Fatal(err)
		}
		f.IdentityErr = errors.New("rng on fire")
		want, _ := f.Memory(h)
		want.Channels++
		if _, err := identity(t, f, h, key, agentproto.Identity{TimeUnixNano: now, Hostname: "x"}); err == nil || !strings.Contains(err.Error(), "rng on fire") {
			t.Errorf("identity with IdentityErr = %v, want it", err)
		}
		if after, _ := f.Memory(h); !cmp.Equal(want, after) {
			t.Errorf("a failed identity changed the guest (-want +got):\n%s", cmp.Diff(want, after))
		}
	})
}

// Restore refuses a spec whose shape differs from the saved VM's, and
// leaves nothing behind.
func TestFakeRestoreShapeMismatch(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	g := FakeGuest(t)
	spec := keyedSpec(t, g, newAgentKey())
	spec.NIC = &hypervisor.NIC{TAP: "tap0", MAC: "02:00:00:00:00:01"}
	h, err := f.Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := mustSave(t, f, h)
	f.Kill(h)
	tests := []struct {
		name   string
		mutate func(t *testing.T, s *hypervisor.Spec)
		want   string
	}{
		{"vcpus", func(_ *testing.T, s *hypervisor.Spec) { s.VCPUs = 4 }, "4 vCPUs, saved with 2"},
		{"memory", func(_ *testing.T, s *hypervisor.Spec) { s.MemoryMiB = 1024 }, "1024 MiB of memory, saved with 512"},
		{"disk count", func(_ *testing.T, s *hypervisor.Spec) { s.Disks = s.Disks[:1] }, "1 disks, saved with 2"},
		{"disk size", func(t *testing.T, s *hypervisor.Spec) {
			if err := os.Truncate(s.Disks[1].Path, 1<<20); err != nil {
				t.Fatal(err)
			}
		}, "of 1048576 bytes, saved with 0"},
		{"no nic", func(_ *testing.T, s *hypervisor.Spec) { s.NIC = nil }, "no NIC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cloneSpec(t, spec)
			tt.mutate(t, &c)
			before := dirEntries(t, c.Dir)
			ch, err := f.Restore(ctx, c, dir)
			if err == nil {
				t.Fatalf("Restore succeeded (%+v); want a refusal naming %q", ch, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name %q and the state %s", err, tt.want, dir)
			}
			if after := dirEntries(t, c.Dir); !equal(before, after) {
				t.Errorf("the refused Restore changed %s: %v -> %v", c.Dir, before, after)
			}
			if hs := f.Running(); len(hs) != 0 {
				t.Errorf("VMs running after the refused Restore: %+v", hs)
			}
		})
	}
}

// Save refuses what it cannot save; the VM it found stays paused, as the
// contract says of a failed Save.
func TestFakeSaveRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		prepare   func(t *testing.T, f *Fake, h hypervisor.Handle) string // returns the directory
		want      string
		wantState hypervisor.State
	}{
		{"stopped VM", func(t *testing.T, f *Fake, h hypervisor.Handle) string { f.Kill(h); return t.TempDir() },
			"not running", hypervisor.Stopped},
		{"missing directory", func(t *testing.T, _ *Fake, _ hypervisor.Handle) string { return filepath.Join(t.TempDir(), "nope") },
			"no such file", hypervisor.Paused},
		{"directory not empty", func(t *testing.T, _ *Fake, _ hypervisor.Handle) string {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "old"), nil, 0o600)
			return dir
		}, "holds old already", hypervisor.Paused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake()
			h, err := f.Launch(ctx, keyedSpec(t, FakeGuest(t), newAgentKey()))
			if err != nil {
				t.Fatal(err)
			}
			dir := tt.prepare(t, f, h)
			before := dirEntries(t, dir)
			if _, err := f.Save(ctx, h, dir); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Save = %v, want an error saying %q", err, tt.want)
			}
			if after := dirEntries(t, dir); !equal(before, after) {
				t.Errorf("the refused Save changed %s: %v -> %v", dir, before, after)
			}
			if st, _ := f.Status(ctx, h); st != tt.wantState {
				t.Errorf("Status after the refused Save = %s, want %s", st, tt.wantState)
			}
		})
	}
}

// Injected failures of Save, Restore and Resume are returned and
// recorded; an injected Save failure leaves the VM paused, the others
// change nothing.
func TestFakeSnapshotFailuresAndCalls(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	f := NewFake()
	g := FakeGuest(t)
	spec := keyedSpec(t, g, newAgentKey())
	h, err := f.Launch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := mustSave(t, f, h)
	if err := f.Resume(ctx, h); err != nil {
		t.Fatal(err)
	}

	f.SaveErr = boom
	if _, err := f.Save(ctx, h, t.TempDir()); !errors.Is(err, boom) {
		t.Errorf("Save with SaveErr = %v, want boom", err)
	}
	if st, _ := f.Status(ctx, h); st != hypervisor.Paused {
		t.Errorf("after the failed Save the VM is %s, want paused", st)
	}
	f.SaveErr = nil

	f.ResumeErr = boom
	if err := f.Resume(ctx, h); !errors.Is(err, boom) {
		t.Errorf("Resume with ResumeErr = %v, want boom", err)
	}
	if st, _ := f.Status(ctx, h); st != hypervisor.Paused {
		t.Errorf("after the failed Resume the VM is %s, want still paused", st)
	}
	f.ResumeErr = nil
	if err := f.Resume(ctx, h); err != nil {
		t.Fatal(err)
	}

	f.RestoreErr = boom
	c := cloneSpec(t, spec)
	if _, err := f.Restore(ctx, c, dir); !errors.Is(err, boom) {
		t.Errorf("Restore with RestoreErr = %v, want boom", err)
	}
	if ents := dirEntries(t, c.Dir); len(ents) != 0 {
		t.Errorf("the failed Restore left %v in %s", ents, c.Dir)
	}
	f.RestoreErr = nil
	ch, err := f.Restore(ctx, c, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Resume(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if err := f.Resume(ctx, ch); err != nil {
		t.Errorf("Resume of a running VM: %v, want nothing to do", err)
	}

	want := []string{"launch", "save", "resume", "save", "status", "resume", "status", "resume", "restore", "restore", "resume", "resume"}
	if diff := cmp.Diff(want, f.Ops()); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	calls := f.Calls()
	for i, c := range calls {
		if c.Op == "save" && i == 3 && (!errors.Is(c.Err, boom) || c.VMID != spec.ID) {
			t.Errorf("call %d: %+v, want the failed save of %s", i, c, spec.ID)
		}
	}
	if last := calls[len(calls)-3]; last.Op != "restore" || last.Err != nil || last.PID != ch.PID || last.VMID != c.ID {
		t.Errorf("the restore's call = %+v, want pid %d VM %s", last, ch.PID, c.ID)
	}
}

// A paused guest does not see the power button: Shutdown waits for its
// context, then kills, as with a real hypervisor.
func TestFakeShutdownOfPausedVM(t *testing.T) {
	f := NewFake()
	h, err := f.Launch(context.Background(), keyedSpec(t, FakeGuest(t), newAgentKey()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Save(context.Background(), h, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Shutdown(ctx, h) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown of a paused VM returned (%v) before its context ended", err)
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
