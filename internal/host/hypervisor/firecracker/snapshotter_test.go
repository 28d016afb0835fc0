package firecracker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker/fctest"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, agentmux.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// keyedSpec is testSpec with its own id and TAP, booting an initramfs
// whose agent holds key.
func keyedSpec(t *testing.T, id, tap string, key []byte) hypervisor.Spec {
	t.Helper()
	spec := testSpec(t)
	spec.ID = id
	spec.NIC.TAP = tap
	initrd := spec.Boot.Initrd + "-key"
	if err := hvtest.WithBootKey(initrd, spec.Boot.Initrd, key); err != nil {
		t.Fatal(err)
	}
	spec.Boot.Initrd = initrd
	return spec
}

func health(t *testing.T, d *Driver, h hypervisor.Handle, key []byte, wait time.Duration) (agentproto.Health, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return hvtest.AgentHealth(ctx, d, h, key)
}

func stateDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func digests(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out[e.Name()] = hex.EncodeToString(sum[:])
	}
	return out
}

// lastBody returns the decoded body of pid's last request to path.
func lastBody(t *testing.T, bin string, pid int, path string) map[string]any {
	t.Helper()
	var body map[string]any
	for _, r := range decodeSent(t, recorded(t, bin, pid)) {
		if r.Path == path {
			body = r.Body
		}
	}
	if body == nil {
		t.Fatalf("pid %d sent no %s", pid, path)
	}
	return body
}

// restoreAtOnce restores every spec from dir at once; the VMs are killed
// when the test ends.
func restoreAtOnce(t *testing.T, d *Driver, dir string, specs ...hypervisor.Spec) ([]hypervisor.Handle, []error) {
	t.Helper()
	hs := make([]hypervisor.Handle, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			hs[i], errs[i] = d.Restore(ctx, spec, dir)
		})
	}
	wg.Wait()
	for i, h := range hs {
		if errs[i] == nil {
			t.Cleanup(func() { d.Kill(h) })
		}
	}
	return hs, errs
}

// Save and Restore through the stand-in, on every release banger drives
// that changed PUT /snapshot/load: each request passes the stand-in's
// checks of that release's API; Save leaves the VM paused with the state
// in the directory; a restore sends nothing but the logger, the metrics
// and the load (no boot configuration), resume_vm false, and the TAP
// through network_overrides where the release has them; two clones
// restore from one state at once, onto their own disks and TAPs, paused
// until Resumed, then each is the saved guest (its agent holds the saved
// key, not the one the clone's initramfs carries, and its uptime goes on);
// the state is not changed.
func TestSaveRestore(t *testing.T) {
	for _, version := range []string{"1.1.0", "1.11.0", "1.12.1", "1.13.1", "1.15.1", "1.16.1"} {
		t.Run(version, func(t *testing.T) {
			v := semver.MustParse(version)
			d, bin := fakeDriver(t, fctest.Config{Version: version})
			key := newKey(t)
			spec := keyedSpec(t, "vm-saved", "tap-pool-3", key)
			h := launch(t, d, spec)
			before, err := health(t, d, h, key, 20*time.Second)
			if err != nil {
				t.Fatalf("the saved guest's agent: %v", err)
			}
			dir := stateDir(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			saved, err := d.Save(ctx, h, dir)
			if err != nil {
				t.Fatalf("Save: %v", err)
			}
			if st, err := d.Status(ctx, h); err != nil || st != hypervisor.Paused {
				t.Errorf("Status after Save = %q, %v; want paused", st, err)
			}
			var alloc int64
			for _, f := range []string{StateFile, MemoryFile, StateInfoFile} {
				var st unix.Stat_t
				if err := unix.Stat(filepath.Join(dir, f), &st); err != nil {
					t.Fatal(err)
				}
				alloc += st.Blocks * 512
				if st.Mode&0o777 != 0o600 || int(st.Uid) != os.Getuid() {
					t.Errorf("%s: owner %d mode %#o; want the daemon's, 0600", f, st.Uid, st.Mode&0o777)
				}
			}
			if saved.Bytes <= 0 || saved.Bytes != alloc {
				t.Errorf("Saved.Bytes = %d; the files take %d", saved.Bytes, alloc)
			}
			wantCreate := map[string]any{"snapshot_type": "Full", "snapshot_path": dir + "/vmstate", "mem_file_path": dir + "/memory"}
			if diff := cmp.Diff(wantCreate, lastBody(t, bin, h.PID, "/snapshot/create")); diff != "" {
				t.Errorf("snapshot/create body (-want +got):\n%s", diff)
			}
			if err := d.Kill(h); err != nil {
				t.Fatal(err)
			}
			sums := digests(t, dir)

			otherKey := newKey(t)
			clones := []hypervisor.Spec{keyedSpec(t, "vm-clone-1", "tap-pool-4", otherKey), keyedSpec(t, "vm-clone-2", "tap-pool-5", otherKey)}
			hs, errs := restoreAtOnce(t, d, dir, clones...)
			if v.LessThan(NetworkOverridesSince) {
				// A clone needs its own TAP, which this release cannot give:
				// only the saved VM's own spec restores (pause to disk).
				for _, err := range errs {
					if err == nil || !strings.Contains(err.Error(), "the state's VM used TAP tap-pool-3") || !strings.Contains(err.Error(), "upgrade Firecracker or restore it with TAP tap-pool-3") {
						t.Errorf("Restore of a clone with another TAP on v%s = %v; want the TAP refused", version, err)
					}
				}
				clones = clones[:1]
				clones[0].ID, clones[0].Dir, clones[0].Disks, clones[0].NIC = spec.ID, spec.Dir, spec.Disks, spec.NIC
				hs, errs = restoreAtOnce(t, d, dir, clones...)
			}
			for i, err := range errs {
				if err != nil {
					t.Fatalf("Restore %d: %v", i, err)
				}
			}
			for i, c := range hs {
				reqs := decodeSent(t, dropProbes(recorded(t, bin, c.PID)))
				var paths []string
				for _, r := range reqs {
					paths = append(paths, r.Method+" "+r.Path)
				}
				if want := []string{"GET /", "PUT /logger", "PUT /metrics", "PUT /snapshot/load"}; !cmp.Equal(want, paths) {
					t.Errorf("clone %d sent %v; want %v (a snapshot load is the first configuring call)", i, paths, want)
				}
				wantLoad := map[string]any{
					"snapshot_path": dir + "/vmstate",
					"mem_backend":   map[string]any{"backend_type": "File", "backend_path": dir + "/memory"},
					"resume_vm":     false,
				}
				if clones[i].NIC.TAP != spec.NIC.TAP {
					wantLoad["network_overrides"] = []any{map[string]any{"iface_id": "eth0", "host_dev_name": clones[i].NIC.TAP}}
				}
				if diff := cmp.Diff(wantLoad, reqs[len(reqs)-1].Body); diff != "" {
					t.Errorf("clone %d: snapshot/load body (-want +got):\n%s", i, diff)
				}
				if st, err := d.Status(ctx, c); err != nil || st != hypervisor.Paused {
					t.Errorf("clone %d: Status after Restore = %q, %v; want paused", i, st, err)
				}
				if err := d.Resume(ctx, c); err != nil {
					t.Fatalf("Resume: %v", err)
				}
				if st, err := d.Status(ctx, c); err != nil || st != hypervisor.Running {
					t.Errorf("clone %d: Status after Resume = %q, %v; want running", i, st, err)
				}
			}
			for i, c := range hs {
				after, err := health(t, d, c, key, 20*time.Second)
				if err != nil {
					t.Fatalf("clone %d does not answer with the saved guest's key: %v", i, err)
				}
				if after.UptimeMS < before.UptimeMS {
					t.Errorf("clone %d: uptime %d ms, under the saved guest's %d: a new boot", i, after.UptimeMS, before.UptimeMS)
				}
				if _, err := health(t, d, c, otherKey, time.Second); err == nil {
					t.Errorf("clone %d answers the key of its own initramfs: it booted instead of restoring", i)
				}
			}
			if diff := cmp.Diff(sums, digests(t, dir)); diff != "" {
				t.Errorf("restoring changed the state (-before +after):\n%s", diff)
			}
			for pid, reqs := range allRecorded(t, bin) {
				for _, r := range reqs {
					if r.Status >= 300 {
						t.Errorf("pid %d: Firecracker v%s's API would refuse %s %s %s: %d %s", pid, version, r.Method, r.Path, r.Body, r.Status, r.Fault)
					}
				}
			}
		})
	}
}

func allRecorded(t *testing.T, bin string) map[int][]fctest.Request {
	t.Helper()
	all, err := fctest.RecordedAll(bin)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// A restored guest takes a new identity through its agent: the stand-in
// records the call, answers with new host keys, and from then on answers
// only the new key; a restored VM can be saved again and resumed (a
// fork's path).
func TestRestoredIdentityAndFork(t *testing.T) {
	d, bin := fakeDriver(t, fctest.Config{})
	key := newKey(t)
	h := launch(t, d, keyedSpec(t, "vm-saved", "tap-pool-3", key))
	if _, err := health(t, d, h, key, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := stateDir(t)
	if _, err := d.Save(ctx, h, dir); err != nil {
		t.Fatal(err)
	}
	if err := d.Resume(ctx, h); err != nil { // the source of a fork runs on
		t.Fatal(err)
	}
	clone := keyedSpec(t, "vm-clone", "tap-pool-4", newKey(t))
	hs, errs := restoreAtOnce(t, d, dir, clone)
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	c := hs[0]
	if err := d.Resume(ctx, c); err != nil {
		t.Fatal(err)
	}
	newKey := newKey(t)
	conn, err := d.DialAgent(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := agentmux.Upgrade(ctx, conn, key)
	if err != nil {
		t.Fatal(err)
	}
	id := agentproto.Identity{TimeUnixNano: time.Now().UnixNano(), Seed: make([]byte, 64), Hostname: "vm-clone", HostKeys: true, Key: newKey}
	var res agentproto.IdentityResult
	if err := sess.Call(ctx, agentproto.MethodIdentity, id, &res); err != nil {
		t.Fatalf("identity: %v", err)
	}
	sess.Close()
	if len(res.HostKeys) != 1 || res.HostKeys[0] == fctest.FakeHostKey {
		t.Errorf("identity with HostKeys answered %v; want one new key", res.HostKeys)
	}
	got, err := health(t, d, c, newKey, 10*time.Second)
	if err != nil || got.Hostname != "vm-clone" {
		t.Errorf("health with the new key: %+v, %v; want hostname vm-clone", got, err)
	}
	if _, err := health(t, d, c, key, time.Second); err == nil {
		t.Error("after identity with a new key, the old key still opens a session")
	}
	// The source kept its key: the identity was the clone's alone.
	if _, err := health(t, d, h, key, 10*time.Second); err != nil {
		t.Errorf("the source after the fork: %v", err)
	}
	reqs := recorded(t, bin, c.PID)
	var calls []fctest.Request
	for _, r := range reqs {
		if r.Path == fctest.IdentityPath {
			calls = append(calls, r)
		}
	}
	var sent agentproto.Identity
	if len(calls) != 1 || json.Unmarshal([]byte(calls[0].Body), &sent) != nil || sent.Hostname != "vm-clone" {
		t.Errorf("recorded identity calls: %+v", calls)
	}

	// The clone, itself restored, saves again (its own state files in
	// its directory do not collide) and resumes.
	dir2 := stateDir(t)
	if _, err := d.Save(ctx, c, dir2); err != nil {
		t.Fatalf("Save of a restored VM: %v", err)
	}
	if err := d.Resume(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := health(t, d, c, newKey, 10*time.Second); err != nil {
		t.Errorf("the resumed clone: %v", err)
	}
	// A restore of the clone's state answers the new key.
	hs2, errs2 := restoreAtOnce(t, d, dir2, keyedSpec(t, "vm-clone-2", "tap-pool-5", key))
	if errs2[0] != nil {
		t.Fatal(errs2[0])
	}
	d.Resume(ctx, hs2[0])
	if got, err := health(t, d, hs2[0], newKey, 10*time.Second); err != nil || got.Hostname != "vm-clone" {
		t.Errorf("a restore of the clone's state: %+v, %v", got, err)
	}
}

// Save of a VM whose state cannot be written fails and leaves the VM
// paused, for the caller to resume.
func TestSaveFailureLeavesPaused(t *testing.T) {
	d, _ := fakeDriver(t, fctest.Config{})
	h := launch(t, d, testSpec(t))
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "missing")
	if _, err := d.Save(ctx, h, dir); err == nil || !strings.Contains(err.Error(), "creating a snapshot") {
		t.Errorf("Save into a missing directory = %v; want Firecracker's refusal", err)
	}
	if st, err := d.Status(ctx, h); err != nil || st != hypervisor.Paused {
		t.Errorf("Status after a failed Save = %q, %v; want paused", st, err)
	}
	if _, err := d.Save(ctx, h, "relative"); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("Save into a relative directory = %v", err)
	}
}

// planRestore refuses what Firecracker cannot restore, naming the fix,
// and overrides what the release can.
func TestPlanRestore(t *testing.T) {
	spec := hypervisor.Spec{
		ID: "vm-clone", Dir: "/run/vm-clone", VCPUs: 2, MemoryMiB: 256,
		Disks: []hypervisor.Disk{{ID: "root", Path: "/img/root", ReadOnly: true}, {ID: "work", Path: "/vms/clone/work"}},
		NIC:   &hypervisor.NIC{TAP: "tap-pool-4", MAC: "06:00:0a:00:00:04"},
	}
	fp := fcPaths{Disks: []string{"disk-root.img", "disk-work.img"}, Vsock: "vsock.sock"}
	info := func(edit func(*stateInfo)) stateInfo {
		i := stateInfo{Format: 1, Version: "1.16.1", VCPUs: 2, MemoryMiB: 256,
			Drives: []savedDrive{{ID: "root", Path: "disk-root.img", ReadOnly: true}, {ID: "work", Path: "disk-work.img"}},
			TAP:    "tap-pool-3", Vsock: "vsock.sock"}
		if edit != nil {
			edit(&i)
		}
		return i
	}
	tests := []struct {
		name    string
		info    stateInfo
		version string
		jailed  bool
		edit    func(*hypervisor.Spec)
		want    SnapshotLoadParams
		wantErr string
	}{
		{name: "another TAP", info: info(nil), version: "1.12.0",
			want: SnapshotLoadParams{NetworkOverrides: []NetworkOverride{{IfaceID: "eth0", HostDevName: "tap-pool-4"}}}},
		{name: "another TAP before network overrides", info: info(nil), version: "1.11.0",
			wantErr: "the state's VM used TAP tap-pool-3 and this VM has tap-pool-4: Firecracker v1.11.0 cannot give a restored VM another TAP (network_overrides needs v1.12.0): upgrade Firecracker or restore it with TAP tap-pool-3"},
		{name: "same TAP", info: info(func(i *stateInfo) { i.TAP = "tap-pool-4" }), version: "1.1.0"},
		{name: "absolute disk path (a state of the saved VM's own files)", version: "1.16.1",
			info:    info(func(i *stateInfo) { i.Drives[1].Path = "/vms/saved/work" }),
			wantErr: "the state opens disk work at /vms/saved/work and this VM's is disk-work.img: Firecracker restores a drive only from the path it was saved with (no release overrides drives), so a state restores into another VM's disks only under the jailer: run Firecracker under the jailer"},
		{name: "another vsock socket", version: "1.16.0",
			info: info(func(i *stateInfo) { i.Vsock = "/run/vm-saved/vsock.sock" }),
			want: SnapshotLoadParams{VsockOverride: "vsock.sock", NetworkOverrides: []NetworkOverride{{IfaceID: "eth0", HostDevName: "tap-pool-4"}}}},
		{name: "another vsock socket before vsock_override", version: "1.15.1",
			info:    info(func(i *stateInfo) { i.Vsock = "/run/vm-saved/vsock.sock" }),
			wantErr: "Firecracker v1.15.1 cannot move it (vsock_override needs v1.16.0): upgrade Firecracker or run it under the jailer"},
		{name: "saved jailed", info: info(func(i *stateInfo) { i.Jailed = true }), version: "1.16.1",
			wantErr: "saved by a Firecracker under the jailer, whose disk paths are inside its chroot: restore it with the jailer on"},
		{name: "saved unjailed", info: info(nil), version: "1.16.1", jailed: true,
			wantErr: "restore it with the jailer off, or save it again under the jailer"},
		{name: "shape", info: info(func(i *stateInfo) { i.MemoryMiB = 512 }), version: "1.16.1",
			wantErr: "the state is of a VM with 2 vCPUs and 512 MiB, this VM has 2 and 256: boot it instead"},
		{name: "disk layout", info: info(func(i *stateInfo) { i.Drives[0].ReadOnly = false }), version: "1.16.1",
			wantErr: "disk 0 is root (read-only false) in the state and root (read-only true) in this VM"},
		{name: "disk count", info: info(func(i *stateInfo) { i.Drives = i.Drives[:1] }), version: "1.16.1",
			wantErr: "the state has 1 disks, this VM 2"},
		{name: "no NIC", info: info(nil), version: "1.16.1", edit: func(s *hypervisor.Spec) { s.NIC = nil },
			wantErr: "had a network interface (TAP tap-pool-3) and this VM has none"},
		{name: "a NIC the state lacks", info: info(func(i *stateInfo) { i.TAP = "" }), version: "1.16.1",
			wantErr: "the state's VM had no network interface and this VM has one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec
			s.NIC = &hypervisor.NIC{TAP: spec.NIC.TAP, MAC: spec.NIC.MAC}
			if tt.edit != nil {
				tt.edit(&s)
			}
			var got SnapshotLoadParams
			err := planRestore(&got, tt.info, s, fp, tt.jailed, semver.MustParse(tt.version))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("planRestore = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("load params (-want +got):\n%s", diff)
			}
		})
	}
}

// Restore refuses a directory without a saved state, naming it, and
// leaves nothing behind.
func TestRestoreRefusesNoState(t *testing.T) {
	d, _ := fakeDriver(t, fctest.Config{})
	spec := testSpec(t)
	dir := t.TempDir()
	_, err := d.Restore(context.Background(), spec, dir)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "is it a state the Firecracker driver saved?") {
		t.Errorf("Restore from an empty directory = %v", err)
	}
	if ents, _ := os.ReadDir(spec.Dir); len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("the refused Restore left %v in %s", names, spec.Dir)
	}
}

// Under the jailer: the state Save leaves is the daemon's, readable by
// the jailed user's group and writable by no one else, copied out of the
// chroot; two clones restore from it at once, each with the state files
// hard-linked into its own chroot (shared, not copied) and its own disks
// at the same paths there; a state the jailed user cannot read is copied
// into the jail instead, never made readable.
func TestSaveRestoreJailed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the jailer needs root")
	}
	u, err := hypervisor.EnsureVMUser(context.Background(), hypervisor.DefaultVMUser)
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "fcs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	bin := fctest.FakeBinary(t, fctest.Config{})
	d, err := New(bin, testLog())
	if err != nil {
		t.Fatal(err)
	}
	d.Jailer, d.JailerBin = true, fakeJailer(t)
	d.Jail = JailConfig{UID: int(u.UID), GID: int(u.GID), ChrootBase: base, CgroupVersion: 2, NoCgroupLimits: true}
	var gave []string
	var gaveMu sync.Mutex
	d.GiveTAP = func(name string, uid, gid int) error {
		gaveMu.Lock()
		defer gaveMu.Unlock()
		gave = append(gave, name)
		return nil
	}
	// Specs on the jail's filesystem, under base (hard links).
	spec := func(id, tap string, key []byte) hypervisor.Spec {
		dir := filepath.Join(base, "vms", id)
		if err := os.MkdirAll(filepath.Join(dir, "run"), 0o700); err != nil {
			t.Fatal(err)
		}
		file := func(name string, mode os.FileMode) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(name), mode); err != nil {
				t.Fatal(err)
			}
			return p
		}
		initrd := filepath.Join(dir, "initrd")
		if err := hvtest.WithBootKey(initrd, file("initrd-base", 0o644), key); err != nil {
			t.Fatal(err)
		}
		os.Chmod(initrd, 0o644)
		return hypervisor.Spec{
			ID: id, Dir: filepath.Join(dir, "run"), VCPUs: 1, MemoryMiB: 128, ConsoleLimit: 64 << 10,
			Boot:  hypervisor.Boot{Vmlinux: file("vmlinux", 0o600), Initrd: initrd, Cmdline: "root=/dev/vda ro"},
			Disks: []hypervisor.Disk{{ID: "root", Path: file("root.ext4", 0o644), ReadOnly: true}, {ID: "work", Path: file("work.ext4", 0o600)}},
			NIC:   &hypervisor.NIC{TAP: tap, MAC: "06:00:0a:00:00:02"},
		}
	}
	key := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := d.Launch(ctx, spec("fcs-saved", "tap-pool-3", key))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Kill(h)
	before, err := health(t, d, h, key, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	saved, err := d.Save(ctx, h, dir)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	if saved.Bytes <= 0 {
		t.Errorf("Saved.Bytes = %d", saved.Bytes)
	}
	// The jailed fake records its requests inside its chroot.
	jailBin := func(h hypervisor.Handle) string { return filepath.Join(filepath.Dir(h.ControlSocket), "firecracker") }
	wantCreate := map[string]any{"snapshot_type": "Full", "snapshot_path": "/saving.vmstate", "mem_file_path": "/saving.memory"}
	if diff := cmp.Diff(wantCreate, lastBody(t, jailBin(h), h.PID, "/snapshot/create")); diff != "" {
		t.Errorf("snapshot/create body (-want +got):\n%s", diff)
	}
	root := filepath.Dir(h.ControlSocket)
	for _, f := range []string{jailSaveState, jailSaveMemory} {
		if _, err := os.Lstat(filepath.Join(root, f)); err == nil {
			t.Errorf("Save left %s in the chroot", f)
		}
	}
	for _, f := range []string{StateFile, MemoryFile} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, f), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 || st.Gid != u.GID || st.Mode&0o777 != 0o640 || st.Nlink != 1 {
			t.Errorf("%s: owner %d:%d mode %#o links %d; want 0:%d 0640, a file of its own", f, st.Uid, st.Gid, st.Mode&0o777, st.Nlink, u.GID)
		}
	}
	if err := d.Kill(h); err != nil {
		t.Fatal(err)
	}
	sums := digests(t, dir)

	other := newKey(t)
	clones := []hypervisor.Spec{spec("fcs-clone-1", "tap-pool-4", other), spec("fcs-clone-2", "tap-pool-5", other)}
	hs, errs := restoreAtOnce(t, d, dir, clones...)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Restore %d: %v", i, err)
		}
	}
	var memStat unix.Stat_t
	unix.Stat(filepath.Join(dir, MemoryFile), &memStat)
	for i, c := range hs {
		wantLoad := map[string]any{
			"snapshot_path":     "/snapshot.vmstate",
			"mem_backend":       map[string]any{"backend_type": "File", "backend_path": "/snapshot.memory"},
			"resume_vm":         false,
			"network_overrides": []any{map[string]any{"iface_id": "eth0", "host_dev_name": clones[i].NIC.TAP}},
		}
		if diff := cmp.Diff(wantLoad, lastBody(t, jailBin(c), c.PID, "/snapshot/load")); diff != "" {
			t.Errorf("clone %d: snapshot/load body (-want +got):\n%s", i, diff)
		}
		for _, r := range recorded(t, jailBin(c), c.PID) {
			if r.Status >= 300 {
				t.Errorf("clone %d: refused %s %s: %s", i, r.Method, r.Path, r.Fault)
			}
		}
		croot := filepath.Dir(c.ControlSocket)
		link := filepath.Join(croot, jailRestoreMemory)
		var st unix.Stat_t
		if err := unix.Stat(link, &st); err != nil || st.Ino != memStat.Ino {
			t.Errorf("clone %d: %s is inode %d (%v), want the state's memory file %d, linked", i, link, st.Ino, err, memStat.Ino)
		}
		if err := readableBy(link, int(u.UID), int(u.GID)); err != nil {
			t.Errorf("clone %d: %v", i, err)
		}
		if err := readOnlyFor(link, int(u.UID), int(u.GID)); err != nil {
			t.Errorf("clone %d: %v", i, err)
		}
		if err := d.Resume(ctx, c); err != nil {
			t.Fatal(err)
		}
		after, err := health(t, d, c, key, 20*time.Second)
		if err != nil {
			t.Fatalf("clone %d does not answer with the saved guest's key: %v", i, err)
		}
		if after.UptimeMS < before.UptimeMS {
			t.Errorf("clone %d: uptime %d < %d", i, after.UptimeMS, before.UptimeMS)
		}
	}
	gaveMu.Lock()
	if want := []string{"tap-pool-3", "tap-pool-4", "tap-pool-5"}; len(gave) != 3 || !cmp.Equal(want, sortedCopy(gave)) {
		t.Errorf("TAPs handed to the jailed user: %v, want %v", gave, want)
	}
	gaveMu.Unlock()
	for _, c := range hs {
		d.Kill(c)
	}

	// A state made private to the daemon: the jail gets a copy.
	for _, f := range []string{StateFile, MemoryFile} {
		os.Chmod(filepath.Join(dir, f), 0o400)
	}
	hs, errs = restoreAtOnce(t, d, dir, spec("fcs-clone-3", "tap-pool-6", other))
	if errs[0] != nil {
		t.Fatalf("Restore from a private state: %v", errs[0])
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(filepath.Dir(hs[0].ControlSocket), jailRestoreMemory), &st); err != nil || st.Ino == memStat.Ino {
		t.Errorf("a private state was linked into the jail (inode %d, %v)", st.Ino, err)
	}
	for _, f := range []string{StateFile, MemoryFile} {
		var fst unix.Stat_t
		unix.Stat(filepath.Join(dir, f), &fst)
		if fst.Mode&0o777 != 0o400 {
			t.Errorf("Restore changed %s's mode to %#o", f, fst.Mode&0o777)
		}
	}
	if diff := cmp.Diff(sums, digests(t, dir)); diff != "" {
		t.Errorf("restoring changed the state (-before +after):\n%s", diff)
	}
	// Without the jailer, the jailed state is refused with its fix.
	d.Jailer, d.JailerBin = false, ""
	if _, err := d.Restore(ctx, spec("fcs-clone-4", "tap-pool-7", other), dir); err == nil || !strings.Contains(err.Error(), "restore it with the jailer on") {
		t.Errorf("Restore of a jailed state without the jailer = %v", err)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}
