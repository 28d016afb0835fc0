// Package boottest boots a real Linux guest for tests: Debian's cloud
// kernel under QEMU, with banger-agent as the initramfs /init and a small
// ext4 root filesystem whose /sbin/init (testdata/rootinit) reports what it
// sees on the console.
//
// It owns the test-side copy of the boot set layout that kernel staging
// produces for real images: /init, /dev/console, and the modules listed in
// guestinit.ModulesFile with their dependencies (read from each module's
// .modinfo). Every helper skips the test, with the reason, when this host
// cannot boot a guest (no QEMU, no kernel, -short).
package boottest

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guest/guestinit"
	"github.com/bangerdev/banger/internal/host/debkernel"
	"github.com/bangerdev/banger/internal/shared/initramfs"
)

const (
	// RootMarker starts the line rootinit prints once it runs as the real
	// init.
	RootMarker = "BANGER-ROOT-OK"
	// AgentMarker is printed by rootinit after it started banger-agent
	// serve (kernel command line with rootinit.agent).
	AgentMarker = "BANGER-AGENT-STARTED"
	// AgentPath is where rootinit looks for banger-agent.
	AgentPath = "/usr/local/lib/banger/banger-agent"
)

// Kernel is a kernel with its modules tree.
type Kernel struct {
	Vmlinuz    string
	ModulesDir string // lib/modules/<release>
	Release    string
}

// RequireQEMU returns qemu-system-x86_64, or skips.
func RequireQEMU(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test that boots a Linux guest under QEMU")
	}
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 is not installed, so no guest can be booted: apt-get install qemu-system-x86")
	}
	return p
}

// RequireKernel returns Debian's cloud kernel, fetched into the cache the
// repository's tests share ($TMPDIR/banger-test-kernel-cache), or skips.
func RequireKernel(t testing.TB) Kernel {
	t.Helper()
	cache := filepath.Join(os.TempDir(), "banger-test-kernel-cache")
	k, err := debkernel.Fetch(context.Background(), cache, "", nil)
	if err != nil {
		t.Skipf("no kernel to boot (apt must be able to fetch %s): %v", debkernel.DefaultPackage, err)
	}
	return Kernel{Vmlinuz: k.Vmlinuz, ModulesDir: k.ModulesDir, Release: k.Release}
}

// moduleRoot is the directory holding the repository's go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		t.Skipf("cannot find the module root with `go env GOMOD` (is go in PATH?): %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// BuildStatic builds the main package pkg (an import path, or a path
// relative to the module root starting with ./) as a static linux/amd64
// binary and returns its path.
func BuildStatic(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// BuildAgent builds banger-agent.
func BuildAgent(t testing.TB) string {
	return BuildStatic(t, "./cmd/banger-agent")
}

// BuildRootInit builds testdata/rootinit.
func BuildRootInit(t testing.TB) string {
	return BuildStatic(t, "./internal/guest/guestinit/boottest/testdata/rootinit")
}

// ModuleOrder returns the module files (relative to k.ModulesDir) that
// loading names needs, dependencies first, as read from each module's
// .modinfo "depends=" field (a Debian kernel package ships no modules.dep).
func ModuleOrder(k Kernel, names ...string) ([]string, error) {
	index := map[string]string{} // module name -> relative path
	err := filepath.WalkDir(k.ModulesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			rel, _ := filepath.Rel(k.ModulesDir, p)
			index[normalize(strings.TrimSuffix(d.Name(), ".ko"))] = rel
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		name = normalize(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		case 2:
			return nil
		}
		rel, ok := index[name]
		if !ok {
			return fmt.Errorf("module %s is not in %s (built in, or not built?)", name, k.ModulesDir)
		}
		state[name] = 1
		deps, err := moduleDepends(filepath.Join(k.ModulesDir, rel))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, rel)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// moduleDepends reads the depends= field of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s has no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// Initramfs writes an initramfs with agent as /init, /dev/console, and the
// modules (relative to k.ModulesDir, in load order) under
// /lib/modules/<release>/ and listed in guestinit.ModulesFile. extra
// entries are listed in the modules file but not added (to exercise the
// handling of missing modules). It returns the archive's path.
func Initramfs(t testing.TB, agent string, k Kernel, modules []guestinit.Module, extra ...guestinit.Module) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "initrd.cpio")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := initramfs.NewWriter(f)
	modDir := filepath.Join("lib/modules", k.Release)
	steps := []func() error{
		func() error { return w.AddDir("dev", 0o755) },
		func() error { return w.AddCharDev("dev/console", 0o600, 5, 1) },
		func() error { return w.AddDir("proc", 0o555) },
		func() error { return w.AddDir("sys", 0o555) },
		func() error { return w.AddDirAll("etc/banger", 0o755) },
		func() error {
			return w.AddFile(strings.TrimPrefix(guestinit.ModulesFile, "/"), 0o644,
				guestinit.FormatModules(k.Release, append(append([]guestinit.Module{}, modules...), extra...)))
		},
	}
	for _, m := range modules {
		dst := filepath.Join(modDir, m.Path)
		src := filepath.Join(k.ModulesDir, m.Path)
		steps = append(steps,
			func() error { return w.AddDirAll(filepath.Dir(dst), 0o755) },
			func() error { return w.AddFileFrom(dst, 0o644, src) })
	}
	steps = append(steps, func() error { return w.AddFileFrom("init", 0o755, agent) }, w.Close)
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("writing the initramfs: %v", err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// RootFS makes an ext4 image of size bytes holding files (image path →
// host file) plus empty /dev, /proc, /sys and /root, with mkfs.ext4 -d.
func RootFS(t testing.TB, size int64, files map[string]string) string {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 is not installed: apt-get install e2fsprogs")
	}
	dir := filepath.Join(t.TempDir(), "tree")
	for _, d := range []string{"dev", "proc", "sys", "root", "etc", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for dst, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "root.ext4")
	if out, err := exec.Command(mkfs, "-q", "-F", "-d", dir, img, fmt.Sprintf("%dk", size/1024)).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v\n%s", err, out)
	}
	return img
}

// BlankExt4 makes an empty ext4 image of size bytes.
func BlankExt4(t testing.TB, size int64) string {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 is not installed: apt-get install e2fsprogs")
	}
	img := filepath.Join(t.TempDir(), "blank.ext4")
	if out, err := exec.Command(mkfs, "-q", "-F", "-b", "4096", img, fmt.Sprintf("%dk", size/1024)).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return img
}

// Options describe a boot.
type Options struct {
	QEMU   string
	Kernel string
	Initrd string
	Disks  []string // raw images, virtio-blk, in order: /dev/vda, /dev/vdb, ...
	// ReadOnly attaches these Disks read-only (QEMU readonly=on): the
	// guest's writes fail at the device, whatever it mounts.
	ReadOnly map[string]bool
	Append   string   // kernel command line
	Devices  []string // more QEMU arguments
}

// VM is a running QEMU.
type VM struct {
	start   time.Time
	cmd     *exec.Cmd
	console *syncBuffer
	exited  chan struct{}
	waitErr error
}

// Boot starts QEMU (q35, TCG, 512 MiB, serial console captured) and kills
// it when the test ends.
func Boot(t testing.TB, o Options) *VM {
	t.Helper()
	args := []string{
		"-machine", "q35,accel=tcg", "-m", "512", "-smp", "1",
		"-nographic", "-no-reboot", "-nodefaults", "-monitor", "none", "-serial", "stdio",
		"-kernel", o.Kernel, "-initrd", o.Initrd, "-append", o.Append,
	}
	for _, d := range o.Disks {
		drive := "file=" + d + ",if=virtio,format=raw"
		if o.ReadOnly[d] {
			drive += ",readonly=on"
		}
		args = append(args, "-drive", drive)
	}
	args = append(args, o.Devices...)
	vm := &VM{console: &syncBuffer{}, exited: make(chan struct{})}
	vm.cmd = exec.Command(o.QEMU, args...)
	vm.cmd.Stdout, vm.cmd.Stderr = vm.console, vm.console
	vm.start = time.Now()
	if err := vm.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", o.QEMU, err)
	}
	go func() {
		vm.waitErr = vm.cmd.Wait()
		close(vm.exited)
	}()
	t.Cleanup(func() {
		vm.cmd.Process.Kill()
		<-vm.exited
	})
	return vm
}

// WaitFor waits until the console shows s, QEMU exits, or timeout passes,
// and returns how long after QEMU's start s appeared.
func (vm *VM) WaitFor(s string, timeout time.Duration) (time.Duration, error) {
	deadline := time.After(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if vm.console.Contains(s) {
			return time.Since(vm.start), nil
		}
		select {
		case <-vm.exited:
			if vm.console.Contains(s) {
				return time.Since(vm.start), nil
			}
			return 0, fmt.Errorf("QEMU exited (%v) before the console showed %q", vm.waitErr, s)
		case <-deadline:
			return 0, fmt.Errorf("the console did not show %q within %v", s, timeout)
		case <-tick.C:
		}
	}
}

// WaitExit waits for QEMU to exit by itself (the guest powered off).
func (vm *VM) WaitExit(timeout time.Duration) error {
	select {
	case <-vm.exited:
		return vm.waitErr
	case <-time.After(timeout):
		return errors.New("QEMU still runs: the guest did not power off")
	}
}

// Console returns everything the guest printed so far.
func (vm *VM) Console() string { return vm.console.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Contains(sub string) bool {
	return strings.Contains(s.String(), sub)
}
