package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/image"
)

// addSharedBase adds image "shared" to the fixture's catalog: like "base",
// with an upper-seed, so VMs made from it boot its rootfs read-only under
// an overlay.
func (f *fixture) addSharedBase(t *testing.T) image.Image {
	t.Helper()
	ctx := context.Background()
	cat := f.m.Images
	tools := f.m.Tools
	img, err := cat.Create(ctx, image.Spec{Name: "shared", Fill: func(ctx context.Context, s *image.Staging, m *image.Manifest) error {
		for _, k := range []image.Kind{image.Vmlinux, image.Vmlinuz, image.Initrd} {
			os.WriteFile(s.Path(k), []byte(k), 0o600)
		}
		tree := filepath.Join(f.root, "shared-tree")
		os.MkdirAll(filepath.Join(tree, "root"), 0o700)
		os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
		os.WriteFile(filepath.Join(tree, "etc", "hostname"), []byte("guest\n"), 0o644)
		if err := tools.MakeFromDir(ctx, s.Path(image.Rootfs), tree, "root", 256<<20); err != nil {
			return err
		}
		m.Kernel = api.KernelInfo{Release: "6.1.0-test", QEMU: true}
		if err := tools.MakeFromDir(ctx, s.Path(image.WorkSeed), filepath.Join(tree, "root"), image.WorkSeedLabel, 64<<20); err != nil {
			return err
		}
		return cat.MakeUpperSeed(ctx, s.Path(image.UpperSeed))
	}}, &progress{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// allocated is how many bytes of the file are backed by blocks.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// A VM of a shared base copies nothing of the rootfs: it boots the
// image's rootfs read-only as vda, its work disk as vdb and its upper disk
// as vdc, with banger.rootfs=overlay; its own files take at most 10 MiB
// however large --disk is; stop and start keep the layout.
func TestCreateOnASharedBase(t *testing.T) {
	f := newFixture(t)
	img := f.addSharedBase(t)
	ctx := context.Background()
	p := &progress{}
	r := req("thin")
	r.Image, r.DiskBytes = "shared", 20<<30
	v, err := f.m.Create(ctx, r, p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(p.stages, ","), "clone rootfs") || !strings.Contains(strings.Join(p.stages, ","), "upper disk") {
		t.Errorf("stages = %v, want an upper disk and no rootfs clone", p.stages)
	}
	dir := f.m.Dir(v.ID)
	wantDisks := []hypervisor.Disk{
		{ID: "root", Path: img.Path(image.Rootfs), ReadOnly: true},
		{ID: "work", Path: filepath.Join(dir, "work.ext4")},
		{ID: "upper", Path: filepath.Join(dir, "upper.ext4")},
	}
	check := func(when string, spec hypervisor.Spec) {
		t.Helper()
		if len(spec.Disks) != len(wantDisks) {
			t.Fatalf("%s: disks = %+v", when, spec.Disks)
		}
		for i, d := range wantDisks {
			if spec.Disks[i] != d {
				t.Errorf("%s: disk %d = %+v, want %+v", when, i, spec.Disks[i], d)
			}
		}
		if !strings.Contains(spec.Boot.Cmdline, " banger.rootfs=overlay") || !strings.Contains(spec.Boot.Cmdline, "root=/dev/vda") {
			t.Errorf("%s: cmdline %q lacks the overlay root", when, spec.Boot.Cmdline)
		}
	}
	check("create", f.hv.Launched()[0])
	got, _ := f.m.Get(ctx, "thin")
	if got.Spec.RootLayout != RootOverlay {
		t.Errorf("spec root layout = %q", got.Spec.RootLayout)
	}
	if _, err := os.Stat(filepath.Join(dir, "rootfs.ext4")); !os.IsNotExist(err) {
		t.Errorf("a VM of a shared base has its own rootfs copy (%v)", err)
	}
	entries, _ := os.ReadDir(dir)
	var used int64
	for _, e := range entries {
		used += allocated(t, filepath.Join(dir, e.Name()))
	}
	if used > 10<<20 {
		t.Errorf("the VM's files take %d bytes on disk beyond the base, want at most 10 MiB", used)
	}
	t.Logf("a fresh VM with --disk 20GiB takes %.1f MiB beyond the shared base", float64(used)/(1<<20))
	if got := f.m.DiskFiles(v.ID); len(got) != 2 || got[0].Path != wantDisks[2].Path || got[1].Path != wantDisks[1].Path ||
		got[0].Name != "rootfs" || got[1].Name != "work" {
		t.Errorf("disk files = %+v, want the upper disk as rootfs and the work disk", got)
	}

	if _, err := f.m.Stop(ctx, "thin"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Start(ctx, "thin", &progress{}); err != nil {
		t.Fatal(err)
	}
	launched := f.hv.Launched()
	check("start", launched[len(launched)-1])
}

// A VM made by an older banger (its own rootfs copy, no root layout in its
// spec) keeps booting its copy read-write, without the overlay flag, from
// an image that is now a shared base.
func TestOldLayoutVMBootsItsOwnRootfs(t *testing.T) {
	f := newFixture(t)
	img := f.addSharedBase(t)
	ctx := context.Background()
	r := req("old")
	r.Image = "shared"
	v, err := f.m.Create(ctx, r, &progress{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Stop(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	// Make it the record an older banger left: no root layout in its spec,
	// its own copy of the rootfs in its directory, no upper disk.
	old, _ := f.m.Get(ctx, "old")
	old.Spec.RootLayout = ""
	if err := f.m.save(ctx, &old); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(img.Path(image.Rootfs))
	os.WriteFile(filepath.Join(f.m.Dir(v.ID), "rootfs.ext4"), b, 0o600)
	os.Remove(filepath.Join(f.m.Dir(v.ID), "upper.ext4"))
	if _, err := f.m.Start(ctx, "old", &progress{}); err != nil {
		t.Fatal(err)
	}
	launched := f.hv.Launched()
	spec := launched[len(launched)-1]
	dir := f.m.Dir(v.ID)
	want := []hypervisor.Disk{{ID: "root", Path: filepath.Join(dir, "rootfs.ext4")}, {ID: "work", Path: filepath.Join(dir, "work.ext4")}}
	if len(spec.Disks) != 2 || spec.Disks[0] != want[0] || spec.Disks[1] != want[1] {
		t.Errorf("old-layout disks = %+v, want %+v", spec.Disks, want)
	}
	if strings.Contains(spec.Boot.Cmdline, "banger.rootfs") {
		t.Errorf("old-layout cmdline %q has the overlay flag", spec.Boot.Cmdline)
	}
	got, _ := f.m.Get(ctx, "old")
	if got.Spec.RootLayout != "" {
		t.Errorf("old VM's layout became %q", got.Spec.RootLayout)
	}
}

// A VM of a shared base may come to fill its upper and work disks: the
// promise a create checks is twice its disk size, whatever the rootfs's.
func TestCreateSpaceOnASharedBase(t *testing.T) {
	f := newFixture(t)
	shared := f.addSharedBase(t)
	base, err := f.m.Images.Get(context.Background(), "base")
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(base.Path(image.Rootfs))
	for _, tc := range []struct {
		img  image.Image
		want int64
	}{
		{shared, 2 * (20 << 30)},
		{base, fi.Size() + 20<<30},
	} {
		if got, err := createSpace(tc.img, 20<<30); err != nil || got != tc.want {
			t.Errorf("createSpace(%s) = %d, %v; want %d", tc.img.Name, got, err, tc.want)
		}
	}
}
