package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/ext4img"
	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/names"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
	"github.com/google/go-cmp/cmp"
)

// fakeNet is a hand-written TAP pool: it hands out tap-pool-N names,
// records what was acquired and released, and can run dry.
type fakeNet struct {
	mu       sync.Mutex
	next     int
	held     map[string]bool
	released []string
	dry      bool
}

func (n *fakeNet) Subnet() netip.Prefix { return netip.MustParsePrefix("172.30.0.0/24") }
func (n *fakeNet) Gateway() netip.Addr  { return netip.MustParseAddr("172.30.0.1") }
func (n *fakeNet) DNS() []netip.Addr    { return []netip.Addr{netip.MustParseAddr("192.168.1.1")} }
func (n *fakeNet) AcquireTAP(context.Context, netip.Addr) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dry {
		return "", fmt.Errorf("no idle TAP: %w: run `sudo banger host setup --taps 4`", hostnet.ErrPoolExhausted)
	}
	name := hostnet.TAPName(n.next)
	n.next++
	n.held[name] = true
	return name, nil
}
func (n *fakeNet) ReleaseTAP(_ context.Context, tap string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.held, tap)
	n.released = append(n.released, tap)
	return nil
}
func (n *fakeNet) holding() int { n.mu.Lock(); defer n.mu.Unlock(); return len(n.held) }

type progress struct {
	mu     sync.Mutex
	stages []string
}

func (p *progress) Stage(s string)        { p.mu.Lock(); p.stages = append(p.stages, s); p.mu.Unlock() }
func (p *progress) Detail(string, ...any) {}
func (p *progress) Logf(string, ...any)   {}

type fixture struct {
	m    *Manager
	hv   *hvtest.Fake
	net  *fakeNet
	root string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	for _, b := range []string{"mkfs.ext4", "debugfs", "resize2fs", "e2fsck"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (apt-get install e2fsprogs)", b)
		}
	}
	root := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(root, "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	agent := filepath.Join(root, "banger-agent")
	os.WriteFile(agent, []byte("#!/bin/sh\necho '{\"version\":\"t\",\"build_id\":\"a1\"}'\n"), 0o755)
	tools := ext4img.New()
	cat := &image.Catalog{Root: filepath.Join(root, "images"), Store: st, Tools: tools, AgentBin: agent, Log: log,
		AgentFiles: func(string) ([]ext4img.File, error) { return nil, nil }}
	// An image with real ext4 disks and placeholder boot files.
	_, err = cat.Create(ctx, image.Spec{Name: "base", Fill: func(ctx context.Context, s *image.Staging, m *image.Manifest) error {
		for _, k := range []image.Kind{image.Vmlinux, image.Vmlinuz, image.Initrd} {
			os.WriteFile(s.Path(k), []byte(k), 0o600)
		}
		tree := filepath.Join(root, "tree")
		os.MkdirAll(filepath.Join(tree, "root"), 0o700)
		if err := tools.MakeFromDir(ctx, s.Path(image.Rootfs), tree, "root", 64<<20); err != nil {
			return err
		}
		m.Kernel = api.KernelInfo{Release: "6.1.0-test", QEMU: true}
		m.Probes = []api.Probe{{Name: "opencode", Kind: "tcp", Port: 4096}}
		return tools.MakeFromDir(ctx, s.Path(image.WorkSeed), filepath.Join(tree, "root"), image.WorkSeedLabel, 16<<20)
	}}, &progress{})
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(root, "home")
	os.MkdirAll(filepath.Join(home, ".claude"), 0o700)
	os.WriteFile(filepath.Join(home, ".claude", ".credentials.json"), []byte(`{"t":1}`), 0o600)
	cfg := config.Default(config.Paths{StateDir: filepath.Join(root, "state"), DataDir: filepath.Join(root, "data")}, home)
	hv := hvtest.NewFake()
	n := &fakeNet{held: map[string]bool{}}
	m := &Manager{Cfg: cfg, Store: st, Images: cat, Net: n, Tools: tools, Log: log,
		PublicKey: func() (string, error) { return "ssh-ed25519 AAAAtestkey banger", nil },
		Drivers:   map[string]hypervisor.Hypervisor{hv.Name(): hv},
		Select: func(context.Context, string, Progress) (Choice, error) {
			return Choice{HV: hv}, nil
		},
	}
	return &fixture{m: m, hv: hv, net: n, root: root}
}

// bootPayload reads back the payload of a VM's last boot.
func (f *fixture) bootPayload(t *testing.T, v VM) (bootpayload.Payload, []byte) {
	t.Helper()
	img, err := f.m.Images.Get(context.Background(), "base")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(img.Path(image.Initrd))
	if err != nil {
		t.Fatal(err)
	}
	p, init, err := bootpayload.ReadInitrd(bootInitrd(f.m.Dir(v.ID)), fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return p, init
}

func req(name string) api.CreateVMRequest {
	return api.CreateVMRequest{Name: name, MemoryMiB: 512, DiskBytes: 1 << 30}
}

func TestCreateRunsEveryStage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := &progress{}
	v, err := f.m.Create(ctx, req("demo"), p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"allocate", "clone rootfs", "work disk", "sync auth files", "acquire tap", "launch fake", "agent health", "readiness"}
	if diff := cmp.Diff(want, p.stages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	got, _ := f.m.Get(ctx, "demo")
	if got.State != api.VMRunning || got.Runtime.TAP == "" || got.Lease.TAP != got.Runtime.TAP || got.Lease.IP != "172.30.0.2" {
		t.Fatalf("vm = %+v", got)
	}
	spec := f.hv.Launched()[0]
	for _, w := range []string{"root=/dev/vda", "banger.ip=172.30.0.2/24", "banger.gw=172.30.0.1", "banger.hostname=demo", "banger.mac=02:b4:ac:1e:00:02", "banger.dns=192.168.1.1"} {
		if !strings.Contains(spec.Boot.Cmdline, w) {
			t.Errorf("cmdline %q lacks %q", spec.Boot.Cmdline, w)
		}
	}
	if len(spec.Disks) != 2 || spec.NIC == nil || spec.NIC.MAC != got.Lease.MAC {
		t.Errorf("launch spec = %+v", spec)
	}
	// The work disk is the seed's file system in a file of the VM's size:
	// the guest grows the file system at boot (internal/guest/growfs).
	if fi, err := os.Stat(workDisk(f.m.Dir(v.ID))); err != nil || fi.Size() != 1<<30 {
		t.Errorf("work disk file: %v %v, want %d bytes", fi, err, 1<<30)
	}
	if sb, err := ext4img.ReadSuperblock(workDisk(f.m.Dir(v.ID))); err != nil || sb.Size() >= 1<<30 || sb.Label != image.WorkSeedLabel {
		t.Errorf("work disk: %+v %v; want the work-seed's file system, unresized", sb, err)
	}
	// The boot payload, not the work disk, carries the credentials and
	// the SSH key: the daemon never writes into (or reads) a guest disk.
	payload, init := f.bootPayload(t, v)
	wantFiles := []bootpayload.File{{Path: "/root/.claude/.credentials.json", Mode: 0o600, Data: []byte(`{"t":1}`)}}
	if diff := cmp.Diff(wantFiles, payload.Files); diff != "" {
		t.Errorf("auth files in the payload (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ssh-ed25519 AAAAtestkey banger"}, payload.AuthorizedKeys); diff != "" {
		t.Errorf("authorized keys (-want +got):\n%s", diff)
	}
	if agent, _ := os.ReadFile(f.m.Images.AgentBin); string(init) != string(agent) {
		t.Errorf("/init of the boot initramfs is not the daemon's agent")
	}
	if spec.Boot.Initrd != bootInitrd(f.m.Dir(v.ID)) {
		t.Errorf("launched with initrd %s, want the per-boot one", spec.Boot.Initrd)
	}
	key, err := agentKey(f.m.Dir(v.ID))
	if err != nil || string(key) != string(payload.Key) {
		t.Errorf("agent key on the host %x (%v), in the payload %x", key, err, payload.Key)
	}
	// Every boot gets a new key.
	f.m.Stop(ctx, "demo")
	if _, err := os.Stat(bootInitrd(f.m.Dir(v.ID))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a stopped VM keeps its boot initramfs (credentials at rest): %v", err)
	}
	if _, err := f.m.Start(ctx, "demo", &progress{}); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.bootPayload(t, v); string(again.Key) == string(payload.Key) {
		t.Error("a second boot reused the agent key")
	}
	kh, _ := os.ReadFile(f.m.KnownHosts(v.ID))
	if want := "172.30.0.2 " + strings.TrimSuffix(hvtest.FakeHostKey, " root@banger") + "\n"; string(kh) != want {
		t.Errorf("known_hosts = %q", kh)
	}
}

// A failure at any stage releases everything and leaves no record.
func TestCreateFailureLeavesNothing(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(f *fixture)
		want   error
	}{
		{"launch fails", func(f *fixture) { f.hv.LaunchErr = errors.New("qemu: boom") }, nil},
		{"agent never healthy", func(f *fixture) {
			f.hv.HealthErr = errors.New("not yet")
			f.m.AgentTimeout = 1
		}, api.ErrUnavailable},
		{"pool exhausted", func(f *fixture) { f.net.dry = true }, hostnet.ErrPoolExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.break_(f)
			_, err := f.m.Create(context.Background(), req("doomed"), &progress{})
			if err == nil {
				t.Fatal("create succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v is not %v", err, tt.want)
			}
			vms, _ := f.m.List(context.Background())
			leases, _ := f.m.Store.ListLeases(context.Background())
			entries, _ := os.ReadDir(filepath.Join(f.m.Cfg.Paths.StateDir, "vms"))
			if len(vms) != 0 || len(leases) != 0 || len(entries) != 0 || f.net.holding() != 0 || len(f.hv.Running()) != 0 {
				t.Errorf("left behind: %d vms, %d leases, %d dirs, %d taps, %d processes", len(vms), len(leases), len(entries), f.net.holding(), len(f.hv.Running()))
			}
		})
	}
}

// TestValidateCreate: each bad field of a create request is refused with
// an *api.Error naming the field by its JSON name and what it accepts, in
// a message that names no CLI flag.
func TestValidateCreate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.m.Create(ctx, req("taken"), &progress{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		mod     func(*api.CreateVMRequest)
		code    api.Code
		field   string
		allowed string
		msg     string
	}{
		{"missing image", func(r *api.CreateVMRequest) { r.Image = "nope" }, api.CodeNotFound,
			"image", "an image name or id", `image "nope" does not exist: see ` + "`banger image list`"},
		{"memory too small", func(r *api.CreateVMRequest) { r.MemoryMiB = 64 }, api.CodeInvalidArgument,
			"memory_mib", "256MiB..256GiB", "memory_mib 64MiB is out of range: use 256MiB..256GiB, e.g. 2GiB"},
		{"memory too large", func(r *api.CreateVMRequest) { r.MemoryMiB = 300 << 10 }, api.CodeInvalidArgument,
			"memory_mib", "256MiB..256GiB", "memory_mib 300GiB is out of range"},
		{"disk too small", func(r *api.CreateVMRequest) { r.DiskBytes = 1 << 20 }, api.CodeInvalidArgument,
			"disk_bytes", "1GiB..4TiB", "disk_bytes 1MiB is out of range: use 1GiB..4TiB, e.g. 16GiB"},
		{"disk too large", func(r *api.CreateVMRequest) { r.DiskBytes = 5 << 40 }, api.CodeInvalidArgument,
			"disk_bytes", "1GiB..4TiB", "disk_bytes 5TiB is out of range"},
		{"disk not whole MiB", func(r *api.CreateVMRequest) { r.DiskBytes = 1<<30 + 1 }, api.CodeInvalidArgument,
			"disk_bytes", "1GiB..4TiB, whole MiB", "disk_bytes 1073741825 is not a whole number of MiB"},
		{"too many vcpus", func(r *api.CreateVMRequest) { r.VCPUs = 65 }, api.CodeInvalidArgument,
			"vcpus", "1..64", "vcpus 65 is out of range: use 1..64"},
		{"negative vcpus", func(r *api.CreateVMRequest) { r.VCPUs = -1 }, api.CodeInvalidArgument,
			"vcpus", "1..64", "vcpus -1 is out of range"},
		{"name taken", func(r *api.CreateVMRequest) { r.Name = "taken" }, api.CodeAlreadyExists,
			"name", "a name no other VM has", `a vm named "taken" already exists: pick another name, or delete it with ` + "`banger vm delete taken`"},
		{"bad name", func(r *api.CreateVMRequest) { r.Name = "Bad Name" }, api.CodeInvalidArgument,
			"name", names.Rule, `invalid name "Bad Name"`},
		{"unknown hypervisor", func(r *api.CreateVMRequest) { r.Hypervisor = "xen" }, api.CodeInvalidArgument,
			"hypervisor", "qemu, firecracker", `hypervisor "xen" is unknown: use qemu or firecracker`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := req("")
			c.mod(&r)
			_, err := f.m.ValidateCreate(ctx, &r)
			var ae *api.Error
			if !errors.As(err, &ae) {
				t.Fatalf("%+v: got %v, want an *api.Error", r, err)
			}
			if ae.Code != c.code || ae.Field != c.field || ae.Allowed != c.allowed || !strings.Contains(ae.Message, c.msg) {
				t.Errorf("got %s field=%q allowed=%q %q\nwant %s field=%q allowed=%q containing %q",
					ae.Code, ae.Field, ae.Allowed, ae.Message, c.code, c.field, c.allowed, c.msg)
			}
			if !strings.HasPrefix(ae.Message, c.field+" ") && !strings.Contains(ae.Message, " "+c.field) {
				t.Errorf("message %q does not name the field %s", ae.Message, c.field)
			}
			if strings.Contains(ae.Message, "--") {
				t.Errorf("message %q names a CLI flag", ae.Message)
			}
		})
	}
	// Defaults fill in.
	r := api.CreateVMRequest{}
	if _, err := f.m.ValidateCreate(ctx, &r); err != nil || r.VCPUs != 2 || r.MemoryMiB != 1024 || r.DiskBytes != 8<<30 {
		t.Errorf("defaults: %+v %v", r, err)
	}
}

func TestStopStartDelete(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.m.Create(ctx, req("cycle"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	tap := v.Runtime.TAP
	if _, err := f.m.Stop(ctx, "cycle"); err != nil {
		t.Fatal(err)
	}
	got, _ := f.m.Get(ctx, "cycle")
	if got.State != api.VMStopped || got.Runtime.Handle != nil || got.Lease.TAP != "" || f.net.holding() != 0 {
		t.Fatalf("after stop: %+v (holding %d)", got, f.net.holding())
	}
	if !strings.Contains(strings.Join(f.hv.Ops(), ","), "shutdown") {
		t.Errorf("stop did not shut down gracefully: %v", f.hv.Ops())
	}
	if _, err := f.m.Start(ctx, "cycle", &progress{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Start(ctx, "cycle", &progress{}); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("starting a running vm: %v", err)
	}
	if err := f.m.Delete(ctx, "cycle"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Get(ctx, "cycle"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("deleted vm: %v", err)
	}
	if _, err := os.Stat(f.m.Dir(v.ID)); !os.IsNotExist(err) || f.net.holding() != 0 || len(f.hv.Running()) != 0 {
		t.Errorf("delete left dir/taps/processes (tap %s)", tap)
	}
}

// Under software emulation a guest whose console stays silent before its
// agent answers is taken for stalled and relaunched — once.
func TestStalledTCGBootIsRelaunchedOnce(t *testing.T) {
	f := newFixture(t)
	f.m.Select = func(context.Context, string, Progress) (Choice, error) {
		return Choice{HV: f.hv, Accel: "tcg"}, nil
	}
	f.hv.DialErr = errors.New("no agent yet") // and the fake console never grows
	f.m.StallAfter = 300 * time.Millisecond
	f.m.AgentTimeout = 2 * time.Second
	p := &progress{}
	_, err := f.m.Create(context.Background(), req("stuck"), p)
	if err == nil {
		t.Fatal("create succeeded without an agent")
	}
	if !strings.Contains(err.Error(), "stalled during boot") {
		t.Errorf("second stall: %v", err)
	}
	if n := len(f.hv.Launched()); n != 2 {
		t.Errorf("launched %d times, want 2 (one relaunch)", n)
	}
	launches := 0
	for _, s := range p.stages {
		if s == "launch fake" {
			launches++
		}
	}
	if launches != 2 || len(f.hv.Running()) != 0 {
		t.Errorf("stages %v, %d still running", p.stages, len(f.hv.Running()))
	}

	// Under KVM the same silence is just a slow boot: no relaunch.
	g := newFixture(t)
	g.m.Select = func(context.Context, string, Progress) (Choice, error) {
		return Choice{HV: g.hv, Accel: "kvm"}, nil
	}
	g.hv.DialErr = errors.New("no agent yet")
	g.m.StallAfter = 300 * time.Millisecond
	g.m.AgentTimeout = time.Second
	if _, err := g.m.Create(context.Background(), req("slow"), &progress{}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("kvm boot without an agent: %v", err)
	}
	if n := len(g.hv.Launched()); n != 1 {
		t.Errorf("kvm: launched %d times, want 1", n)
	}
}

// A VM made by an older banger records the daemon's agent build when it
// starts: the boot initramfs's init (the daemon's agent) installs itself,
// so the daemon never writes into the VM's root disk.
func TestStartRecordsTheDaemonsAgent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.m.Create(ctx, req("old"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Spec.AgentVersion == "" {
		t.Fatal("create did not record the agent build")
	}
	if _, err := f.m.Stop(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	v, _ = f.m.Get(ctx, "old")
	v.Spec.AgentVersion = ""
	f.m.save(ctx, &v)
	before, _ := os.ReadFile(rootDisk(f.m.Dir(v.ID)))
	p := &progress{}
	if _, err := f.m.Start(ctx, "old", p); err != nil {
		t.Fatal(err)
	}
	after, _ := f.m.Get(ctx, "old")
	if after.Spec.AgentVersion == "" {
		t.Error("the daemon's agent build was not recorded")
	}
	if _, init := f.bootPayload(t, after); len(init) == 0 {
		t.Error("the boot initramfs has no /init")
	}
	if now, _ := os.ReadFile(rootDisk(f.m.Dir(v.ID))); string(now) != string(before) {
		t.Error("start changed the VM's root disk")
	}
}

// After a daemon restart: a VM whose process lives is adopted and left
// alone; one whose process died is marked stopped with its TAP returned; a
// half-created one is removed.
func TestReconcile(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alive, _ := f.m.Create(ctx, req("alive"), &progress{})
	dead, _ := f.m.Create(ctx, req("dead"), &progress{})
	f.hv.Crash(*dead.Runtime.Handle)
	half, _ := f.m.Create(ctx, req("half"), &progress{})
	half.State = api.VMCreating
	f.m.save(ctx, &half)

	findings, err := f.m.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, fd := range findings {
		got[fd.VM] = fd.Action
	}
	if diff := cmp.Diff(map[string]string{"alive": "adopted", "dead": "marked stopped", "half": "removed half-created"}, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if v, _ := f.m.Get(ctx, "alive"); v.State != api.VMRunning || v.Runtime.Handle.PID != alive.Runtime.Handle.PID {
		t.Errorf("alive: %+v", v)
	}
	if v, _ := f.m.Get(ctx, "dead"); v.State != api.VMStopped || v.Lease.TAP != "" {
		t.Errorf("dead: %+v", v)
	}
	if _, err := f.m.Get(ctx, "half"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("half: %v", err)
	}
	if f.net.holding() != 1 {
		t.Errorf("holding %d taps, want 1 (alive's)", f.net.holding())
	}
}

func TestConcurrentCreatesAndDeletes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.m.Create(ctx, req(fmt.Sprintf("vm%d", i)), &progress{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	vms, _ := f.m.List(ctx)
	ips := map[string]bool{}
	for _, v := range vms {
		ips[v.Lease.IP] = true
	}
	if len(vms) != n || len(ips) != n {
		t.Errorf("%d vms with %d distinct addresses, want %d", len(vms), len(ips), n)
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.m.Delete(ctx, fmt.Sprintf("vm%d", i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if left, _ := f.m.List(ctx); len(left) != 0 || f.net.holding() != 0 {
		t.Errorf("left %d vms, %d taps", len(left), f.net.holding())
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{{"1.7.0", "1.8", true}, {"1.10.1", "1.8", false}, {"1.8", "1.8.0", false}, {"v1.4.1", "1.5", true}} {
		if got := hypervisor.VersionLess(c.a, c.b); got != c.want {
			t.Errorf("VersionLess(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

// fcNamed is a Fake that calls itself firecracker, to test the
// suitability checks.
type fcNamed struct{ *hvtest.Fake }

func (fcNamed) Name() string { return "firecracker" }

func TestFirecrackerSuitability(t *testing.T) {
	img := image.Image{Name: "base", Manifest: image.Manifest{Kernel: api.KernelInfo{Release: "6.1",
		Firecracker: true, FirecrackerMinVersion: "1.8", FirecrackerReason: "ACPI discovery"}}}
	fc := fcNamed{hvtest.NewFake()}
	if err := checkSuitable(Choice{HV: fc, Version: "1.7.1"}, img); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "needs Firecracker 1.8") || fieldOf(err) != "hypervisor" {
		t.Errorf("old firecracker: %v", err)
	}
	if err := checkSuitable(Choice{HV: fc, Version: "1.10.1"}, img); err != nil {
		t.Errorf("new firecracker: %v", err)
	}
	img.Manifest.Kernel.Firecracker = false
	err := checkSuitable(Choice{HV: fc, Version: "1.10.1"}, img)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeFailedPrecondition || ae.Field != "hypervisor" || ae.Allowed != "qemu" ||
		!strings.HasPrefix(ae.Message, "hypervisor firecracker cannot boot image base: ACPI discovery; use qemu") {
		t.Errorf("unsuitable kernel: %#v", err)
	}
}

// fieldOf is the Field of the *api.Error in err's chain, "" if none.
func fieldOf(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Field
	}
	return ""
}

// A daemon killed between a launch and recording the handle leaves a
// hypervisor no record names; reconcile kills it with the half-created VM,
// and nothing else.
func TestReconcileKillsUnrecordedHypervisor(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.m.Create(ctx, req("half"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	v.State, v.Runtime.Handle = api.VMCreating, nil
	f.m.save(ctx, &v)
	// tail -f keeps running with the path in its command line (sleep
	// would exit at once on the path argument).
	otherFile := filepath.Join(t.TempDir(), "not-a-vm")
	os.WriteFile(otherFile, nil, 0o600)
	stray := exec.Command("tail", "-f", filepath.Join(f.m.Dir(v.ID), "rootfs.ext4"))
	other := exec.Command("tail", "-f", otherFile)
	for _, c := range []*exec.Cmd{stray, other} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	defer other.Process.Kill()
	f.m.StrayCommands = []string{"tail"}
	// The kernel sets a new program's command line a moment after the
	// parent is released from vfork: wait until /proc shows it.
	for i := 0; i < 500; i++ {
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", stray.Process.Pid))
		if strings.Contains(string(raw), f.m.Dir(v.ID)) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	findings, err := f.m.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 1 || !strings.Contains(findings[0].Detail, fmt.Sprint(stray.Process.Pid)) {
		t.Errorf("findings = %+v", findings)
	}
	if err := stray.Wait(); err == nil {
		t.Error("the stray hypervisor was not killed")
	}
	if other.ProcessState != nil {
		t.Error("an unrelated process was killed")
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the unrelated process is gone: %v", err)
	}
}

// The daemon never parses a guest-writable filesystem (SPEC §8): a start
// after the guest wrote anything at all into its disks — here, not even
// ext4 any more, standing for a crafted filesystem or a 1 TiB sparse
// authorized_keys — neither reads nor writes them.
func TestStartNeverTouchesTheGuestsDisks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.m.Create(ctx, req("hostile"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Stop(ctx, "hostile"); err != nil {
		t.Fatal(err)
	}
	dir := f.m.Dir(v.ID)
	crafted := map[string][]byte{}
	for _, d := range []string{rootDisk(dir), workDisk(dir)} {
		junk := []byte(strings.Repeat("crafted by the guest\n", 4096))
		if err := os.WriteFile(d, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		crafted[d] = junk
	}
	if _, err := f.m.Start(ctx, "hostile", &progress{}); err != nil {
		t.Fatalf("start with guest-crafted disks: %v", err)
	}
	for d, want := range crafted {
		if got, _ := os.ReadFile(d); string(got) != string(want) {
			t.Errorf("start changed %s", filepath.Base(d))
		}
	}
}

// A hypervisor handed descriptors (QEMU as the VM user) or a jail
// (Firecracker) has no VM path on its command line: strays are also known
// by the VM id the drivers pass.
func TestNamesVM(t *testing.T) {
	dir := "/state/vms/vm-abc"
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"qemu-system-x86_64", "-drive", "file=/state/vms/vm-abc/rootfs.ext4"}, true},
		{[]string{"qemu-system-x86_64", "-name", "guest=vm-abc", "-drive", "file=/dev/fdset/8"}, true},
		{[]string{"qemu-system-x86_64", "-name", "guest=vm-abc,debug-threads=on"}, true},
		{[]string{"/firecracker", "--id", "vm-abc", "--api-sock", "/fc.sock"}, true},
		{[]string{"jailer", "--id", "vm-abc", "--exec-file", "/usr/bin/firecracker"}, true},
		{[]string{"qemu-system-x86_64", "-name", "guest=vm-abcd"}, false},
		{[]string{"qemu-system-x86_64", "-name", "guest=vm-ab"}, false},
		{[]string{"firecracker", "--id", "vm-other"}, false},
		{[]string{"qemu-system-x86_64", "-drive", "file=/state/vms/vm-abcd/rootfs.ext4"}, false},
		{[]string{"qemu-system-x86_64", "-name"}, false},
		{[]string{"tail", "guest=vm-abc"}, false},
	}
	for _, tt := range tests {
		if got := namesVM(tt.args, dir); got != tt.want {
			t.Errorf("namesVM(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}

// The VM a create returns carries the creation time the store recorded
// (the operation's result and the event feed show it).
func TestCreateReturnsItsCreationTime(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.m.Create(ctx, req("stamped"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.m.Get(ctx, "stamped")
	if err != nil {
		t.Fatal(err)
	}
	if v.CreatedAt.IsZero() || !v.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("create returned created_at %v, the store has %v", v.CreatedAt, got.CreatedAt)
	}
	if a := f.m.API(ctx, v); !a.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("API created_at %v, want %v", a.CreatedAt, got.CreatedAt)
	}
}

// A force-removed image keeps its files for the VMs that still use it:
// they stop and start again; deleting the last of them removes the image's
// files and record.
func TestForceRemovedImageLastsAsLongAsItsVMs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v, err := f.m.Create(ctx, req("keeper"), &progress{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.m.Images.Remove(ctx, "base", true); err != nil {
		t.Fatal(err)
	}
	dir := f.m.Images.Dir(v.ImageID)
	if _, err := f.m.Create(ctx, req("newcomer"), &progress{}); err == nil {
		t.Error("a new VM was made from a removed image")
	}
	if _, err := f.m.Stop(ctx, "keeper"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Start(ctx, "keeper", &progress{}); err != nil {
		t.Fatalf("a VM of a force-removed image could not start again: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the image's files went while its VM runs: %v", err)
	}
	if err := f.m.Delete(ctx, "keeper"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the image's files outlived its last VM: %v", err)
	}
	if _, err := f.m.Images.Get(ctx, v.ImageID); err == nil {
		t.Error("the removed image's record outlived its last VM")
	}
}

// TestBootPayloadLeavesOutTheImagesAgent: an image whose initramfs banger
// staged with the daemon's agent (Manifest.InitrdAgent) boots with a
// payload archive that carries no second copy of it; once the daemon's
// agent changes, the payload brings the new one again.
func TestBootPayloadLeavesOutTheImagesAgent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	base, err := f.m.Images.Get(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.m.Images.Create(ctx, image.Spec{Name: "staged", Fill: func(ctx context.Context, s *image.Staging, m *image.Manifest) error {
		for _, k := range []image.Kind{image.Vmlinux, image.Vmlinuz, image.Initrd, image.Rootfs, image.WorkSeed} {
			b, err := os.ReadFile(base.Path(k))
			if err != nil {
				return err
			}
			if err := os.WriteFile(s.Path(k), b, 0o600); err != nil {
				return err
			}
		}
		*m = base.Manifest
		m.InitrdAgent = "t+a1" // what the fixture's agent reports
		return nil
	}}, &progress{})
	if err != nil {
		t.Fatal(err)
	}
	r := req("withagent")
	r.Image = "staged"
	v, err := f.m.Create(ctx, r, &progress{})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(base.Path(image.Initrd))
	_, init, err := bootpayload.ReadInitrd(bootInitrd(f.m.Dir(v.ID)), fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	if init != nil {
		t.Errorf("the boot payload carries an /init of %d bytes although the image's initramfs has the daemon's agent", len(init))
	}

	// A new daemon build: the image's initramfs has the old agent.
	os.WriteFile(f.m.Images.AgentBin, []byte("#!/bin/sh\necho '{\"version\":\"t\",\"build_id\":\"a2\"}'\n"), 0o755)
	r.Name = "newagent"
	v, err = f.m.Create(ctx, r, &progress{})
	if err != nil {
		t.Fatal(err)
	}
	_, init, err = bootpayload.ReadInitrd(bootInitrd(f.m.Dir(v.ID)), fi.Size())
	if agent, _ := os.ReadFile(f.m.Images.AgentBin); err != nil || string(init) != string(agent) {
		t.Errorf("after an agent change the payload's /init is %q (%v), want the daemon's new agent", init, err)
	}
}
