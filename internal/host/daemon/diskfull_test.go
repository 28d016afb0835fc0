package daemon_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/loopfs"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/bangerdev/banger/internal/host/vm"
)

// The tests in this file put a fake daemon's state and data directories on
// a small loop-mounted ext4 filesystem of the test's own (loopfs) and fill
// it: each operation that writes there must fail with an error naming the
// space it needs and the fix, leave nothing half-written (the tree under
// the mount is listed before and after), and leave the store writable
// and whole (PRAGMA integrity_check) once space is freed.

// fullDaemon starts a fake daemon whose state and data directories are on
// a fresh filesystem of size bytes, and returns it with the mount point.
func fullDaemon(t *testing.T, size int64) (*daemontest.Daemon, string) {
	t.Helper()
	mnt := loopfs.Mount(t, size)
	d := daemontest.Start(t, daemontest.Options{Fake: true,
		StateDir: filepath.Join(mnt, "state"), DataDir: filepath.Join(mnt, "data")})
	return d, mnt
}

// tree lists what lies under mnt but the files that change on their own
// (the store's database, WAL and shared memory, the daemon's log) and
// loopfs's fillers. The store's reserve is listed.
func tree(t *testing.T, mnt string) []string {
	t.Helper()
	return loopfs.Tree(t, mnt, func(rel string) bool {
		base := filepath.Base(rel)
		return (strings.HasPrefix(base, "banger.db") && !strings.HasSuffix(base, ".reserve")) || base == "bangerd.log" || strings.HasPrefix(base, ".loopfs-fill-")
	})
}

// finish returns a function that follows an operation to its end (it
// takes a Begin call's results: finish(d)(d.Client.BeginStartVM(ctx,
// name))) and returns the operation's result, or its error (the
// request's or the operation's, as the API carries it).
func finish(d *daemontest.Daemon) func(api.Operation, error) (json.RawMessage, error) {
	return func(op api.Operation, err error) (json.RawMessage, error) {
		if err != nil {
			return nil, err
		}
		final, err := d.Client.WatchOperation(context.Background(), op.ID, nil)
		switch {
		case err != nil:
			return nil, err
		case final.State == api.OperationSucceeded:
			return final.Result, nil
		case final.Error != nil:
			return nil, final.Error
		}
		return nil, fmt.Errorf("%s %s ended %s without an error", op.Kind, op.ID, final.State)
	}
}

// tryCreate creates a VM and returns it, or the create's error.
func tryCreate(d *daemontest.Daemon, req api.CreateVMRequest) (api.VM, error) {
	res, err := finish(d)(d.Client.BeginCreateVM(context.Background(), req))
	if err != nil {
		return api.VM{}, err
	}
	var v api.VM
	return v, json.Unmarshal(res, &v)
}

// vmNames is the names of the daemon's VMs, sorted.
func vmNames(t *testing.T, d *daemontest.Daemon) []string {
	t.Helper()
	vms, err := d.Client.VMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vms {
		out = append(out, v.Name+":"+string(v.State))
	}
	slices.Sort(out)
	return out
}

// verifyClean asks the daemon's own judge (banger verify: strays, store
// integrity, image leftovers) and fails the test on any leak.
func verifyClean(t *testing.T, d *daemontest.Daemon, when string) {
	t.Helper()
	r, err := d.Client.Verify(context.Background())
	if err != nil {
		t.Fatalf("verify %s: %v", when, err)
	}
	for _, l := range r.Leaks {
		t.Errorf("verify %s: %+v", when, l)
	}
}

// checkIntegrity stops the daemon and runs PRAGMA integrity_check on its
// store.
func checkIntegrity(t *testing.T, d *daemontest.Daemon) {
	t.Helper()
	if err := d.Stop(); err != nil {
		t.Fatalf("daemon stop: %v", err)
	}
	st, err := store.Open(context.Background(), d.Config.Paths.DBFile())
	if err != nil {
		t.Fatalf("reopening the store: %v", err)
	}
	defer st.Close()
	var res string
	if err := st.DB().QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Errorf("PRAGMA integrity_check: %q, %v", res, err)
	}
}

// wantErr checks that err is an API error of code with every one of
// parts in its message.
func wantErr(t *testing.T, what string, err error, code *api.Error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want a %s error", what, code.Code)
	}
	if !errors.Is(err, code) {
		t.Errorf("%s: %v, want code %s", what, err, code.Code)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %q does not say %q", what, err, p)
		}
	}
	t.Logf("%s: %v", what, err)
}

// TestDiskFullVMCreate: a create whose disks could grow past the free
// space is refused before anything is written, naming what it needs
// (its disks at full size and the 1 GiB kept free) and what is free; a
// smaller create then succeeds, so the store is writable. Disks are
// sparse, so without the pre-check the create itself would succeed. A
// start is checked the same way (1 GiB free beside the VM).
func TestDiskFullVMCreate(t *testing.T) {
	d, mnt := fullDaemon(t, 9<<29) // 4.5 GiB
	vmsDir := filepath.Join(d.Config.Paths.StateDir, "vms")
	d.CreateVM(t, api.CreateVMRequest{Name: "keep"})
	if layout, err := d.LaunchedRootLayout("keep"); layout != vm.RootOverlay {
		t.Skipf("the seeded image is no shared base on this host (%q, %v): the figures below are a shared base's (upper and work disks)", layout, err)
	}

	// An image that is no shared base: its VMs copy its 32 MiB rootfs.
	d.SeedImageWith(t, "copy", daemontest.Seed{Copy: true})

	// 3.25 GiB free: a VM of 4 GiB disks (upper and work) needs 9 GiB,
	// one of 1 GiB disks 3 GiB; on the copy image a VM of 3 GiB disk
	// needs its rootfs copy, its work disk and the 1 GiB: 4.1 GiB.
	loopfs.Fill(t, mnt, 13<<28)
	before := tree(t, mnt)
	_, err := tryCreate(d, api.CreateVMRequest{Name: "big", Image: daemontest.FakeImage, DiskBytes: 4 << 30})
	wantErr(t, "create of 4GiB disks", err, api.ErrFailedPrecondition,
		"its disks can grow to 8GiB", "(9GiB in all)", vmsDir+" has 3.2GiB free", "lower disk_bytes")
	_, err = tryCreate(d, api.CreateVMRequest{Name: "copied", Image: "copy", DiskBytes: 3 << 30})
	wantErr(t, "create of a 3GiB disk copying a 32MiB rootfs", err, api.ErrFailedPrecondition,
		"its disks can grow to 3.1GiB", "(4.1GiB in all)", vmsDir+" has 3.2GiB free")
	if diff := cmp.Diff(before, tree(t, mnt)); diff != "" {
		t.Errorf("the refused creates left files behind (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"keep:running"}, vmNames(t, d)); diff != "" {
		t.Errorf("VMs after the refused creates (-want +got):\n%s", diff)
	}

	small, err := tryCreate(d, api.CreateVMRequest{Name: "small", Image: daemontest.FakeImage, DiskBytes: 1 << 30})
	if err != nil {
		t.Fatalf("a create that fits, after a refused one: %v", err)
	}
	// Its disks are sparse: 1 GiB each, next to nothing allocated. So the
	// refused create would have been made just as fast; only the check
	// of what its disks can grow to stopped it.
	for _, disk := range []string{"upper.ext4", "work.ext4"} {
		p := filepath.Join(vmsDir, small.ID, disk)
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Size != 1<<30 || st.Blocks*512 > 64<<20 {
			t.Errorf("%s: %d bytes, %d allocated; want 1GiB, sparse", p, st.Size, st.Blocks*512)
		}
	}
	if err := d.Client.DeleteVM(context.Background(), "small"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, tree(t, mnt)); diff != "" {
		t.Errorf("create and delete of small left files behind (-before +after):\n%s", diff)
	}

	// A start needs 1 GiB free beside the VM (a running guest could
	// fill its disks at once): with less, it is refused and the VM stays
	// stopped; with more, it starts.
	ctx := context.Background()
	if _, err := d.Client.StopVM(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	filler := loopfs.Fill(t, mnt, 512<<20)
	_, err = finish(d)(d.Client.BeginStartVM(ctx, "keep"))
	wantErr(t, "start with 512MiB free", err, api.ErrFailedPrecondition,
		"not enough free disk space to start this VM", "a running VM needs at least 1GiB free beside it", "free space in ")
	if diff := cmp.Diff([]string{"keep:stopped"}, vmNames(t, d)); diff != "" {
		t.Errorf("VMs after the refused start (-want +got):\n%s", diff)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := finish(d)(d.Client.BeginStartVM(ctx, "keep")); err != nil {
		t.Fatalf("start after space was freed: %v", err)
	}
	verifyClean(t, d, "at the end")
	checkIntegrity(t, d)
}

// TestDiskFullStore: SQLite needs room to write anything, a delete
// included, so the store keeps a reserve file (store.ReserveBytes): with
// the filesystem full to the last block, `vm delete` — the way to free
// space — still works, through the reserve. Once the reserve is spent
// too, a write fails with SQLITE_FULL, which the daemon reports as the
// store's filesystem being full, naming the directory to free space in,
// not as "database or disk is full (13)"; nothing half-made remains, and
// the daemon restarts on the full filesystem.
// Once space is freed the same create succeeds, the reserve is made
// again, and the store passes its integrity check.
func TestDiskFullStore(t *testing.T) {
	d, mnt := fullDaemon(t, 9<<29)
	stateDir := d.Config.Paths.StateDir
	reserve := store.ReservePath(d.Config.Paths.DBFile())
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != store.ReserveBytes {
		t.Fatalf("the store's reserve at start: %v, %v", fi, err)
	}
	d.CreateVM(t, api.CreateVMRequest{Name: "keep"})
	d.CreateVM(t, api.CreateVMRequest{Name: "keep2"})

	fillers := []string{loopfs.Fill(t, mnt, 0)}
	if err := d.Client.DeleteVM(context.Background(), "keep"); err != nil {
		t.Fatalf("delete on a full filesystem: %v", err)
	}
	if diff := cmp.Diff([]string{"keep2:running"}, vmNames(t, d)); diff != "" {
		t.Errorf("VMs after the delete (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(reserve); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the reserve after a write on a full filesystem: %v, want it spent", err)
	}

	// Full again, the reserve spent: the store cannot write.
	fillers = append(fillers, loopfs.Fill(t, mnt, 0))
	before := tree(t, mnt)
	_, err := tryCreate(d, api.CreateVMRequest{Name: "again"})
	wantErr(t, "create on a full filesystem", err, api.ErrFailedPrecondition,
		"the daemon's store cannot write", d.Config.Paths.DBFile()+" is full", "free space in "+stateDir, "nothing was changed")
	if strings.Contains(err.Error(), "(13)") {
		t.Errorf("the error still reads as SQLite's: %v", err)
	}
	err = d.Client.DeleteVM(context.Background(), "keep2")
	wantErr(t, "delete on a full filesystem without the reserve", err, api.ErrFailedPrecondition, "free space in "+stateDir)
	if diff := cmp.Diff(before, tree(t, mnt)); diff != "" {
		t.Errorf("the failed create and delete left files behind or took some (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"keep2:running"}, vmNames(t, d)); diff != "" {
		t.Errorf("VMs after the failed create and delete (-want +got):\n%s", diff)
	}
	verifyClean(t, d, "on the full filesystem")
	// The daemon starts again on the full filesystem and adopts its VM.
	d.Restart(t)
	if diff := cmp.Diff([]string{"keep2:running"}, vmNames(t, d)); diff != "" {
		t.Errorf("VMs after a restart on the full filesystem (-want +got):\n%s", diff)
	}

	for _, f := range fillers {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tryCreate(d, api.CreateVMRequest{Name: "again"}); err != nil {
		t.Fatalf("create after space was freed: %v", err)
	}
	if err := d.Client.DeleteVM(context.Background(), "keep2"); err != nil {
		t.Fatalf("delete after space was freed: %v", err)
	}
	if diff := cmp.Diff([]string{"again:running"}, vmNames(t, d)); diff != "" {
		t.Errorf("VMs at the end (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != store.ReserveBytes {
		t.Errorf("the reserve after space was freed: %v, %v, want it made again", fi, err)
	}
	verifyClean(t, d, "at the end")
	checkIntegrity(t, d)
}

// TestDiskFullImageRegister: register copies the user's rootfs into the
// catalog; when the catalog's filesystem has too little room the error
// says so, how much the image needed (at least) and where to free space
// — not a bare ENOSPC from a path in a staging directory — no staging
// directory or image record remains, and after freeing space the same
// register succeeds.
func TestDiskFullImageRegister(t *testing.T) {
	d, mnt := fullDaemon(t, 1<<30)
	ctx := context.Background()
	base, err := d.Client.Image(ctx, daemontest.FakeImage)
	if err != nil {
		t.Fatal(err)
	}
	artifact := map[string]string{}
	for _, a := range base.Artifacts {
		artifact[a.Kind] = a.Path
	}
	rootfs := bigRootfs(t, 96<<20)
	req := api.RegisterImageRequest{Name: "big", Kernel: artifact["vmlinux"], Initrd: artifact["initrd"], Rootfs: rootfs}
	if req.Kernel == "" || req.Initrd == "" {
		t.Fatalf("the seeded image has no vmlinux or initrd: %+v", base.Artifacts)
	}

	filler := loopfs.Fill(t, mnt, 48<<20)
	before := tree(t, mnt)
	_, err = finish(d)(d.Client.BeginRegisterImage(ctx, req))
	catalog := filepath.Join(d.Config.Paths.DataDir, "images")
	// Without a pre-check (image.Spec.Need unset) the copy fills the
	// disk and the error says so; with one, the register is refused
	// before the copy. Both name the image, the catalog and the fix.
	wantErr(t, "register of a 96MiB rootfs with 48MiB free", err, api.ErrFailedPrecondition,
		"image big needs ", catalog, "free space")
	if diff := cmp.Diff(before, tree(t, mnt)); diff != "" {
		t.Errorf("the failed register left files behind (-before +after):\n%s", diff)
	}
	if _, err := d.Client.Image(ctx, "big"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("image big after the failed register: %v, want not found", err)
	}
	verifyClean(t, d, "after the failed register")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := finish(d)(d.Client.BeginRegisterImage(ctx, req)); err != nil {
		t.Fatalf("register after space was freed: %v", err)
	}
	verifyClean(t, d, "at the end")
	checkIntegrity(t, d)
}

// bigRootfs makes an ext4 image holding about size bytes of random data
// (which no filesystem can leave sparse), outside the filled filesystem.
func bigRootfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "root"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(tree, "blob"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "rootfs.ext4")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", tree, img, fmt.Sprintf("%dM", size>>20+64)).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v: %s", err, out)
	}
	return img
}

// TestDiskFullImageBuild: a build grows the parent's rootfs (sparsely) by
// 1 GiB and fills it in a chroot on a loop mount, so like a VM create it
// is checked at that full size before anything is written: with less
// free it is refused, naming what it needs and what is free, and no
// staging directory, mount or record remains. With room, the build
// passes the check and gets as far as the fake image allows (its rootfs
// has no /bin/sh, so the script step fails): that failure, with the
// rootfs loop-mounted in staging, leaves nothing behind either.
func TestDiskFullImageBuild(t *testing.T) {
	d, mnt := fullDaemon(t, 5<<29) // 2.5 GiB
	ctx := context.Background()
	catalog := filepath.Join(d.Config.Paths.DataDir, "images")
	build := func() error {
		_, err := finish(d)(d.Client.BeginBuildImage(ctx, api.BuildImageRequest{From: daemontest.FakeImage, Name: "built", Script: "echo hi > /etc/built\n"}))
		return err
	}

	filler := loopfs.Fill(t, mnt, 1<<30)
	before := tree(t, mnt)
	err := build()
	wantErr(t, "build of a 2GiB rootfs with 1GiB free", err, api.ErrFailedPrecondition,
		"image built needs at least 2GiB free in "+catalog, "free space there")
	if err != nil && !regexp.MustCompile(`, and it has 10[12][0-9](\.[0-9])?MiB:`).MatchString(err.Error()) {
		t.Errorf("the refused build does not say it has (just under) 1GiB free: %v", err)
	}
	if diff := cmp.Diff(before, tree(t, mnt)); diff != "" {
		t.Errorf("the refused build left files behind (-before +after):\n%s", diff)
	}
	if _, err := d.Client.Image(ctx, "built"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("image built after the refused build: %v, want not found", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	err = build()
	t.Logf("build with room, of an image without a shell: %v", err)
	if err == nil || strings.Contains(err.Error(), "needs at least") {
		t.Errorf("build with room: %v, want it past the space check and failing in its script", err)
	}
	if diff := cmp.Diff(before, tree(t, mnt)); diff != "" {
		t.Errorf("the failed build left files behind (-before +after):\n%s", diff)
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mounts), catalog+"/") {
		t.Errorf("the failed build left a mount under %s", catalog)
	}
	verifyClean(t, d, "after the failed build")
	verifyClean(t, d, "at the end")
	checkIntegrity(t, d)
}
