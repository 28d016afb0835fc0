package daemontest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/vm"
)

// FakeImage is the image a fake daemon registers at start, so a create
// request with zero values boots a VM.
const FakeImage = "base"

// FakeSubnet is the guest network of a fake daemon: a /20, so that
// benchmarks may hold a few thousand VMs at once. Nothing on the host
// carries it.
var FakeSubnet = netip.MustParsePrefix("172.30.0.0/20")

// fakeTools are the e2fsprogs programs a fake daemon's images and VM
// disks are made with.
var fakeTools = []string{"mkfs.ext4", "debugfs", "resize2fs", "e2fsck"}

// requireFakeTools skips the test, with the reason, when e2fsprogs is
// missing.
func requireFakeTools(tb testing.TB) {
	tb.Helper()
	for _, b := range fakeTools {
		if _, err := exec.LookPath(b); err != nil {
			tb.Skipf("a fake daemon makes real ext4 disks, and %s is not installed (apt-get install e2fsprogs)", b)
		}
	}
}

// fakeAgentBin writes a stand-in banger-agent into dir: it answers
// `version --json` as the real one does (images and VM creates ask), and
// the daemon puts it, unrun, into each VM's boot initramfs. Where the
// fake kernel set can be staged it is a static x86-64 program
// (writeFakeAgent), as kernelstage requires of an initramfs /init;
// elsewhere a shell script.
func fakeAgentBin(tb testing.TB, dir string) string {
	tb.Helper()
	p := filepath.Join(dir, "banger-agent")
	var err error
	if canStageKernels() {
		err = writeFakeAgent(p, "fake")
	} else {
		err = os.WriteFile(p, []byte("#!/bin/sh\necho '{\"version\":\"fake\",\"build_id\":\"fake\"}'\n"), 0o755)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Network is a hand-written, in-memory vm.Network for a fake daemon: it
// hands each guest address the TAP name the real pool would
// (hostnet.TAPFor) without creating anything, refuses a TAP already held
// or an address outside its subnet, and records what is held.
type Network struct {
	subnet netip.Prefix

	mu       sync.Mutex
	held     map[string]netip.Addr
	acquired int
	released int
}

var _ vm.Network = (*Network)(nil)

// NewNetwork returns a Network for subnet with no TAP held.
func NewNetwork(subnet netip.Prefix) *Network {
	return &Network{subnet: subnet, held: map[string]netip.Addr{}}
}

func (n *Network) Subnet() netip.Prefix { return n.subnet }
func (n *Network) Gateway() netip.Addr  { return hostnet.Gateway(n.subnet) }

// DNS is empty: a fake guest resolves nothing.
func (n *Network) DNS() []netip.Addr { return nil }

// AcquireTAP takes the TAP of guest address ip.
func (n *Network) AcquireTAP(_ context.Context, ip netip.Addr) (string, error) {
	tap, ok := hostnet.TAPFor(n.subnet, ip)
	if !ok {
		return "", fmt.Errorf("fake network: %s is not a guest address of %s", ip, n.subnet)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if holder, ok := n.held[tap]; ok {
		return "", fmt.Errorf("fake network: %s (for %s) is already held for %s", tap, ip, holder)
	}
	n.held[tap] = ip
	n.acquired++
	return tap, nil
}

// ReleaseTAP returns a TAP. As with the real pool, a TAP that is not held
// (a new Network after a "host reboot") is released without complaint,
// and a name that is no pool TAP's is an error.
func (n *Network) ReleaseTAP(_ context.Context, tap string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.isTAP(tap) {
		return fmt.Errorf("fake network: releasing %q: not a pool TAP", tap)
	}
	if _, ok := n.held[tap]; ok {
		delete(n.held, tap)
		n.released++
	}
	return nil
}

// poolPrefix is what every pool TAP's name starts with.
var poolPrefix = strings.TrimSuffix(hostnet.TAPName(0), "0")

// isTAP reports whether tap is a pool TAP's name (hostnet.TAPName).
func (n *Network) isTAP(tap string) bool {
	i, err := strconv.Atoi(strings.TrimPrefix(tap, poolPrefix))
	return err == nil && i >= 0 && hostnet.TAPName(i) == tap
}

// Held returns the TAPs held now, sorted.
func (n *Network) Held() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.held))
	for tap := range n.held {
		out = append(out, tap)
	}
	slices.Sort(out)
	return out
}

// Counts returns how many TAPs were acquired and released so far.
func (n *Network) Counts() (acquired, released int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.acquired, n.released
}

// discard is an image.Progress that reports nowhere.
type discard struct{}

func (discard) Stage(string)          {}
func (discard) Detail(string, ...any) {}
func (discard) Logf(string, ...any)   {}

// SeedRootfsBytes is the size of SeedImage's rootfs.
const SeedRootfsBytes = 32 << 20

// Seed describes an image SeedImageWith registers.
type Seed struct {
	// RootfsBytes is the size of the rootfs: a sparse file holding an
	// empty ext4 filesystem that size (what mkfs.ext4 writes is all it
	// occupies). 0 means SeedRootfsBytes.
	RootfsBytes int64
	// Copy seeds an image that cannot be a shared base: no kernel
	// modules, placeholder kernel and initramfs, so heal cannot rebuild
	// its initramfs and each of its VMs gets its own copy of the rootfs,
	// the layout of every VM before shared bases (and of VMs made by an
	// older banger).
	Copy bool
}

// SeedImage registers a ready image named name in a fake daemon with
// SeedImageWith's defaults: a shared base with a 32 MiB rootfs.
func (d *Daemon) SeedImage(tb testing.TB, name string) api.Image {
	tb.Helper()
	return d.SeedImageWith(tb, name, Seed{})
}

// SeedImageSized is SeedImage with a rootfs of rootfsBytes, so
// benchmarks can compare creates from small and large images.
func (d *Daemon) SeedImageSized(tb testing.TB, name string, rootfsBytes int64) api.Image {
	tb.Helper()
	return d.SeedImageWith(tb, name, Seed{RootfsBytes: rootfsBytes})
}

// SeedImageWith registers a ready image named name in a fake daemon, made
// the way the catalog makes every image (staged, digested, committed) but
// without debootstrap: its rootfs and work-seed (16 MiB) are real ext4
// filesystems, and its kernel, modules and initramfs are the fake kernel
// set staged by the daemon's real kernel stager (kernel.go). The image is
// then healed as a VM create heals it (image.Catalog.Repair), which
// makes it a shared base: its initramfs restaged with the overlay module,
// its upper-seed made, so its VMs boot its rootfs read-only under an
// overlay (Spec.RootLayout "overlay"). With seed.Copy it is not a base
// (see Seed). A shared base needs an x86-64 host (the stand-in agent is
// an x86-64 program); elsewhere the test is skipped. It returns the
// image as the API shows it.
func (d *Daemon) SeedImageWith(tb testing.TB, name string, seed Seed) api.Image {
	tb.Helper()
	if d.seams == nil {
		tb.Fatal("daemontest: SeedImage needs a daemon started with Options.Fake")
	}
	if !seed.Copy && !canStageKernels() {
		tb.Skipf("daemontest: a shared base image needs the x86-64 stand-in agent, and this host is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	rootfsBytes := cmp.Or(seed.RootfsBytes, SeedRootfsBytes)
	cat := d.seams.Catalog()
	ctx := context.Background()
	tree, err := os.MkdirTemp(d.Root, "seed-")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(tree)
	_, err = cat.Create(ctx, image.Spec{Name: name, Fill: func(ctx context.Context, s *image.Staging, m *image.Manifest) error {
		if seed.Copy {
			for _, k := range []image.Kind{image.Vmlinux, image.Vmlinuz, image.Initrd} {
				if err := os.WriteFile(s.Path(k), []byte("fake "+string(k)+"\n"), 0o600); err != nil {
					return err
				}
			}
			m.Kernel = api.KernelInfo{Release: FakeKernelRelease, QEMU: true, Firecracker: true}
		} else {
			kernel := filepath.Join(tree, "vmlinuz")
			if err := writeFakeKernel(kernel); err != nil {
				return err
			}
			if err := writeFakeModules(s.Path(image.Modules)); err != nil {
				return err
			}
			if err := cat.StageKernel(ctx, kernel, s.Path(image.Modules), "", s.Dir, m); err != nil {
				return fmt.Errorf("staging the fake kernel: %w", err)
			}
		}
		if err := os.MkdirAll(filepath.Join(tree, "root"), 0o700); err != nil {
			return err
		}
		if err := cat.Tools.MakeFromDir(ctx, s.Path(image.Rootfs), tree, "root", rootfsBytes); err != nil {
			return err
		}
		return cat.Tools.MakeFromDir(ctx, s.Path(image.WorkSeed), filepath.Join(tree, "root"), image.WorkSeedLabel, 16<<20)
	}}, discard{})
	if err != nil {
		tb.Fatalf("seeding image %s: %v", name, err)
	}
	healed, _, err := cat.Repair(ctx, name, discard{})
	if err != nil {
		tb.Fatalf("healing the seeded image %s: %v", name, err)
	}
	if base := healed.Has(image.UpperSeed); base == seed.Copy {
		tb.Fatalf("seeded image %s: shared base %v, want %v (artifacts %v)", name, base, !seed.Copy, slices.Collect(maps.Keys(healed.Artifacts)))
	}
	img, err := d.Client.Image(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// LaunchedRootLayout returns how the fake hypervisor's last launch of
// the VM named name laid out its root, as vm.Spec.RootLayout says it:
// vm.RootOverlay when its root disk was an image's rootfs in the catalog,
// attached read-only, with an upper disk beside it and
// banger.rootfs=overlay on the command line (a VM on a shared base); ""
// when its root disk was a writable disk of its own (a copy of the
// rootfs). Anything else, or a VM never launched, is an error naming what
// was seen. The Fake keeps the specs of stopped and deleted VMs (until
// Fake.ForgetStopped), so a benchmark asks after its VMs are gone.
func (d *Daemon) LaunchedRootLayout(name string) (string, error) {
	if d.Fake == nil || d.seams == nil {
		return "", fmt.Errorf("daemontest: LaunchedRootLayout needs a daemon started with Options.Fake")
	}
	var spec *hypervisor.Spec
	for _, s := range d.Fake.Launched() {
		if s.Name == name {
			spec = &s
		}
	}
	if spec == nil {
		return "", fmt.Errorf("the fake hypervisor never launched VM %s", name)
	}
	disks := map[string]hypervisor.Disk{}
	for _, disk := range spec.Disks {
		disks[disk.ID] = disk
	}
	root, hasRoot := disks["root"]
	_, hasUpper := disks["upper"]
	overlayFlag := slices.Contains(strings.Fields(spec.Boot.Cmdline), "banger.rootfs=overlay")
	inCatalog := filepath.Dir(filepath.Dir(root.Path)) == d.seams.Catalog().Root && filepath.Base(root.Path) == image.Rootfs.FileName()
	switch {
	case hasRoot && root.ReadOnly && inCatalog && hasUpper && overlayFlag:
		return vm.RootOverlay, nil
	case hasRoot && !root.ReadOnly && !inCatalog && !hasUpper && !overlayFlag:
		return "", nil
	}
	return "", fmt.Errorf("VM %s was launched with neither layout: disks %+v, command line %q", name, spec.Disks, spec.Boot.Cmdline)
}

// Await follows an operation to its end and returns it; a failed
// operation fails the test with its error.
func (d *Daemon) Await(tb testing.TB, op api.Operation) api.Operation {
	tb.Helper()
	final, err := d.Client.WatchOperation(context.Background(), op.ID, nil)
	if err != nil {
		tb.Fatalf("following operation %s (%s): %v", op.ID, op.Kind, err)
	}
	if final.State != api.OperationSucceeded {
		tb.Fatalf("operation %s (%s %s) %s: %v", op.ID, op.Kind, op.Target, final.State, final.Error)
	}
	return final
}

// CreateVM creates a VM through the API (create, then follow the
// operation) and returns it as the operation's result shows it.
func (d *Daemon) CreateVM(tb testing.TB, req api.CreateVMRequest) api.VM {
	tb.Helper()
	v, err := d.createVM(req)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func (d *Daemon) createVM(req api.CreateVMRequest) (api.VM, error) {
	ctx := context.Background()
	op, err := d.Client.BeginCreateVM(ctx, req)
	if err != nil {
		return api.VM{}, fmt.Errorf("creating a VM: %w", err)
	}
	final, err := d.Client.WatchOperation(ctx, op.ID, nil)
	if err != nil {
		return api.VM{}, fmt.Errorf("following create %s: %w", op.ID, err)
	}
	if final.State != api.OperationSucceeded {
		return api.VM{}, fmt.Errorf("create %s %s: %v", op.ID, final.State, final.Error)
	}
	var v api.VM
	if err := json.Unmarshal(final.Result, &v); err != nil {
		return api.VM{}, fmt.Errorf("create %s: decoding its result: %w", op.ID, err)
	}
	return v, nil
}

// CreateVMsParallel is how many creates CreateVMs keeps in flight.
const CreateVMsParallel = 8

// CreateVMs creates n VMs with generated names and default sizes through
// the API, CreateVMsParallel at a time, and returns them in the order they
// finished. Any failure fails the test.
func CreateVMs(tb testing.TB, d *Daemon, n int) []api.VM {
	tb.Helper()
	var (
		mu   sync.Mutex
		out  = make([]api.VM, 0, n)
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, CreateVMsParallel)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			v, err := d.createVM(api.CreateVMRequest{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			out = append(out, v)
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		tb.Fatalf("%d of %d creates failed; the first: %v", len(errs), n, errs[0])
	}
	return out
}

// DeleteVMs deletes the named VMs, CreateVMsParallel at a time.
func DeleteVMs(tb testing.TB, d *Daemon, names []string) {
	tb.Helper()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, CreateVMsParallel)
	for _, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := d.Client.DeleteVM(context.Background(), name); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("deleting %s: %w", name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		tb.Fatalf("%d of %d deletes failed; the first: %v", len(errs), len(names), errs[0])
	}
}
