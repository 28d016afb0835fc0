package daemontest_test

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/doctor"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/shared/poll"
	"github.com/google/go-cmp/cmp"
)

// createStages are the stages of a create on the fake hypervisor from a
// shared base (the seeded images): every stage a real create has, with
// the fake's launch.
var createStages = []string{"allocate", "upper disk", "work disk", "sync auth files", "acquire tap", "launch fake", "agent health", "readiness"}

func stageNames(op api.Operation) []string {
	var out []string
	for _, s := range op.Stages {
		out = append(out, s.Name)
	}
	return out
}

// vmNamed returns the VM of that name in GET /v1/vms.
func vmNamed(t *testing.T, d *daemontest.Daemon, name string) (api.VM, bool) {
	t.Helper()
	vms, err := d.Client.VMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vms {
		if v.Name == name {
			return v, true
		}
	}
	return api.VM{}, false
}

// requireClean fails the test when the fake network holds a TAP, a fake VM
// still runs, or verify finds a leak.
func requireClean(t *testing.T, d *daemontest.Daemon) {
	t.Helper()
	if held := d.Network.Held(); len(held) > 0 {
		t.Errorf("TAPs still held: %v", held)
	}
	if running := d.Fake.Running(); len(running) > 0 {
		t.Errorf("fake VMs still running: %v", running)
	}
	rep, err := d.Client.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Leaks) > 0 {
		t.Errorf("verify: %+v", rep.Leaks)
	}
}

func TestFakeVMLifecycle(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	ctx := context.Background()

	op, err := d.Client.BeginCreateVM(ctx, api.CreateVMRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var events []api.EventType
	final, err := d.Client.WatchOperation(ctx, op.ID, func(ev api.OperationEvent) error {
		events = append(events, ev.Type)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if final.State != api.OperationSucceeded {
		t.Fatalf("create %s: %v", final.State, final.Error)
	}
	if diff := cmp.Diff(createStages, stageNames(final)); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	if events[0] != api.EventSnapshot || events[len(events)-1] != api.EventDone {
		t.Errorf("events = %v, want a snapshot first and done last", events)
	}
	names := d.Fake.Launched()
	if len(names) != 1 {
		t.Fatalf("the fake launched %d VMs, want 1", len(names))
	}
	name := names[0].Name
	if layout, err := d.LaunchedRootLayout(name); err != nil || layout != vm.RootOverlay {
		t.Errorf("root layout of %s = %q, %v; want %q", name, layout, err, vm.RootOverlay)
	}

	v, ok := vmNamed(t, d, name)
	if !ok {
		t.Fatalf("GET /v1/vms has no %s", name)
	}
	ip, err := netip.ParseAddr(v.IP)
	if v.State != api.VMRunning || v.Image != daemontest.FakeImage || v.Hypervisor != hvtest.FakeDriverName ||
		err != nil || !daemontest.FakeSubnet.Contains(ip) || v.TAP == "" || v.DiskBytes != 1<<30 {
		t.Fatalf("vm = %+v", v)
	}
	if diff := cmp.Diff([]string{v.TAP}, d.Network.Held()); diff != "" {
		t.Errorf("held TAPs (-want +got):\n%s", diff)
	}
	sessions, err := d.Client.Sessions(ctx, name)
	if err != nil || len(sessions) != 0 {
		t.Errorf("sessions of a fake VM = %v, %v; want none", sessions, err)
	}
	rep, err := d.Client.Doctor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(rep.Checks, func(c api.Check) bool { return c.Name == doctor.CheckBridge }); i < 0 || rep.Checks[i].Status != api.CheckSkip {
		t.Errorf("doctor's bridge check on a fake network = %+v, want skip", rep.Checks)
	}

	stopped, err := d.Client.StopVM(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.State != api.VMStopped || len(d.Network.Held()) != 0 || len(d.Fake.Running()) != 0 {
		t.Fatalf("after stop: vm %s, TAPs %v, fake VMs running %d", stopped.State, d.Network.Held(), len(d.Fake.Running()))
	}
	if _, err := d.Client.Sessions(ctx, name); err != nil {
		t.Errorf("sessions of a stopped fake VM: %v", err)
	}

	start, err := d.Client.BeginStartVM(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	d.Await(t, start)
	if v, _ := vmNamed(t, d, name); v.State != api.VMRunning || len(d.Fake.Launched()) != 2 {
		t.Fatalf("after start: vm %s, %d launches", v.State, len(d.Fake.Launched()))
	}

	if err := d.Client.DeleteVM(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, ok := vmNamed(t, d, name); ok {
		t.Fatalf("%s is still listed after delete", name)
	}
	if _, err := d.Client.VM(ctx, name); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("GET deleted vm: %v, want not found", err)
	}
	requireClean(t, d)
}

func TestFakeCreateRefusesLikeARealDaemon(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	ctx := context.Background()
	tests := []struct {
		name string
		req  api.CreateVMRequest
		want error
	}{
		{"too many vCPUs", api.CreateVMRequest{VCPUs: 1000}, api.ErrInvalidArgument},
		{"no such image", api.CreateVMRequest{Image: "nope"}, api.ErrNotFound},
		{"bad name", api.CreateVMRequest{Name: "Bad Name"}, api.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := d.Client.BeginCreateVM(ctx, tt.req); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	d.CreateVM(t, api.CreateVMRequest{Name: "taken"})
	if _, err := d.Client.BeginCreateVM(ctx, api.CreateVMRequest{Name: "taken"}); !errors.Is(err, api.ErrAlreadyExists) {
		t.Errorf("a second VM named taken: %v, want already exists", err)
	}
}

func TestFakeLaunchFailureCleansUp(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.Fake.LaunchErr = errors.New("no room at the inn")
	op, err := d.Client.BeginCreateVM(context.Background(), api.CreateVMRequest{Name: "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	final, err := d.Client.WatchOperation(context.Background(), op.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != api.OperationFailed || final.Error == nil || !strings.Contains(final.Error.Message, "no room at the inn") {
		t.Fatalf("create = %s, %v; want failed with the launch error", final.State, final.Error)
	}
	if _, ok := vmNamed(t, d, "doomed"); ok {
		t.Error("a VM whose launch failed is still listed")
	}
	requireClean(t, d)
}

func TestFakeVMsConcurrently(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	const n = 20
	created := daemontest.CreateVMs(t, d, n)
	names := map[string]bool{}
	ips := map[string]bool{}
	for _, v := range created {
		if v.State != api.VMRunning {
			t.Errorf("%s is %s", v.Name, v.State)
		}
		names[v.Name], ips[v.IP] = true, true
	}
	if len(names) != n || len(ips) != n {
		t.Fatalf("%d names and %d addresses for %d VMs", len(names), len(ips), n)
	}
	listed, err := d.Client.VMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != n || len(d.Network.Held()) != n || len(d.Fake.Running()) != n {
		t.Fatalf("%d listed, %d TAPs held, %d fake VMs running; want %d", len(listed), len(d.Network.Held()), len(d.Fake.Running()), n)
	}
	var all []string
	for name := range names {
		all = append(all, name)
	}
	daemontest.DeleteVMs(t, d, all)
	if listed, _ := d.Client.VMs(context.Background()); len(listed) != 0 {
		t.Errorf("%d VMs left after deleting all", len(listed))
	}
	requireClean(t, d)
}

func TestFakeRestartAdoptsRunningVMs(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	ctx := context.Background()
	kept := d.CreateVM(t, api.CreateVMRequest{Name: "kept"})
	crashed := d.CreateVM(t, api.CreateVMRequest{Name: "crashed"})
	var crashedHandle hypervisor.Handle
	for _, h := range d.Fake.Running() {
		if h.PID == crashed.PID {
			crashedHandle = h
		}
	}
	d.Restart(t)
	// The VM's process died while no daemon watched.
	d.Fake.Crash(crashedHandle)
	d.Restart(t)

	if v, _ := vmNamed(t, d, "kept"); v.State != api.VMRunning || v.PID != kept.PID {
		t.Errorf("kept after restarts = %s pid %d, want running pid %d", v.State, v.PID, kept.PID)
	}
	if v, _ := vmNamed(t, d, "crashed"); v.State != api.VMStopped {
		t.Errorf("crashed after restart = %s, want stopped", v.State)
	}
	adopts := 0
	for _, c := range d.Fake.Calls() {
		if c.Op == "adopt" && c.Err == nil {
			adopts++
		}
	}
	if adopts != 3 { // both VMs at the first restart, kept at the second
		t.Errorf("%d successful adoptions, want 3: %v", adopts, d.Fake.Ops())
	}
	// The adopted VM's agent is reached afresh.
	if _, err := d.Client.Sessions(ctx, "kept"); err != nil {
		t.Errorf("sessions of an adopted VM: %v", err)
	}
	daemontest.DeleteVMs(t, d, []string{"kept", "crashed"})
	requireClean(t, d)
}

// TestFakeDaemonStopLeavesNoGoroutines: once Stop returns, nothing of the
// daemon, its operations or its agent channels is left running, though
// the VMs are.
func TestFakeDaemonStopLeavesNoGoroutines(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	daemontest.CreateVMs(t, d, 3)
	if _, err := d.Client.Sessions(context.Background(), d.Fake.Launched()[0].Name); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	// The VMs outlive their daemon, as real ones do; its connections to
	// their agents do not.
	if n := len(d.Fake.Running()); n != 3 {
		t.Fatalf("%d fake VMs run after the daemon stopped, want 3", n)
	}
	ours := []string{"/internal/host/daemon.", "/internal/host/vm.", "/internal/host/operation.", "/internal/host/agentlink.",
		"/internal/shared/agentmux.", "/internal/host/hypervisor/hvtest.", "hashicorp/yamux."}
	var left string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := poll.Until(ctx, 50*time.Millisecond, func() (bool, error) {
		buf := make([]byte, 1<<20)
		dump := string(buf[:runtime.Stack(buf, true)])
		left = ""
		for _, g := range strings.Split(dump, "\n\n") {
			if strings.Contains(g, "TestFakeDaemonStopLeavesNoGoroutines") {
				continue
			}
			for _, p := range ours {
				if strings.Contains(g, p) {
					left += g + "\n\n"
					break
				}
			}
		}
		return left == "", nil
	})
	if err != nil {
		t.Fatalf("goroutines left after the daemon stopped:\n%s", left)
	}
}

// BenchmarkCreateFakeVM creates VMs through the API of a fake daemon,
// daemontest.CreateVMsParallel at a time, and reports creates per second;
// the VMs are deleted outside the timer.
func BenchmarkCreateFakeVM(b *testing.B) {
	d := daemontest.Start(b, daemontest.Options{Fake: true})
	b.ResetTimer()
	created := daemontest.CreateVMs(b, d, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	names := make([]string, len(created))
	for i, v := range created {
		names[i] = v.Name
	}
	daemontest.DeleteVMs(b, d, names)
}

// TestFakeHostReboot: a fake daemon started on the root of a stopped one,
// with a new Fake and Network (as after a host reboot), finds the VMs
// gone, marks them stopped, and starts them again.
func TestFakeHostReboot(t *testing.T) {
	first := daemontest.Start(t, daemontest.Options{Fake: true})
	first.CreateVM(t, api.CreateVMRequest{Name: "survivor"})
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	d := daemontest.Start(t, daemontest.Options{Fake: true, Root: first.Root})
	v, ok := vmNamed(t, d, "survivor")
	if !ok || v.State != api.VMStopped || v.TAP != "" {
		t.Fatalf("after the reboot: %+v, want survivor stopped without a TAP", v)
	}
	op, err := d.Client.BeginStartVM(context.Background(), "survivor")
	if err != nil {
		t.Fatal(err)
	}
	d.Await(t, op)
	if v, _ := vmNamed(t, d, "survivor"); v.State != api.VMRunning {
		t.Fatalf("survivor after start = %s", v.State)
	}
	daemontest.DeleteVMs(t, d, []string{"survivor"})
	requireClean(t, d)
}

func TestNetwork(t *testing.T) {
	ctx := context.Background()
	subnet := netip.MustParsePrefix("10.9.0.0/24")
	a, b := netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.3")
	type step struct {
		op      string // "acquire" or "release"
		ip      netip.Addr
		tap     string
		wantTAP string
		wantErr string
	}
	tests := []struct {
		name     string
		steps    []step
		wantHeld []string
	}{
		{"acquire two", []step{{op: "acquire", ip: a, wantTAP: "tap-pool-0"}, {op: "acquire", ip: b, wantTAP: "tap-pool-1"}},
			[]string{"tap-pool-0", "tap-pool-1"}},
		{"acquire and release", []step{{op: "acquire", ip: a, wantTAP: "tap-pool-0"}, {op: "release", tap: "tap-pool-0"}}, []string{}},
		{"the same address twice", []step{{op: "acquire", ip: a, wantTAP: "tap-pool-0"}, {op: "acquire", ip: a, wantErr: "already held"}},
			[]string{"tap-pool-0"}},
		{"an address outside the subnet", []step{{op: "acquire", ip: netip.MustParseAddr("10.8.0.2"), wantErr: "not a guest address"}}, []string{}},
		{"the gateway", []step{{op: "acquire", ip: netip.MustParseAddr("10.9.0.1"), wantErr: "not a guest address"}}, []string{}},
		{"release what is not held", []step{{op: "release", tap: "tap-pool-7"}}, []string{}},
		{"release a name that is no TAP", []step{{op: "release", tap: "eth0", wantErr: "not a pool TAP"}}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := daemontest.NewNetwork(subnet)
			for i, s := range tt.steps {
				var tap string
				var err error
				if s.op == "acquire" {
					tap, err = n.AcquireTAP(ctx, s.ip)
				} else {
					err = n.ReleaseTAP(ctx, s.tap)
				}
				if s.wantErr == "" && err != nil || s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)) {
					t.Fatalf("step %d (%s): err = %v, want %q", i, s.op, err, s.wantErr)
				}
				if tap != s.wantTAP {
					t.Errorf("step %d: tap = %q, want %q", i, tap, s.wantTAP)
				}
			}
			if diff := cmp.Diff(tt.wantHeld, n.Held()); diff != "" {
				t.Errorf("held (-want +got):\n%s", diff)
			}
		})
	}
}

// BenchmarkListFakeVMs lists 200 VMs (GET /v1/vms), what a front end does
// once at start.
func BenchmarkListFakeVMs(b *testing.B) {
	d := daemontest.Start(b, daemontest.Options{Fake: true})
	daemontest.CreateVMs(b, d, 200)
	for b.Loop() {
		vms, err := d.Client.VMs(context.Background())
		if err != nil || len(vms) != 200 {
			b.Fatalf("%d VMs, %v", len(vms), err)
		}
	}
}

// A hypervisor that dies while the daemon runs shows up in the event feed
// as the VM stopped, with no request from anyone, and leaves nothing held.
func TestFakeCrashWhileRunningIsAnnounced(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	v := d.CreateVM(t, api.CreateVMRequest{Name: "doomed"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard
	defer cancel()
	stopped := make(chan api.Event, 1)
	go d.Client.Events(ctx, 0, "", func(ev api.Event) error {
		if ev.Kind == api.EventHello {
			for _, h := range d.Fake.Running() {
				d.Fake.Crash(h)
			}
		}
		if ev.Kind == api.EventVM && ev.Name == v.Name && ev.VMState != nil && ev.VMState.State == api.VMStopped {
			stopped <- ev
			return errors.New("seen")
		}
		return nil
	})
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("no event said the crashed VM stopped")
	}
	if got, _ := vmNamed(t, d, v.Name); got.State != api.VMStopped || got.PID != 0 {
		t.Errorf("GET /v1/vms shows %s pid %d", got.State, got.PID)
	}
	requireClean(t, d)
}

// TestSeededImages: a seeded image is a shared base made the real way
// (the fake kernel set staged by kernelstage, then healed: initramfs
// restaged with the overlay module, upper-seed), so its VMs boot its
// rootfs read-only under an overlay; a Copy seed is no base, and its VMs
// get their own rootfs copy. The size asked for is the rootfs's.
func TestSeededImages(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	tests := []struct {
		name       string
		seed       daemontest.Seed
		wantRootfs int64
		wantKinds  []string
		wantStage  string
		wantLayout string
		wantMods   []string
	}{
		{"base", daemontest.Seed{}, daemontest.SeedRootfsBytes,
			[]string{"vmlinux", "vmlinuz", "initrd", "modules", "rootfs", "work-seed", "upper-seed"},
			"upper disk", vm.RootOverlay, []string{"kernel/fs/overlayfs/overlay.ko"}},
		{"sized", daemontest.Seed{RootfsBytes: 64 << 20}, 64 << 20,
			[]string{"vmlinux", "vmlinuz", "initrd", "modules", "rootfs", "work-seed", "upper-seed"},
			"upper disk", vm.RootOverlay, []string{"kernel/fs/overlayfs/overlay.ko"}},
		{"copied", daemontest.Seed{Copy: true}, daemontest.SeedRootfsBytes,
			[]string{"vmlinux", "vmlinuz", "initrd", "rootfs", "work-seed"},
			"clone rootfs", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := d.SeedImageWith(t, "seed-"+tt.name, tt.seed)
			var kinds []string
			for _, a := range img.Artifacts {
				kinds = append(kinds, a.Kind)
				if a.Kind == "rootfs" && a.Size != tt.wantRootfs {
					t.Errorf("rootfs of %d bytes, want %d", a.Size, tt.wantRootfs)
				}
			}
			if diff := cmp.Diff(tt.wantKinds, kinds); diff != "" {
				t.Errorf("artifacts (-want +got):\n%s", diff)
			}
			if img.Kernel.Release != daemontest.FakeKernelRelease || !img.Kernel.QEMU || !img.Kernel.Firecracker ||
				!slices.Equal(img.Kernel.Modules, tt.wantMods) {
				t.Errorf("kernel = %+v, want %s bootable by both hypervisors, initramfs modules %v", img.Kernel, daemontest.FakeKernelRelease, tt.wantMods)
			}
			v := d.CreateVM(t, api.CreateVMRequest{Name: "on-" + tt.name, Image: img.Name})
			layout, err := d.LaunchedRootLayout(v.Name)
			if err != nil || layout != tt.wantLayout {
				t.Errorf("root layout = %q, %v; want %q", layout, err, tt.wantLayout)
			}
			ops, err := d.Client.Operations(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(ops, func(op api.Operation) bool { return op.Target == v.Name })
			if i < 0 || !slices.Contains(stageNames(ops[i]), tt.wantStage) || slices.Contains(stageNames(ops[i]), "heal image") {
				t.Errorf("create of %s: %v; want a %q stage and no heal (the seed is healed already)", v.Name, ops, tt.wantStage)
			}
			daemontest.DeleteVMs(t, d, []string{v.Name})
		})
	}
	requireClean(t, d)
}
