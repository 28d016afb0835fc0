package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/diskclone"
	"github.com/bangerdev/banger/internal/host/store"
)

// olderAgent is the banger-agent build an older banger's VM records: not
// this daemon's, so a start installs the current one at boot.
const olderAgent = "e2e-older"

// makeOlderLayout turns the stopped VM v into what a banger from before the
// shared base left on disk: its own full copy of the image's rootfs as
// rootfs.ext4 (mode 0600, as the clone of a non-base rootfs was), no upper
// disk, and a spec without root_layout recorded by an older agent build.
// The spec is rewritten through the store package itself, with the daemon
// stopped, the way the record sits in an older banger's database.
func makeOlderLayout(t *testing.T, e *env, v api.VM, rootfs string) {
	t.Helper()
	var st api.DaemonStatus
	if err := json.Unmarshal([]byte(e.must("daemon", "status", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	e.must("daemon", "stop")

	if _, err := os.Stat(filepath.Join(v.Dir, "upper.ext4")); err != nil {
		t.Fatalf("vm %s was not made on the shared base (no upper disk): %v", v.Name, err)
	}
	if err := os.Remove(filepath.Join(v.Dir, "upper.ext4")); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(v.Dir, "rootfs.ext4")
	if _, err := diskclone.Clone(own, rootfs); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(own, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	s, err := store.Open(ctx, st.StorePath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec, err := s.GetVM(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal([]byte(rec.Spec), &spec); err != nil {
		t.Fatalf("vm %s spec %s: %v", v.Name, rec.Spec, err)
	}
	if string(spec["root_layout"]) != `"overlay"` {
		t.Fatalf("vm %s spec %s: want root_layout overlay before the rewrite", v.Name, rec.Spec)
	}
	delete(spec, "root_layout")
	spec["agent_version"] = json.RawMessage(strconv.Quote(olderAgent))
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Spec = string(b)
	if err := s.UpdateVM(ctx, rec); err != nil {
		t.Fatal(err)
	}
}

// qemuOpens is the set of files the VM's hypervisor process holds open.
func qemuOpens(t *testing.T, pid int) map[string]bool {
	t.Helper()
	fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatalf("reading the hypervisor's open files: %v", err)
	}
	open := map[string]bool{}
	for _, e := range entries {
		if l, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil {
			open[l] = true
		}
	}
	return open
}

// rootMount is the guest's / as findmnt reports it: source, type and
// options.
func rootMount(t *testing.T, e *env, vm string) (source, fstype, options string) {
	t.Helper()
	f := strings.Fields(e.must("vm", "exec", vm, "--", "findmnt", "-no", "SOURCE,FSTYPE,OPTIONS", "/").stdout)
	if len(f) != 3 {
		t.Fatalf("%s: findmnt / printed %q", vm, f)
	}
	return f[0], f[1], f[2]
}

// procMountsRoot is the type of the file system mounted on / as the
// guest's /proc/mounts lists it: the last mount on / is the one in effect.
func procMountsRoot(mounts string) string {
	root := ""
	for _, line := range strings.Split(mounts, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "/" {
			root = f[2]
		}
	}
	return root
}

// imageNames lists the images `image ls` shows.
func imageNames(t *testing.T, e *env) []string {
	t.Helper()
	var l api.ImageList
	if err := json.Unmarshal([]byte(e.must("image", "ls", "--json").stdout), &l); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range l.Images {
		names = append(names, img.Name)
	}
	return names
}

// presentFiles is which of the paths exist.
func presentFiles(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// TestOlderLayoutVMAndForcedImageRemoval is the upgrade and the forced
// removal, end to end under real QEMU. A VM left by an older banger (its
// own full rootfs copy, no root layout in its spec) boots under today's
// daemon from an image that is now a shared base: / is its own vda,
// read-write, not an overlay; its hypervisor never opens the base; what it
// writes lands in its copy and survives stop/start. Then `image rm --force`
// while that VM and an overlay VM use the image: the image leaves
// `image ls` and no new VM can use it, but its files stay, both VMs start
// again (the overlay one on the kept base), the files outlive the first VM's
// delete and go with the last one's; the base's bytes never change and
// verify finds nothing leaked.
func TestOlderLayoutVMAndForcedImageRemoval(t *testing.T) {
	e := vmEnv(t)

	// The first create makes the bootstrapped image a shared base.
	e.must("vm", "create", "--name", "legacy", "--memory", "1GiB", "--disk", "2GiB")
	img := imageShow(t, e, "base")
	rootfs := artifact(t, img, "rootfs")
	artifact(t, img, "upper-seed") // a shared base
	artifacts := []string{}
	for _, a := range img.Artifacts {
		artifacts = append(artifacts, a.Path)
	}
	if got := presentFiles(artifacts); len(got) != len(artifacts) {
		t.Fatalf("image files present %v, recorded %+v", got, img.Artifacts)
	}
	base := fileSHA256(t, rootfs)

	// The upgrade: legacy becomes an older banger's VM, offline.
	e.must("vm", "stop", "legacy")
	makeOlderLayout(t, e, vmShow(t, e, "legacy"), rootfs)
	r := e.must("vm", "start", "legacy")
	if !strings.Contains(r.stderr, olderAgent) || !strings.Contains(r.stderr, "installed at boot") {
		t.Errorf("starting the older VM did not report its agent update from %s:\n%s", olderAgent, r.stderr)
	}
	legacy := vmShow(t, e, "legacy")
	own := filepath.Join(legacy.Dir, "rootfs.ext4")
	checkOlderRoot := func(when string) {
		t.Helper()
		if src, fs, opts := rootMount(t, e, "legacy"); src != "/dev/vda" || fs != "ext4" || !strings.HasPrefix(opts, "rw") {
			t.Errorf("%s: legacy's / is %s %s %s, want its own /dev/vda, ext4, read-write", when, src, fs, opts)
		}
		if m := e.must("vm", "exec", "legacy", "--", "cat", "/proc/mounts").stdout; procMountsRoot(m) != "ext4" || strings.Contains(m, "overlay") {
			t.Errorf("%s: legacy's /proc/mounts shows / as %q, want ext4 and no overlay anywhere:\n%s", when, procMountsRoot(m), m)
		}
		open := qemuOpens(t, vmShow(t, e, "legacy").PID)
		if !open[own] || open[rootfs] {
			t.Errorf("%s: legacy's qemu opens its copy %v and the shared base %v; want only its copy", when, open[own], open[rootfs])
		}
	}
	checkOlderRoot("after the upgrade")
	if _, err := os.Stat(filepath.Join(legacy.Dir, "upper.ext4")); !os.IsNotExist(err) {
		t.Errorf("starting the older VM made it an upper disk (%v)", err)
	}
	e.must("vm", "exec", "legacy", "--", "sh", "-c", "echo from-legacy > /etc/banger-e2e-legacy && sync")

	// An overlay VM beside it, so that both layouts use the image.
	e.must("vm", "create", "--name", "fresh", "--memory", "1GiB", "--disk", "2GiB")
	if _, fs, _ := rootMount(t, e, "fresh"); fs != "overlay" {
		t.Errorf("fresh's / is %s, want overlay", fs)
	}
	if r := e.runWith(e.extra, "vm", "exec", "fresh", "--", "test", "!", "-e", "/etc/banger-e2e-legacy"); r.code != 0 {
		t.Errorf("fresh sees legacy's /etc file (exit %d) %s", r.code, r.stderr)
	}

	r = e.runWith(e.extra, "image", "rm", "base")
	if r.code == 0 || !strings.Contains(r.stderr, "legacy") || !strings.Contains(r.stderr, "fresh") {
		t.Errorf("image rm without --force: exit %d, want a refusal naming legacy and fresh:\n%s", r.code, r.stderr)
	}
	e.must("image", "rm", "base", "--force")
	for _, n := range imageNames(t, e) {
		if n == "base" {
			t.Errorf("image ls still lists base after rm --force")
		}
	}
	if got := presentFiles(artifacts); len(got) != len(artifacts) {
		t.Errorf("after rm --force with VMs using the image only %v of %v remain", got, artifacts)
	}
	if r := e.runWith(e.extra, "vm", "create", "--name", "late", "--image", "base", "--memory", "1GiB", "--disk", "2GiB"); r.code == 0 || !strings.Contains(r.stderr, "was removed") {
		t.Errorf("create from a force-removed image: exit %d, want a refusal saying it was removed:\n%s", r.code, r.stderr)
	}
	if l := e.must("vm", "list", "--json").stdout; strings.Contains(l, `"late"`) {
		t.Errorf("the refused create left a VM: %s", l)
	}

	// Both still start from the kept files.
	e.must("vm", "stop", "legacy")
	if out, err := exec.Command("debugfs", "-R", "cat /etc/banger-e2e-legacy", own).Output(); err != nil || strings.TrimSpace(string(out)) != "from-legacy" {
		t.Errorf("legacy's write is not in its own rootfs.ext4: %q %v", out, err)
	}
	e.must("vm", "start", "legacy")
	if out := e.must("vm", "exec", "legacy", "--", "cat", "/etc/banger-e2e-legacy").stdout; strings.TrimSpace(out) != "from-legacy" {
		t.Errorf("after stop/start legacy's /etc file reads %q", out)
	}
	checkOlderRoot("after rm --force and stop/start")
	e.must("vm", "stop", "fresh")
	e.must("vm", "start", "fresh")
	if _, fs, _ := rootMount(t, e, "fresh"); fs != "overlay" {
		t.Errorf("after rm --force and stop/start fresh's / is %s, want overlay", fs)
	}
	if open := qemuOpens(t, vmShow(t, e, "fresh").PID); !open[rootfs] {
		t.Errorf("fresh's qemu does not open the kept base %s", rootfs)
	}
	if got := fileSHA256(t, rootfs); got != base {
		t.Errorf("the shared base changed: sha256 %s before, %s after", base, got)
	}

	// The files go with the last VM that uses them.
	e.must("vm", "delete", "legacy")
	if got := presentFiles(artifacts); len(got) != len(artifacts) {
		t.Errorf("after deleting legacy, with fresh still using the image, only %v of %v remain", got, artifacts)
	}
	e.must("vm", "delete", "fresh")
	if got := presentFiles(append(artifacts, filepath.Dir(rootfs))); len(got) != 0 {
		t.Errorf("after the last VM's delete these image files remain: %v", got)
	}
	for _, n := range imageNames(t, e) {
		if n == "base" {
			t.Errorf("image ls lists base again after its last VM went")
		}
	}
	verifyClean(t, e)
}
