package image

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/ext4img"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fakeStager stands in for kernelstage: it writes recognisable files and
// records what it was asked.
type fakeStager struct{ staged, extracted []string }

func (f *fakeStager) Stage(_ context.Context, kernel, modules, _, out string) (api.KernelInfo, error) {
	f.staged = append(f.staged, kernel)
	for name, body := range map[string]string{"vmlinux": "\x7fELF-fake", "vmlinuz": "bz-fake", "initrd.img": "070701-fake"} {
		if err := os.WriteFile(filepath.Join(out, name), []byte(body), 0o600); err != nil {
			return api.KernelInfo{}, err
		}
	}
	return api.KernelInfo{Release: filepath.Base(modules), Modules: []string{"kernel/virtio_blk.ko"}, QEMU: true}, nil
}

func (f *fakeStager) ExtractVmlinux(bz, dst string) (string, error) {
	f.extracted = append(f.extracted, bz)
	return "gzip", os.WriteFile(dst, []byte("\x7fELF-extracted"), 0o600)
}

// progressLog records stages.
type progressLog struct{ stages []string }

func (p *progressLog) Stage(n string)        { p.stages = append(p.stages, n) }
func (p *progressLog) Detail(string, ...any) {}
func (p *progressLog) Logf(string, ...any)   {}

type fixture struct {
	cat     *Catalog
	stager  *fakeStager
	dir     string
	bz      string // a bzImage-shaped kernel
	elf     string // an x86-64 ELF
	modules string
	rootfs  string
	initrd  string
}

func needE2fs(t *testing.T) {
	for _, b := range []string{"mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (apt-get install e2fsprogs)", b)
		}
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	needE2fs(t)
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	agent := filepath.Join(dir, "banger-agent")
	os.WriteFile(agent, []byte("#!/bin/sh\necho '{\"version\":\"t\",\"build_id\":\"agent1\"}'\n"), 0o755)
	f := &fixture{dir: dir, stager: &fakeStager{}}
	f.cat = &Catalog{
		Root: filepath.Join(dir, "images"), Store: st, Tools: ext4img.New(), AgentBin: agent,
		Kernels: f.stager, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AgentFiles: func(bin string) ([]ext4img.File, error) {
			b, err := os.ReadFile(bin)
			if err != nil {
				return nil, err
			}
			content := "agent"
			if strings.Contains(string(b), "agent2") {
				content = "agent v2"
			}
			return []ext4img.File{{Path: "/usr/local/lib/banger/banger-agent", Mode: 0o755, Content: []byte(content)}}, nil
		},
	}
	// A bzImage-shaped file: boot flag 0xAA55 at 0x1fe, "HdrS" at 0x202.
	bz := make([]byte, 0x400)
	bz[0x1fe], bz[0x1ff] = 0x55, 0xaa
	copy(bz[0x202:], "HdrS")
	f.bz = filepath.Join(dir, "vmlinuz")
	os.WriteFile(f.bz, bz, 0o644)
	f.elf, _ = os.Executable()
	f.modules = filepath.Join(dir, "lib", "modules", "6.1.0-test")
	os.MkdirAll(filepath.Join(f.modules, "kernel"), 0o755)
	os.WriteFile(filepath.Join(f.modules, "kernel", "virtio_blk.ko"), []byte("ko"), 0o644)
	f.initrd = filepath.Join(dir, "initrd.img")
	os.WriteFile(f.initrd, []byte("070701 a cpio archive"), 0o644)

	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "root", ".ssh"), 0o700)
	os.WriteFile(filepath.Join(tree, "root", ".ssh", "authorized_keys"), []byte("ssh-ed25519 AAAA k\n"), 0o600)
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc", "hostname"), []byte("guest\n"), 0o644)
	f.rootfs = filepath.Join(dir, "rootfs.ext4")
	if err := f.cat.Tools.MakeFromDir(context.Background(), f.rootfs, tree, "root", 96<<20); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) request(name string) api.RegisterImageRequest {
	return api.RegisterImageRequest{Name: name, Kernel: f.bz, Modules: f.modules, Rootfs: f.rootfs}
}

func TestRegisterValidationErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.cat.Register(ctx, f.request("taken"), &progressLog{}); err != nil {
		t.Fatal(err)
	}
	notExt4 := filepath.Join(f.dir, "zeros.img")
	os.WriteFile(notExt4, make([]byte, 1<<20), 0o644)
	text := filepath.Join(f.dir, "notes.txt")
	os.WriteFile(text, []byte("hello"), 0o644)
	small := filepath.Join(f.dir, "small.ext4")
	f.cat.Tools.MakeFromDir(ctx, small, t.TempDir(), "", 4<<20)

	mod := func(m func(*api.RegisterImageRequest)) api.RegisterImageRequest {
		r := f.request("fresh")
		m(&r)
		return r
	}
	cases := []struct {
		name string
		req  api.RegisterImageRequest
	}{
		{"bad name", mod(func(r *api.RegisterImageRequest) { r.Name = "My_Image" })},
		{"name taken", mod(func(r *api.RegisterImageRequest) { r.Name = "taken" })},
		{"missing kernel", mod(func(r *api.RegisterImageRequest) { r.Kernel = "/nonexistent/vmlinuz" })},
		{"relative kernel", mod(func(r *api.RegisterImageRequest) { r.Kernel = "vmlinuz" })},
		{"kernel is text", mod(func(r *api.RegisterImageRequest) { r.Kernel = text })},
		{"kernel is a dir", mod(func(r *api.RegisterImageRequest) { r.Kernel = f.dir })},
		{"initrd is text", mod(func(r *api.RegisterImageRequest) { r.Initrd = text })},
		{"modules is a file", mod(func(r *api.RegisterImageRequest) { r.Modules = text })},
		{"modules parent dir", mod(func(r *api.RegisterImageRequest) { r.Modules = filepath.Dir(f.modules) })},
		{"neither modules nor initrd", mod(func(r *api.RegisterImageRequest) { r.Modules = "" })},
		{"rootfs missing", mod(func(r *api.RegisterImageRequest) { r.Rootfs = "" })},
		{"rootfs not ext4", mod(func(r *api.RegisterImageRequest) { r.Rootfs = notExt4 })},
		{"rootfs too small", mod(func(r *api.RegisterImageRequest) { r.Rootfs = small })},
		{"work-seed not ext4", mod(func(r *api.RegisterImageRequest) { r.WorkSeed = text })},
		{"kernel missing", mod(func(r *api.RegisterImageRequest) { r.Kernel = "" })},
		{"relative modules", mod(func(r *api.RegisterImageRequest) { r.Modules = "lib/modules/6.1" })},
		{"missing modules", mod(func(r *api.RegisterImageRequest) { r.Modules = "/nonexistent/lib/modules/6.1" })},
		{"empty name", mod(func(r *api.RegisterImageRequest) { r.Name = "" })},
	}
	var golden strings.Builder
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := listTree(f.cat.Root)
			_, err := f.cat.Register(ctx, tc.req, &progressLog{})
			if err == nil {
				t.Fatal("register succeeded")
			}
			var ae *api.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an *api.Error", err)
			}
			msg := strings.ReplaceAll(err.Error(), f.dir, "$DIR")
			fmt.Fprintf(&golden, "%s: [%s] field=%s allowed=%q\n\t%s\n", tc.name, ae.Code, ae.Field, ae.Allowed, msg)
			if ae.Field == "" || ae.Allowed == "" {
				t.Errorf("%q names no field or what it accepts: field=%q allowed=%q", msg, ae.Field, ae.Allowed)
			}
			if strings.Contains(msg, "--") {
				t.Errorf("%q names a CLI flag; name the request field instead", msg)
			}
			if diff := cmp.Diff(before, listTree(f.cat.Root)); diff != "" {
				t.Errorf("register wrote files on bad input:\n%s", diff)
			}
		})
	}
	goldenFile(t, "register-errors.golden", golden.String())
	imgs, _ := f.cat.List(ctx)
	if len(imgs) != 1 {
		t.Errorf("%d images after bad registrations, want 1", len(imgs))
	}
}

func listTree(dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestRegisterCopiesAndCompletesTheBootSet(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := &progressLog{}
	img, err := f.cat.Register(ctx, f.request("base"), p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"kernel", "rootfs", "agent", "work-seed", "fingerprint", "register"}, p.stages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	for _, k := range Kinds {
		if k == UpperSeed {
			continue // the first Repair makes it (TestSharedBaseIsNeverWritten)
		}
		a, ok := img.Artifacts[k]
		if !ok {
			t.Errorf("missing artifact %s", k)
			continue
		}
		if !f.cat.Managed(img.ID, a.Path) || a.SHA256 == "" || a.Size == 0 {
			t.Errorf("artifact %+v not managed/digested", a)
		}
		if sum, _, _ := Digest(a.Path); sum != a.SHA256 {
			t.Errorf("%s digest mismatch", k)
		}
	}
	if img.Manifest.Kernel.Release != "6.1.0-test" || img.Manifest.AgentVersion != "t+agent1" || img.Manifest.InitrdAgent != "t+agent1" {
		t.Errorf("manifest = %+v", img.Manifest)
	}
	// The agent went into the copied rootfs, not the user's.
	if b, err := f.cat.Tools.ReadFile(ctx, img.Path(Rootfs), "/usr/local/lib/banger/banger-agent"); err != nil || string(b) != "agent" {
		t.Errorf("agent in managed rootfs: %q %v", b, err)
	}
	if ok, _ := f.cat.Tools.Exists(ctx, f.rootfs, "/usr/local/lib/banger/banger-agent"); ok {
		t.Error("register modified the user's rootfs")
	}
	// The work-seed holds the rootfs's /root.
	if b, err := f.cat.Tools.ReadFile(ctx, img.Path(WorkSeed), "/.ssh/authorized_keys"); err != nil || !strings.Contains(string(b), "ssh-ed25519") {
		t.Errorf("work-seed authorized_keys: %q %v", b, err)
	}
	if sb, _ := ext4img.ReadSuperblock(img.Path(WorkSeed)); sb.Label != WorkSeedLabel {
		t.Errorf("work-seed label %q", sb.Label)
	}
	if _, err := os.Stat(filepath.Join(f.cat.Dir(img.ID), "manifest.json")); err != nil {
		t.Error(err)
	}
	if problems := f.cat.Verify(img, true); len(problems) != 0 {
		t.Errorf("fresh image has problems: %+v", problems)
	}
	got, err := f.cat.Get(ctx, "base")
	if err != nil || got.Fingerprint != img.Fingerprint {
		t.Errorf("reloaded: %+v %v", got, err)
	}
}

func TestFingerprintStableAndSensitive(t *testing.T) {
	base := Image{Manifest: Manifest{AgentVersion: "a1", Kernel: api.KernelInfo{Release: "r"}, Provisioning: []string{"debootstrap"}},
		Artifacts: map[Kind]Artifact{Rootfs: {SHA256: "aa", Size: 1}, Vmlinux: {SHA256: "bb", Size: 2}}}
	fp := Fingerprint(base)
	if fp != Fingerprint(base) {
		t.Fatal("fingerprint not stable")
	}
	changes := map[string]func(*Image){
		"artifact digest": func(i *Image) { i.Artifacts[Rootfs] = Artifact{SHA256: "ab", Size: 1} },
		"artifact size":   func(i *Image) { i.Artifacts[Rootfs] = Artifact{SHA256: "aa", Size: 9} },
		"new artifact":    func(i *Image) { i.Artifacts[WorkSeed] = Artifact{SHA256: "cc", Size: 3} },
		"agent version":   func(i *Image) { i.Manifest.AgentVersion = "a2" },
		"provisioning":    func(i *Image) { i.Manifest.Provisioning = append(i.Manifest.Provisioning, "preset agents") },
		"probe":           func(i *Image) { i.Manifest.Probes = []api.Probe{{Name: "opencode", Kind: "tcp", Port: 4096}} },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			img := base
			img.Artifacts = map[Kind]Artifact{}
			for k, v := range base.Artifacts {
				img.Artifacts[k] = v
			}
			img.Manifest.Provisioning = append([]string{}, base.Manifest.Provisioning...)
			change(&img)
			if Fingerprint(img) == fp {
				t.Error("fingerprint did not change")
			}
		})
	}
	// Things that are not part of the image do not count.
	img := base
	img.Name, img.ID, img.Manifest.HealedAt = "other", "img-x", img.CreatedAt.AddDate(1, 0, 0)
	if Fingerprint(img) != fp {
		t.Error("name/id/heal time changed the fingerprint")
	}
}

func TestLinkThenPromote(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := f.request("linked")
	req.Link = true
	img, err := f.cat.Register(ctx, req, &progressLog{})
	if err != nil {
		t.Fatal(err)
	}
	if img.State != api.ImageUnmanaged || img.Path(Rootfs) != f.rootfs || img.Has(WorkSeed) {
		t.Fatalf("linked image = %+v", img)
	}
	if _, _, err := f.cat.Repair(ctx, "linked", &progressLog{}); !errors.Is(err, api.ErrFailedPrecondition) ||
		!strings.Contains(err.Error(), "banger image promote linked") {
		t.Fatalf("repair of an unmanaged image: %v", err)
	}
	if probs := f.cat.Verify(img, false); len(probs) != 1 || !strings.Contains(probs[0].Fix, "promote") {
		t.Errorf("verify = %+v", probs)
	}

	p := &progressLog{}
	got, changed, err := f.cat.Promote(ctx, "linked", p)
	if err != nil || !changed {
		t.Fatalf("promote: %v changed=%v", err, changed)
	}
	if got.State != api.ImageReady || !got.Has(WorkSeed) {
		t.Fatalf("promoted = %+v", got)
	}
	for _, a := range got.Artifacts {
		if !f.cat.Managed(got.ID, a.Path) {
			t.Errorf("%s still outside: %s", a.Kind, a.Path)
		}
	}
	if b, _ := f.cat.Tools.ReadFile(ctx, got.Path(Rootfs), "/usr/local/lib/banger/banger-agent"); string(b) != "agent" {
		t.Error("promote did not install the agent into the copied rootfs")
	}
	reloaded, _ := f.cat.Get(ctx, "linked")
	if reloaded.Fingerprint != Fingerprint(reloaded) || len(f.cat.Verify(reloaded, true)) != 0 {
		t.Errorf("after promote: fingerprint %s, problems %+v", reloaded.Fingerprint, f.cat.Verify(reloaded, true))
	}
	// Promoting again is a no-op.
	if _, changed, err := f.cat.Promote(ctx, "linked", &progressLog{}); err != nil || changed {
		t.Errorf("second promote: changed=%v err=%v", changed, err)
	}
}

// An image made by an older banger — no work-seed, fingerprint from another
// scheme — heals on first use, once.
func TestSelfHealOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	img, err := f.cat.Register(ctx, f.request("old"), &progressLog{})
	if err != nil {
		t.Fatal(err)
	}
	// Make it look old: drop the work-seed and write an old fingerprint.
	os.Remove(img.Path(WorkSeed))
	delete(img.Artifacts, WorkSeed)
	rec, _ := toRecord(img)
	rec.Fingerprint = "sha256:from-an-older-scheme"
	if err := f.cat.Store.UpdateImage(ctx, rec); err != nil {
		t.Fatal(err)
	}
	old, _ := f.cat.Get(ctx, "old")
	if probs := f.cat.Verify(old, false); len(probs) != 1 {
		t.Errorf("old image problems = %+v", probs)
	}

	healed, repaired, err := f.cat.Repair(ctx, "old", &progressLog{})
	if err != nil || !repaired {
		t.Fatalf("repair: %v repaired=%v", err, repaired)
	}
	if !healed.Has(WorkSeed) || healed.Manifest.HealedAt.IsZero() || healed.Fingerprint != Fingerprint(healed) {
		t.Fatalf("healed = %+v", healed)
	}
	if _, err := os.Stat(healed.Path(WorkSeed)); err != nil {
		t.Fatal(err)
	}
	again, repaired, err := f.cat.Repair(ctx, "old", &progressLog{})
	if err != nil || repaired || !again.Manifest.HealedAt.Equal(healed.Manifest.HealedAt) {
		t.Fatalf("second repair: repaired=%v err=%v", repaired, err)
	}

	// A damaged image is not "healed": it is reported with the fix.
	os.Truncate(again.Path(Rootfs), 1<<20)
	if _, _, err := f.cat.Repair(ctx, "old", &progressLog{}); !errors.Is(err, api.ErrFailedPrecondition) ||
		!strings.Contains(err.Error(), "damaged") {
		t.Fatalf("repair of a damaged image: %v", err)
	}
}

func TestRemoveRefusesWhileInUse(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	img, err := f.cat.Register(ctx, f.request("used"), &progressLog{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cat.Store.CreateVM(ctx, store.VM{ID: "vm1", Name: "brisk-otter", ImageID: img.ID, State: "running"}); err != nil {
		t.Fatal(err)
	}
	err = f.cat.Remove(ctx, "used", false)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeFailedPrecondition || !strings.Contains(err.Error(), "brisk-otter") ||
		ae.Field != "force" || !strings.Contains(ae.Message, "or remove it with force") {
		t.Fatalf("remove in use: %#v, want failed_precondition naming the force field", err)
	}
	if _, err := os.Stat(f.cat.Dir(img.ID)); err != nil {
		t.Fatal("refused remove deleted files")
	}
	if err := f.cat.Remove(ctx, "used", true); err != nil {
		t.Fatal(err)
	}
	// Forced while a VM uses it: no new VM can take it, but its VM still
	// boots from the files, kept as they are until that VM is gone.
	if _, err := os.Stat(f.cat.Dir(img.ID)); err != nil {
		t.Fatalf("forced remove deleted the files its VM boots from: %v", err)
	}
	if got, _, err := f.cat.Repair(ctx, "used", &progressLog{}); err != nil || got.State != "removed" {
		t.Errorf("repair of a force-removed image its VM uses: %v %v", got.State, err)
	}
	if err := f.cat.ReleaseRemoved(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.cat.Dir(img.ID)); err != nil {
		t.Fatal("released while a VM still uses it")
	}
	f.cat.Store.DeleteVM(ctx, "vm1")
	if err := f.cat.ReleaseRemoved(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.cat.Dir(img.ID)); !os.IsNotExist(err) {
		t.Error("the files outlived the image's last VM")
	}
	if _, err := f.cat.Get(ctx, img.ID); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("the removed record outlived the image's last VM: %v", err)
	}
	if _, err := f.cat.Register(ctx, f.request("gone"), &progressLog{}); err != nil {
		t.Fatal(err)
	}
	if err := f.cat.Remove(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cat.Get(ctx, "gone"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("removed image still there: %v", err)
	}
}

func TestCleanStaging(t *testing.T) {
	f := newFixture(t)
	os.MkdirAll(filepath.Join(f.cat.Root, ".staging-img-123", "x"), 0o700)
	os.MkdirAll(filepath.Join(f.cat.Root, "img-keep"), 0o700)
	removed, err := f.cat.CleanStaging()
	if err != nil || len(removed) != 1 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(f.cat.Root, "img-keep")); err != nil {
		t.Error("removed a real image dir")
	}
}

// A new banger-agent build reaches existing images on their next use: the
// rootfs gets the new binary, the initramfs is rebuilt around it, and the
// image records the new version.
func TestSelfHealUpdatesTheAgent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	img, err := f.cat.Register(ctx, f.request("aging"), &progressLog{})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.cat.AgentBin, []byte("#!/bin/sh\necho '{\"version\":\"t\",\"build_id\":\"agent2\"}'\n"), 0o755)
	staged := len(f.stager.staged)
	healed, repaired, err := f.cat.Repair(ctx, "aging", &progressLog{})
	if err != nil || !repaired {
		t.Fatalf("repair: %v %v", repaired, err)
	}
	if healed.Manifest.AgentVersion != "t+agent2" || healed.Fingerprint == img.Fingerprint {
		t.Errorf("after agent update: version %s, fingerprint changed %v", healed.Manifest.AgentVersion, healed.Fingerprint != img.Fingerprint)
	}
	if b, _ := f.cat.Tools.ReadFile(ctx, healed.Path(Rootfs), "/usr/local/lib/banger/banger-agent"); string(b) != "agent v2" {
		t.Errorf("rootfs agent = %q", b)
	}
	if len(f.stager.staged) != staged+1 {
		t.Error("the initramfs was not rebuilt")
	}
	if len(f.cat.Verify(healed, true)) != 0 {
		t.Errorf("healed image has problems: %+v", f.cat.Verify(healed, true))
	}
	if _, again, _ := f.cat.Repair(ctx, "aging", &progressLog{}); again {
		t.Error("second repair did work again")
	}
}

// The first repair makes an image a shared base (upper-seed, rootfs
// readable, initramfs rebuilt once); after that an agent update rebuilds
// the initramfs but never writes the rootfs, which VMs have open.
func TestSharedBaseIsNeverWritten(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.cat.Register(ctx, f.request("shared"), &progressLog{}); err != nil {
		t.Fatal(err)
	}
	staged := len(f.stager.staged)
	base, repaired, err := f.cat.Repair(ctx, "shared", &progressLog{})
	if err != nil || !repaired {
		t.Fatalf("repair: %v %v", repaired, err)
	}
	if !base.Has(UpperSeed) || len(f.stager.staged) != staged+1 {
		t.Fatalf("base: upper-seed %v, initramfs rebuilt %d times", base.Has(UpperSeed), len(f.stager.staged)-staged)
	}
	if sb, err := CheckExt4("upper_seed", base.Path(UpperSeed), 1<<20); err != nil || sb.Label != UpperSeedLabel {
		t.Errorf("upper-seed label %q (%v)", sb.Label, err)
	}
	fi, err := os.Stat(base.Path(Rootfs))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("base rootfs mode %v (%v), want 0644", fi.Mode().Perm(), err)
	}
	before, _, _ := Digest(base.Path(Rootfs))

	os.WriteFile(f.cat.AgentBin, []byte("#!/bin/sh\necho '{\"version\":\"t\",\"build_id\":\"agent2\"}'\n"), 0o755)
	healed, repaired, err := f.cat.Repair(ctx, "shared", &progressLog{})
	if err != nil || !repaired || healed.Manifest.AgentVersion != "t+agent2" {
		t.Fatalf("agent update: %v %v %s", repaired, err, healed.Manifest.AgentVersion)
	}
	if after, _, _ := Digest(healed.Path(Rootfs)); after != before {
		t.Error("an agent update wrote the shared base's rootfs")
	}
	if b, _ := f.cat.Tools.ReadFile(ctx, healed.Path(Rootfs), "/usr/local/lib/banger/banger-agent"); string(b) != "agent" {
		t.Errorf("base rootfs agent = %q, want the first build's", b)
	}
	if len(f.stager.staged) != staged+2 || healed.Manifest.InitrdAgent != "t+agent2" {
		t.Errorf("the initramfs was not rebuilt for the new agent (initrd agent %q)", healed.Manifest.InitrdAgent)
	}
	if probs := f.cat.Verify(healed, true); len(probs) != 0 {
		t.Errorf("problems: %+v", probs)
	}
}

// TestSmallBlockSeedsAreRemade: seeds made by a banger that grew them on
// the host have 1 KiB blocks (mkfs's profile for small file systems);
// heal remakes them once with ext4img.SeedBlockSize, and never touches
// the shared base.
func TestSmallBlockSeedsAreRemade(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.cat.Register(ctx, f.request("seeds"), &progressLog{}); err != nil {
		t.Fatal(err)
	}
	img, _, err := f.cat.Repair(ctx, "seeds", &progressLog{})
	if err != nil || !img.Has(UpperSeed) {
		t.Fatalf("repair: %v, upper-seed %v", err, img.Has(UpperSeed))
	}
	for _, k := range []Kind{WorkSeed, UpperSeed} {
		if sb, err := ext4img.ReadSuperblock(img.Path(k)); err != nil || sb.BlockSize != ext4img.SeedBlockSize {
			t.Fatalf("%s: block size %d (%v), want %d", k, sb.BlockSize, err, ext4img.SeedBlockSize)
		}
	}
	before, _, _ := Digest(img.Path(Rootfs))
	// Make both seeds as an older banger did, and record them.
	for _, k := range []Kind{WorkSeed, UpperSeed} {
		p := img.Path(k)
		os.Remove(p)
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", p, "64M").CombinedOutput(); err != nil {
			t.Fatalf("mkfs: %v %s", err, out)
		}
		if err := f.cat.redigest(&img, k, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.cat.save(ctx, img); err != nil {
		t.Fatal(err)
	}
	img.Fingerprint = Fingerprint(img)
	rec, _ := toRecord(img)
	if err := f.cat.Store.UpdateImage(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if sb, _ := ext4img.ReadSuperblock(img.Path(WorkSeed)); sb.BlockSize != 1024 {
		t.Fatalf("setup: the old seed has %d-byte blocks, want mkfs's 1024 for 64M", sb.BlockSize)
	}

	healed, repaired, err := f.cat.Repair(ctx, "seeds", &progressLog{})
	if err != nil || !repaired {
		t.Fatalf("repair of old seeds: repaired=%v err=%v", repaired, err)
	}
	for _, k := range []Kind{WorkSeed, UpperSeed} {
		if sb, err := ext4img.ReadSuperblock(healed.Path(k)); err != nil || sb.BlockSize != ext4img.SeedBlockSize {
			t.Errorf("healed %s: block size %d (%v), want %d", k, sb.BlockSize, err, ext4img.SeedBlockSize)
		}
	}
	if after, _, _ := Digest(healed.Path(Rootfs)); after != before {
		t.Error("remaking the seeds wrote the shared base")
	}
	if probs := f.cat.Verify(healed, true); len(probs) != 0 {
		t.Errorf("problems: %+v", probs)
	}
	if _, repaired, err := f.cat.Repair(ctx, "seeds", &progressLog{}); err != nil || repaired {
		t.Errorf("a third repair: repaired=%v err=%v, want nothing to do", repaired, err)
	}
}

// TestAgentBuildAsksOncePerBinary: the agent's version is asked of the
// binary once, and again only when the file changes.
func TestAgentBuildAsksOncePerBinary(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	agent := filepath.Join(dir, "banger-agent")
	write := func(build string) {
		script := "#!/bin/sh\necho run >> " + runs + "\necho '{\"version\":\"t\",\"build_id\":\"" + build + "\"}'\n"
		if err := os.WriteFile(agent+".new", []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(agent+".new", agent); err != nil { // a new inode, as an install makes
			t.Fatal(err)
		}
	}
	count := func() int { b, _ := os.ReadFile(runs); return strings.Count(string(b), "run") }
	c := &Catalog{AgentBin: agent}
	ctx := context.Background()
	write("one")
	for range 3 {
		if v, err := c.AgentBuild(ctx); err != nil || v != "t+one" {
			t.Fatalf("AgentBuild = %q, %v", v, err)
		}
	}
	if n := count(); n != 1 {
		t.Errorf("the agent ran %d times for three asks, want 1", n)
	}
	write("two")
	if v, err := c.AgentBuild(ctx); err != nil || v != "t+two" {
		t.Fatalf("after a reinstall AgentBuild = %q, %v, want t+two", v, err)
	}
	if n := count(); n != 2 {
		t.Errorf("the agent ran %d times in all, want 2", n)
	}
}

// TestRegisteredInitramfsIsKept: an image registered with the user's own
// initramfs (and modules) keeps it: heal never rebuilds it, so the image
// does not become a shared base and its VMs copy the rootfs.
func TestRegisteredInitramfsIsKept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := f.request("own-initrd")
	req.Initrd = f.initrd
	img, err := f.cat.Register(ctx, req, &progressLog{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Manifest.InitrdAgent != "" {
		t.Errorf("the user's initramfs is recorded as carrying agent %q", img.Manifest.InitrdAgent)
	}
	before := img.Artifacts[Initrd].SHA256
	staged := len(f.stager.staged)
	// A new agent: an image banger staged would have its initramfs rebuilt.
	os.WriteFile(f.cat.AgentBin, []byte("#!/bin/sh\necho '{\"version\":\"t\",\"build_id\":\"agent9\"}'\n"), 0o755)
	healed, _, err := f.cat.Repair(ctx, "own-initrd", &progressLog{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.stager.staged) != staged || healed.Artifacts[Initrd].SHA256 != before {
		t.Errorf("heal rebuilt the user's initramfs (%d stagings)", len(f.stager.staged)-staged)
	}
	if healed.Has(UpperSeed) {
		t.Error("an image with the user's initramfs became a shared base (its initramfs would need the overlay module)")
	}
}
