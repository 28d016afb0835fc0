package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/google/go-cmp/cmp"
)

// memory is the fake guest memory of a running VM.
func (f *fixture) memory(t *testing.T, name string) hvtest.FakeMemory {
	t.Helper()
	v, err := f.m.Get(context.Background(), name)
	if err != nil || v.Runtime.Handle == nil {
		t.Fatalf("vm %s: %v, handle %v", name, err, v.Runtime.Handle)
	}
	mem, ok := f.hv.Memory(*v.Runtime.Handle)
	if !ok {
		t.Fatalf("vm %s: the fake has no live VM at its handle", name)
	}
	return mem
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func TestPauseResume(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.m.Create(ctx, req("demo"), &progress{}); err != nil {
		t.Fatal(err)
	}
	before := f.memory(t, "demo")
	p := &progress{}
	v, err := f.m.Pause(ctx, "demo", p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"save state", "stop hypervisor"}, p.stages); diff != "" {
		t.Errorf("pause stages (-want +got):\n%s", diff)
	}
	dir := f.m.Dir(v.ID)
	got, _ := f.m.Get(ctx, "demo")
	switch {
	case got.State != api.VMPaused || got.Runtime.Handle != nil || got.Runtime.Saved == nil || got.Runtime.Saved.Bytes <= 0:
		t.Fatalf("after pause: %+v", got)
	case len(f.hv.Running()) != 0 || f.net.holding() != 0:
		t.Errorf("after pause: %d VMs run, %d TAPs held; want none", len(f.hv.Running()), f.net.holding())
	case !exists(stateDir(dir)) || exists(stateTmp(dir)) || !exists(agentKeyFile(dir)) || !exists(bootInitrd(dir)):
		t.Errorf("after pause: want the state, the agent key and the boot initramfs kept, no temporary state")
	}
	if a := f.m.API(ctx, got); a.State != api.VMPaused || a.StateBytes != got.Runtime.Saved.Bytes {
		t.Errorf("API: state %s, state_bytes %d", a.State, a.StateBytes)
	}
	if _, err := f.m.Pause(ctx, "demo", &progress{}); err == nil || !strings.Contains(err.Error(), "already paused") {
		t.Errorf("pausing a paused VM: %v", err)
	}
	if _, _, err := f.m.Agent(ctx, "demo"); err == nil || !strings.Contains(err.Error(), "banger vm resume demo") {
		t.Errorf("reaching the agent of a paused VM: %v; want the refusal naming vm resume", err)
	}

	p = &progress{}
	if _, err := f.m.Resume(ctx, "demo", p); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"acquire tap", "restore fake", "clock"}, p.stages); diff != "" {
		t.Errorf("resume stages (-want +got):\n%s", diff)
	}
	got, _ = f.m.Get(ctx, "demo")
	if got.State != api.VMRunning || got.Runtime.Saved != nil || got.Runtime.Resuming || exists(stateDir(dir)) {
		t.Errorf("after resume: %+v, state kept: %v", got, exists(stateDir(dir)))
	}
	after := f.memory(t, "demo")
	if after.BootID != before.BootID || !slices.Equal(after.Key, before.Key) {
		t.Errorf("the resumed guest is not the paused one: boot id %s → %s", before.BootID, after.BootID)
	}
	// The clock was set: an identity call with the time only.
	if n := len(after.Identities); n != 1 || after.Identities[0].TimeUnixNano == 0 || after.Identities[0].HostKeys {
		t.Errorf("identity calls after resume: %+v", after.Identities)
	}
	if _, err := f.m.Resume(ctx, "demo", &progress{}); err == nil || !strings.Contains(err.Error(), "not paused") {
		t.Errorf("resuming a running VM: %v", err)
	}
}

func TestStopOfAPausedVMDiscardsItsState(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.m.Create(ctx, req("demo"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Pause(ctx, "demo", &progress{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Stop(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	got, _ := f.m.Get(ctx, "demo")
	if got.State != api.VMStopped || got.Runtime.Saved != nil || exists(stateDir(f.m.Dir(v.ID))) {
		t.Errorf("after stop of a paused VM: %+v", got)
	}
	// Start boots it again, cold.
	p := &progress{}
	if _, err := f.m.Start(ctx, "demo", p); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.stages, "agent health") {
		t.Errorf("start after a discarded pause: stages %v", p.stages)
	}
}

func TestStartOfAPausedVMResumesIt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.m.Create(ctx, req("demo"), &progress{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Pause(ctx, "demo", &progress{}); err != nil {
		t.Fatal(err)
	}
	p := &progress{}
	if _, err := f.m.Start(ctx, "demo", p); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.stages, "restore fake") {
		t.Errorf("start of a paused VM: stages %v", p.stages)
	}
}

func TestFailedSaveLeavesTheVMRunning(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.m.Create(ctx, req("demo"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	f.hv.SaveErr = errors.New("disk on fire")
	if _, err := f.m.Pause(ctx, "demo", &progress{}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("pause with a failing save: %v", err)
	}
	got, _ := f.m.Get(ctx, "demo")
	if st, _ := f.hv.Status(ctx, *got.Runtime.Handle); got.State != api.VMRunning || st != hypervisor.Running {
		t.Errorf("after a failed save: %s, hypervisor %s", got.State, st)
	}
	if exists(stateDir(f.m.Dir(v.ID))) || exists(stateTmp(f.m.Dir(v.ID))) {
		t.Error("a failed save left a state behind")
	}
}

func TestFork(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src, err := f.m.Create(ctx, req("src"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.m.Store.PutSession(ctx, store.Session{ID: "s1", VMID: src.ID, Name: "agent", State: api.SessionRunning,
		Meta: `{"id":"s1","name":"agent","vm":"src","state":"running","attach_count":1}`}); err != nil {
		t.Fatal(err)
	}
	sent := api.Workspace{Dir: "/root/repo", Mode: api.WorkspaceGit, HostPath: "/src/x", Head: strings.Repeat("a", 40), Sent: strings.Repeat("b", 40)}
	if err := f.m.SetWorkspace(ctx, "src", sent); err != nil {
		t.Fatal(err)
	}
	srcMem := f.memory(t, "src")
	p := &progress{}
	_, err = f.m.Fork(ctx, "src", api.ForkVMRequest{Name: "copy"}, p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"allocate", "pause src", "copy disks", "resume src", "sync auth files", "acquire tap", "restore fake", "identity", "readiness"}
	if diff := cmp.Diff(want, p.stages); diff != "" {
		t.Errorf("fork stages (-want +got):\n%s", diff)
	}
	got, _ := f.m.Get(ctx, "copy")
	srcNow, _ := f.m.Get(ctx, "src")
	if got.State != api.VMRunning || got.Spec.ForkedFrom != "src" || got.Lease.IP == srcNow.Lease.IP || got.Lease.MAC == srcNow.Lease.MAC {
		t.Errorf("fork: %+v (source %s %s)", got, srcNow.Lease.IP, srcNow.Lease.MAC)
	}
	// The copy's /root/repo is the source's: so is what was sent into it.
	if ws, err := got.WorkspaceRecord(); err != nil || ws.Sent != sent.Sent || f.m.API(ctx, got).Workspace == nil {
		t.Errorf("the fork's workspace record: %+v %v", ws, err)
	}
	if st, _ := f.hv.Status(ctx, *srcNow.Runtime.Handle); srcNow.State != api.VMRunning || st != hypervisor.Running {
		t.Errorf("the source after the fork: %s, hypervisor %s", srcNow.State, st)
	}
	mem := f.memory(t, "copy")
	if len(mem.Identities) != 1 {
		t.Fatalf("identity calls in the fork: %d", len(mem.Identities))
	}
	id := mem.Identities[0]
	if id.Hostname != "copy" || id.Net == nil || !strings.HasPrefix(id.Net.Address, got.Lease.IP+"/") || id.Net.MAC != got.Lease.MAC ||
		!id.HostKeys || len(id.Seed) < 32 || id.MachineID == "" || id.BootID == srcMem.BootID || id.Payload == nil || len(id.Key) != 32 {
		t.Errorf("the fork's identity: %+v", id)
	}
	key, _ := agentKey(f.m.Dir(got.ID))
	if !slices.Equal(mem.Key, key) || slices.Equal(key, srcMem.Key) {
		t.Error("the fork's agent does not hold its own new key")
	}
	if slices.Equal(mem.HostKeys, srcMem.HostKeys) || len(got.Runtime.HostKeys) != 1 || !strings.HasPrefix(mem.HostKeys[0], got.Runtime.HostKeys[0]) {
		t.Errorf("host keys: fork %v (pinned %v), source %v", mem.HostKeys, got.Runtime.HostKeys, srcMem.HostKeys)
	}
	for _, d := range []string{workDisk(f.m.Dir(got.ID)), rootDisk(f.m.Dir(got.ID))} {
		if !exists(d) {
			t.Errorf("the fork lacks %s", d)
		}
	}
	if exists(stateDir(f.m.Dir(got.ID))) {
		t.Error("the fork kept the state it was restored from")
	}
	recs, _ := f.m.Store.ListSessions(ctx, got.ID)
	if len(recs) != 1 || recs[0].ID != "s1" || !strings.Contains(recs[0].Meta, `"forked_from":"src"`) {
		t.Errorf("the fork's sessions: %+v", recs)
	}
	if _, err := f.m.Fork(ctx, "src", api.ForkVMRequest{Name: "copy"}, &progress{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("fork to a taken name: %v", err)
	}
}

func TestWarmCreate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.m.Warm(ctx, "base", api.WarmImageRequest{MemoryMiB: 512, DiskBytes: 1 << 30}, &progress{}); err != nil {
		t.Fatal(err)
	}
	img, _ := f.m.Images.Get(ctx, "base")
	warm := f.m.WarmSnapshots(img.ID)
	if len(warm) != 1 || warm[0].MemoryMiB != 512 || warm[0].DiskBytes != 1<<30 || warm[0].Bytes <= 0 {
		t.Fatalf("warm snapshots: %+v", warm)
	}
	if vms, _ := f.m.List(ctx); len(vms) != 0 || len(f.hv.Running()) != 0 || f.net.holding() != 0 {
		t.Fatalf("warming left %d VMs, %d running, %d TAPs", len(vms), len(f.hv.Running()), f.net.holding())
	}
	var mems []hvtest.FakeMemory
	for _, name := range []string{"w1", "w2"} {
		p := &progress{}
		v, err := f.m.Create(ctx, req(name), p)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"allocate", "clone state", "sync auth files", "acquire tap", "restore fake", "identity", "readiness"}
		if diff := cmp.Diff(want, p.stages); diff != "" {
			t.Errorf("warm create stages (-want +got):\n%s", diff)
		}
		if !v.Spec.Warm || !f.m.API(ctx, v).Warm {
			t.Errorf("%s is not marked warm", name)
		}
		mems = append(mems, f.memory(t, name))
	}
	a, b := mems[0].Identities[0], mems[1].Identities[0]
	if a.MachineID == b.MachineID || a.BootID == b.BootID || a.Net.MAC == b.Net.MAC || a.Net.Address == b.Net.Address ||
		slices.Equal(a.Seed, b.Seed) || slices.Equal(mems[0].HostKeys, mems[1].HostKeys) || slices.Equal(mems[0].Key, mems[1].Key) {
		t.Errorf("two warm VMs share identity:\n%+v\n%+v", a, b)
	}
	// Another shape, or cold, boots.
	for _, r := range []api.CreateVMRequest{{Name: "big", MemoryMiB: 1024, DiskBytes: 1 << 30}, {Name: "cold", MemoryMiB: 512, DiskBytes: 1 << 30, Cold: true}} {
		p := &progress{}
		if _, err := f.m.Create(ctx, r, p); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(p.stages, "agent health") {
			t.Errorf("create %s: stages %v, want a cold boot", r.Name, p.stages)
		}
	}
}

// A warm snapshot whose agent build no longer matches is never restored:
// the create boots cold, says why, and drops it.
func TestStaleWarmSnapshotBootsCold(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.m.Warm(ctx, "base", api.WarmImageRequest{MemoryMiB: 512, DiskBytes: 1 << 30}, &progress{}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.m.Images.AgentBin, []byte("#!/bin/sh\necho '{\"version\":\"t\",\"build_id\":\"a2\"}'\n"), 0o755)
	p := &logProgress{}
	if _, err := f.m.Create(ctx, req("demo"), p); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.stages, "agent health") || !strings.Contains(strings.Join(p.logs, "\n"), "booting cold") {
		t.Errorf("stages %v, logs %v", p.stages, p.logs)
	}
	img, _ := f.m.Images.Get(ctx, "base")
	if w := f.m.WarmSnapshots(img.ID); len(w) != 0 {
		t.Errorf("the stale snapshot is still there: %+v", w)
	}
}

// logProgress keeps log lines too.
type logProgress struct {
	progress
	logs []string
}

func (p *logProgress) Logf(format string, args ...any) {
	p.logs = append(p.logs, fmt.Sprintf(format, args...))
}

// Reconcile leaves every paused VM paused with a state that matches its
// disks, or stopped; a running VM whose save a crash interrupted runs on.
func TestReconcileSnapshots(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	setup := func(name string) VM {
		if _, err := f.m.Create(ctx, req(name), &progress{}); err != nil {
			t.Fatal(err)
		}
		v, _ := f.m.Get(ctx, name)
		return v
	}
	// A pause killed after it recorded the VM paused, before its
	// hypervisor ended.
	a := setup("a")
	if _, err := f.m.Pause(ctx, "a", &progress{}); err != nil {
		t.Fatal(err)
	}
	ah, _ := f.m.Get(ctx, "a")
	ah.Runtime.Handle = a.Runtime.Handle
	f.hv.SetState(*a.Runtime.Handle, hypervisor.Paused)
	f.m.save(ctx, &ah)
	// A save that a crash interrupted: running, its hypervisor paused,
	// a temporary state left.
	b := setup("b")
	f.hv.SetState(*b.Runtime.Handle, hypervisor.Paused)
	os.MkdirAll(stateTmp(f.m.Dir(b.ID)), 0o700)
	// A pause killed after it committed the state, before it recorded
	// the VM paused.
	b2 := setup("b2")
	b2dir := f.m.Dir(b2.ID)
	if _, err := saveState(ctx, f.hv, *b2.Runtime.Handle, stateTmp(b2dir)); err != nil {
		t.Fatal(err)
	}
	if err := commitState(b2dir); err != nil {
		t.Fatal(err)
	}
	// Resumes interrupted with the hypervisor paused (never ran), running
	// (ran), gone (may have run).
	resuming := func(name string, st hypervisor.State) {
		setup(name)
		if _, err := f.m.Pause(ctx, name, &progress{}); err != nil {
			t.Fatal(err)
		}
		v, _ := f.m.Get(ctx, name)
		var spec hypervisor.Spec
		for _, s := range f.hv.Launched() {
			if s.ID == v.ID {
				spec = s
			}
		}
		h, err := f.hv.Restore(ctx, spec, stateDir(f.m.Dir(v.ID)))
		if err != nil {
			t.Fatal(err)
		}
		switch st {
		case hypervisor.Running:
			f.hv.Resume(ctx, h)
		case hypervisor.Stopped:
			f.hv.Crash(h)
		}
		v.Runtime.Handle, v.Runtime.Resuming = &h, true
		f.m.save(ctx, &v)
	}
	resuming("c", hypervisor.Paused)
	resuming("d", hypervisor.Running)
	resuming("e", hypervisor.Stopped)
	// A warm template's leftovers.
	img, _ := f.m.Images.Get(ctx, "base")
	os.MkdirAll(filepath.Join(f.m.warmRoot(), img.ID, ".tmp-vm-x"), 0o700)
	os.MkdirAll(filepath.Join(f.m.warmRoot(), "img-gone", "k"), 0o700)

	if leaks, _ := f.m.Leaks(ctx); len(leaks) < 3 {
		t.Errorf("leaks before reconcile: %+v", leaks)
	}
	if _, err := f.m.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.TidyWarm(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": api.VMPaused, "b": api.VMRunning, "b2": api.VMPaused, "c": api.VMPaused, "d": api.VMRunning, "e": api.VMStopped}
	for name, st := range want {
		v, _ := f.m.Get(ctx, name)
		if v.State != st {
			t.Errorf("%s: %s after reconcile, want %s", name, v.State, st)
		}
		dir := f.m.Dir(v.ID)
		if exists(stateTmp(dir)) || exists(stateDir(dir)) != (st == api.VMPaused) {
			t.Errorf("%s (%s): state kept %v, temporary state %v", name, st, exists(stateDir(dir)), exists(stateTmp(dir)))
		}
		if st == api.VMPaused && (v.Runtime.Handle != nil || v.Runtime.TAP != "") {
			t.Errorf("%s: paused with a handle or TAP: %+v", name, v.Runtime)
		}
	}
	if bv, _ := f.m.Get(ctx, "b"); true {
		if st, _ := f.hv.Status(ctx, *bv.Runtime.Handle); st != hypervisor.Running {
			t.Errorf("b's vCPUs were left %s", st)
		}
	}
	if leaks, _ := f.m.Leaks(ctx); len(leaks) != 0 {
		t.Errorf("leaks after reconcile: %+v", leaks)
	}
	// Every paused VM resumes.
	for _, name := range []string{"a", "b2", "c"} {
		if _, err := f.m.Resume(ctx, name, &progress{}); err != nil {
			t.Errorf("resume %s after reconcile: %v", name, err)
		}
	}
}

// settle returns once the hypervisor process is quiet, and says so when
// it cannot measure one that is gone.
func TestSettle(t *testing.T) {
	f := newFixture(t)
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if got := f.m.settle(context.Background(), hypervisor.Handle{PID: cmd.Process.Pid}); !strings.HasPrefix(got, "quiet after") {
		t.Errorf("settle of a sleeping process: %q", got)
	}
	if got := f.m.settle(context.Background(), hypervisor.Handle{PID: 1 << 30}); !strings.HasPrefix(got, "not measured") {
		t.Errorf("settle of a process that does not exist: %q", got)
	}
}

// The guest's step timings reach the daemon's log bounded and inert:
// at most 16 names, control characters escaped.
func TestStepsTextBoundsTheGuestsWord(t *testing.T) {
	steps := map[string]int64{"net\x1b[2J": 5}
	for i := 0; i < 1000; i++ {
		steps[fmt.Sprintf("step%04d", i)] = int64(i)
	}
	got := stepsText(steps)
	if n := strings.Count(got, "="); n != 16 {
		t.Errorf("%d steps logged, want 16: %q", n, got)
	}
	if strings.ContainsRune(got, '\x1b') {
		t.Errorf("a control character reached the log: %q", got)
	}
	if got := stepsText(map[string]int64{"net\x1b[2J": 5}); got != `net\x1b[2J=5` {
		t.Errorf("stepsText = %q", got)
	}
}
