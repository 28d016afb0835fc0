package kernelstage

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fixtureModule is one module of a synthetic tree.
type fixtureModule struct {
	path string   // relative to the modules dir
	deps []string // module names
}

// writeTree writes a modules dir holding mods and builtin, with a
// modules.dep when withDep, else with depends= in each module's modinfo.
func writeTree(t *testing.T, dir string, mods []fixtureModule, builtin []string, withDep bool) {
	t.Helper()
	byName := map[string]string{}
	for _, m := range mods {
		byName[moduleName(m.path)] = m.path
	}
	var dep strings.Builder
	for _, m := range mods {
		writeFile(t, filepath.Join(dir, m.path), compressModule(t, m.path, fakeKO("name="+moduleName(m.path), "depends="+strings.Join(m.deps, ","), "vermagic="+fixtureRelease+" SMP mod_unload ")))
		dep.WriteString(m.path + ":")
		for _, d := range m.deps {
			p, ok := byName[d]
			if !ok {
				p = "kernel/missing/" + d + ".ko"
			}
			dep.WriteString(" " + p)
		}
		dep.WriteString("\n")
	}
	if withDep {
		writeFile(t, filepath.Join(dir, "modules.dep"), []byte(dep.String()))
	}
	if builtin != nil {
		writeFile(t, filepath.Join(dir, "modules.builtin"), []byte(strings.Join(builtin, "\n")+"\n"))
	}
}

// compressModule compresses a module as its file name says.
func compressModule(t *testing.T, name string, ko []byte) []byte {
	switch moduleCompression(name) {
	case compXZ:
		return xzBytes(t, ko)
	case compZstd:
		return zstdBytes(t, ko)
	case compGzip:
		return gzipBytes(t, ko)
	}
	return ko
}

func TestModuleClosure(t *testing.T) {
	tests := []struct {
		name        string
		mods        []fixtureModule
		builtin     []string
		names       []string
		wantOrdered []string
		wantBuiltin []string
		wantMissing []string
		wantErr     string
	}{
		{
			name:        "chain: dependencies first",
			mods:        []fixtureModule{{"kernel/a.ko", []string{"b"}}, {"kernel/b.ko", []string{"c"}}, {"kernel/c.ko", nil}},
			names:       []string{"a"},
			wantOrdered: []string{"kernel/c.ko", "kernel/b.ko", "kernel/a.ko"},
		},
		{
			name: "diamond: shared dependency once",
			mods: []fixtureModule{
				{"kernel/a.ko", []string{"b", "c"}}, {"kernel/b.ko", []string{"d"}},
				{"kernel/c.ko", []string{"d"}}, {"kernel/d.ko", nil},
			},
			names:       []string{"a", "c", "a"},
			wantOrdered: []string{"kernel/d.ko", "kernel/b.ko", "kernel/c.ko", "kernel/a.ko"},
		},
		{
			name: "virtio_net needs failover and net_failover",
			mods: []fixtureModule{
				{"kernel/drivers/net/virtio_net.ko", []string{"net_failover"}},
				{"kernel/drivers/net/net_failover.ko", []string{"failover"}},
				{"kernel/net/core/failover.ko", nil},
			},
			names:       []string{"virtio_net"},
			wantOrdered: []string{"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko"},
		},
		{
			name:        "built in and missing are reported, not errors",
			mods:        []fixtureModule{{"kernel/virtio_blk.ko", []string{"virtio"}}},
			builtin:     []string{"kernel/drivers/virtio/virtio.ko", "kernel/fs/ext4/ext4.ko"},
			names:       []string{"virtio_blk", "ext4", "virtio_mmio"},
			wantOrdered: []string{"kernel/virtio_blk.ko"},
			wantBuiltin: []string{"ext4"},
			wantMissing: []string{"virtio_mmio"},
		},
		{
			name:        "dash and underscore are the same name; compressed files",
			mods:        []fixtureModule{{"kernel/arch/x86/crypto/crc32c-intel.ko.xz", nil}, {"kernel/x.ko.zst", []string{"crc32c_intel"}}},
			names:       []string{"x", "crc32c-intel"},
			wantOrdered: []string{"kernel/arch/x86/crypto/crc32c-intel.ko.xz", "kernel/x.ko.zst"},
		},
		{
			name:    "cycle",
			mods:    []fixtureModule{{"kernel/a.ko", []string{"b"}}, {"kernel/b.ko", []string{"c"}}, {"kernel/c.ko", []string{"a"}}},
			names:   []string{"a"},
			wantErr: "cycle a -> b -> c -> a",
		},
		{
			name:    "missing dependency",
			mods:    []fixtureModule{{"kernel/a.ko", []string{"gone"}}},
			names:   []string{"a"},
			wantErr: "depends on gone, which is neither",
		},
	}
	for _, mode := range []struct {
		name    string
		withDep bool
	}{{"modules.dep", true}, {"modinfo", false}} {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), fixtureRelease)
				writeTree(t, dir, tt.mods, tt.builtin, mode.withDep)
				ordered, builtin, missing, err := ModuleClosure(dir, tt.names)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got := [3][]string{ordered, builtin, missing}
				want := [3][]string{tt.wantOrdered, tt.wantBuiltin, tt.wantMissing}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("[ordered builtin missing] (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestModuleClosureModinfoReadsCompressedModules checks that the modinfo
// path decompresses .ko.xz/.ko.zst/.ko.gz to read depends=.
func TestModuleClosureModinfoReadsCompressedModules(t *testing.T) {
	dir := filepath.Join(t.TempDir(), fixtureRelease)
	ko := func(deps string) []byte { return fakeKO("depends="+deps, "vermagic="+fixtureRelease+" SMP") }
	writeFile(t, filepath.Join(dir, "kernel/a.ko.xz"), xzBytes(t, ko("b")))
	writeFile(t, filepath.Join(dir, "kernel/b.ko.zst"), zstdBytes(t, ko("c")))
	writeFile(t, filepath.Join(dir, "kernel/c.ko.gz"), gzipBytes(t, ko("")))
	ordered, _, _, err := ModuleClosure(dir, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"kernel/c.ko.gz", "kernel/b.ko.zst", "kernel/a.ko.xz"}, ordered); diff != "" {
		t.Errorf("ordered (-want +got):\n%s", diff)
	}
}

// TestDebianModuleClosure resolves NeededModules in Debian's real cloud
// kernel, from modinfo (the .deb ships no modules.dep) and, where depmod
// is installed, from a modules.dep it generates: both must agree.
func TestDebianModuleClosure(t *testing.T) {
	k := debianKernel(t)
	if _, err := os.Stat(filepath.Join(k.ModulesDir, "modules.dep")); err == nil {
		t.Fatalf("%s has a modules.dep; this test expects the .deb's tree as unpacked", k.ModulesDir)
	}
	ordered, builtin, missing, err := ModuleClosure(k.ModulesDir, NeededModules)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load order: %v", ordered)
	t.Logf("built in: %v; missing: %v", builtin, missing)
	checkDepOrder(t, k.ModulesDir, ordered)

	names := modNames(ordered)
	for _, want := range []string{"virtio_pci", "virtio_blk", "virtio_net", "failover", "net_failover", "virtio_mmio", "vmw_vsock_virtio_transport", "overlay"} {
		if !slices.Contains(names, want) {
			t.Errorf("closure lacks %s", want)
		}
	}
	if i, j, k := slices.Index(names, "failover"), slices.Index(names, "net_failover"), slices.Index(names, "virtio_net"); !(i < j && j < k) {
		t.Errorf("want failover < net_failover < virtio_net in load order, got positions %d %d %d", i, j, k)
	}
	if !slices.Contains(builtin, "ext4") {
		t.Errorf("ext4 should be built into Debian's cloud kernel; builtin = %v", builtin)
	}

	depmod, err := exec.LookPath("depmod")
	if err != nil {
		t.Skip("depmod is not installed (apt-get install -y kmod), so the modules.dep path is not compared on the real kernel")
	}
	// depmod -b BASE writes BASE/lib/modules/<release>/modules.dep; give
	// it a copy of the tree's metadata and a link to the module files.
	base := t.TempDir()
	dir := filepath.Join(base, "lib", "modules", k.Release)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(k.ModulesDir, "kernel"), filepath.Join(dir, "kernel")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"modules.builtin", "modules.order", "modules.builtin.modinfo"} {
		if b, err := os.ReadFile(filepath.Join(k.ModulesDir, f)); err == nil {
			writeFile(t, filepath.Join(dir, f), b)
		}
	}
	if out, err := exec.Command(depmod, "-b", base, k.Release).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err != nil {
		t.Fatalf("depmod wrote no modules.dep: %v", err)
	}
	depOrdered, depBuiltin, depMissing, err := ModuleClosure(dir, NeededModules)
	if err != nil {
		t.Fatal(err)
	}
	checkDepOrder(t, k.ModulesDir, depOrdered)
	if diff := cmp.Diff(sorted(ordered), sorted(depOrdered)); diff != "" {
		t.Errorf("modules.dep and modinfo give different module sets (-modinfo +modules.dep):\n%s", diff)
	}
	if diff := cmp.Diff([2][]string{builtin, missing}, [2][]string{depBuiltin, depMissing}); diff != "" {
		t.Errorf("builtin/missing differ (-modinfo +modules.dep):\n%s", diff)
	}
}

// checkDepOrder checks that every module comes after its depends= modules
// (those not built in), reading modinfo from the files themselves.
func checkDepOrder(t *testing.T, dir string, ordered []string) {
	t.Helper()
	pos := map[string]int{}
	for i, p := range ordered {
		pos[moduleName(p)] = i
	}
	tree, err := loadTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ordered {
		info, err := readModinfo(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range strings.Split(info["depends"], ",") {
			if d == "" {
				continue
			}
			d = moduleName(d)
			j, ok := pos[d]
			_, isBuiltin := tree.builtin[d]
			switch {
			case !ok && !isBuiltin:
				t.Errorf("%s depends on %s, which is not in the list", p, d)
			case ok && j > i:
				t.Errorf("%s (position %d) comes before its dependency %s (position %d)", p, i, d, j)
			}
		}
	}
}

func modNames(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, moduleName(path.Base(p)))
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
