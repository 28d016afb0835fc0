package firecracker

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

func jailSpec() hypervisor.Spec {
	return hypervisor.Spec{
		ID: "vm-1", Dir: "/run/banger/vms/vm-1", VCPUs: 2, MemoryMiB: 512,
		Boot: hypervisor.Boot{Vmlinux: "/var/lib/banger/kernels/k1/vmlinux", Initrd: "/var/lib/banger/kernels/k1/initrd.img"},
		Disks: []hypervisor.Disk{
			{ID: "root", Path: "/var/lib/banger/vms/vm-1/root.ext4", ReadOnly: true},
			{ID: "work", Path: "/var/lib/banger/vms/vm-1/work.ext4"},
		},
	}
}

func TestPlanJail(t *testing.T) {
	tests := []struct {
		name     string
		cfg      JailConfig
		cgroupV  int
		wantArgs []string
	}{
		{"cgroup v2", JailConfig{UID: 1500, GID: 1500}, 2, []string{
			"--id", "vm-1", "--exec-file", "/usr/local/bin/firecracker", "--uid", "1500", "--gid", "1500",
			"--chroot-base-dir", "/srv/jailer", "--cgroup-version", "2",
			"--cgroup", "cpu.max=200000 100000", "--cgroup", "memory.max=603979776",
			"--", "--api-sock", "/fc.sock",
		}},
		{"cgroup v1, own base, parent cgroup, netns, more overhead", JailConfig{
			UID: 1500, GID: 1600, ChrootBase: "/var/lib/banger/jail", ParentCgroup: "banger", NetNS: "/var/run/netns/banger", MemoryOverheadMiB: 128,
		}, 1, []string{
			"--id", "vm-1", "--exec-file", "/usr/local/bin/firecracker", "--uid", "1500", "--gid", "1600",
			"--chroot-base-dir", "/var/lib/banger/jail", "--cgroup-version", "1",
			"--parent-cgroup", "banger", "--netns", "/var/run/netns/banger",
			"--cgroup", "cpu.cfs_period_us=100000", "--cgroup", "cpu.cfs_quota_us=200000", "--cgroup", "memory.limit_in_bytes=671088640",
			"--", "--api-sock", "/fc.sock",
		}},
		{"no limits", JailConfig{UID: 1500, GID: 1500, NoCgroupLimits: true}, 2, []string{
			"--id", "vm-1", "--exec-file", "/usr/local/bin/firecracker", "--uid", "1500", "--gid", "1500",
			"--chroot-base-dir", "/srv/jailer", "--cgroup-version", "2",
			"--", "--api-sock", "/fc.sock",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planJail(tt.cfg, "/usr/local/bin/firecracker", jailSpec(), tt.cgroupV)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantArgs, p.Args); diff != "" {
				t.Errorf("jailer arguments (-want +got):\n%s", diff)
			}
		})
	}
}

// The chroot's layout and the paths Firecracker is given inside it.
func TestJailLayout(t *testing.T) {
	spec := jailSpec()
	p, err := planJail(JailConfig{UID: 1500, GID: 1500}, "/usr/local/bin/firecracker", spec, 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Dir != "/srv/jailer/firecracker/vm-1" || p.Root != "/srv/jailer/firecracker/vm-1/root" || p.Cgroup != "firecracker/vm-1" {
		t.Errorf("jail %s, root %s, cgroup %s", p.Dir, p.Root, p.Cgroup)
	}
	wantLinks := []jailLink{
		{Src: spec.Boot.Vmlinux, Name: "vmlinux", Copyable: true},
		{Src: spec.Boot.Initrd, Name: "initrd.img", Copyable: true},
		{Src: spec.Disks[0].Path, Name: "disk-root.img"},
		{Src: spec.Disks[1].Path, Name: "disk-work.img", Writable: true},
	}
	if diff := cmp.Diff(wantLinks, p.Links); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
	wantPaths := fcPaths{
		Log: "/firecracker.log", Metrics: "/firecracker.metrics", Kernel: "/vmlinux", Initrd: "/initrd.img",
		Vsock: "/vsock.sock", Disks: []string{"/disk-root.img", "/disk-work.img"},
	}
	if diff := cmp.Diff(wantPaths, p.fcPaths(spec)); diff != "" {
		t.Errorf("paths in the jail (-want +got):\n%s", diff)
	}

	// The launch sequence uses the paths inside the jail.
	calls := launchCalls(spec, p.fcPaths(spec), semver.New(1, 10, 0, "", ""))
	for _, c := range calls {
		if d, ok := c.Body.(driveBody); ok && !strings.HasPrefix(d.PathOnHost, "/disk-") {
			t.Errorf("drive %s is given as %s, not a path in the jail", d.DriveID, d.PathOnHost)
		}
	}

	// The driver finds the jail again from the API socket alone.
	if got := jailOf("/srv/jailer", "/srv/jailer/firecracker/vm-1/root/fc.sock"); got != "/srv/jailer/firecracker/vm-1" {
		t.Errorf("jailOf = %q", got)
	}
	for _, sock := range []string{"/run/banger/vms/vm-1/fc.sock", "/srv/jailer/fc.sock", "/srv/jailer/firecracker/vm-1/fc.sock", "/srv/other/firecracker/vm-1/root/fc.sock"} {
		if got := jailOf("/srv/jailer", sock); got != "" {
			t.Errorf("jailOf(%s) = %q, want none", sock, got)
		}
	}
}

func TestPlanJailRefuses(t *testing.T) {
	spec := jailSpec()
	for _, cfg := range []JailConfig{{UID: -1, GID: 1}, {UID: 0, GID: 1500}, {UID: 1500, GID: 0}, {}} {
		if _, err := planJail(cfg, "/usr/bin/firecracker", spec, 2); err == nil || !strings.Contains(err.Error(), "must not be root") {
			t.Errorf("planJail with uid %d gid %d = %v; want the root identity refused", cfg.UID, cfg.GID, err)
		}
	}
	if _, err := planJail(JailConfig{UID: 1, GID: 1, ChrootBase: "jail"}, "/usr/bin/firecracker", spec, 2); err == nil {
		t.Error("a relative chroot base was accepted")
	}
	if _, err := planJail(JailConfig{UID: 1, GID: 1}, "/usr/bin/firecracker", spec, 3); err == nil {
		t.Error("cgroup version 3 was accepted")
	}
	// Long ids make the sockets in the jail too long.
	spec.ID = strings.Repeat("v", 64)
	d := &Driver{Jailer: true, Jail: JailConfig{UID: 1, GID: 1, CgroupVersion: 2}}
	if _, _, err := d.layoutFor(spec, "/usr/bin/firecracker"); err == nil || !strings.Contains(err.Error(), "unix socket allows") {
		t.Errorf("layoutFor with a 64-byte id = %v; want the socket path refused", err)
	}
}

// prepare builds the chroot: hard links to the VM's files (the same
// inodes), the writable disk and the log files given to the jailed user.
func TestJailPrepare(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving files to the jailed user needs root")
	}
	dir := t.TempDir()
	spec := jailSpec()
	file := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, "images", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(name), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The daemon's image files are private (umask 077): the jail gets
	// read-only copies of the kernel; a world-readable initrd is linked.
	spec.Boot.Vmlinux = file("vmlinux", 0o600)
	spec.Boot.Initrd = file("initrd.img", 0o644)
	spec.Disks[0].Path = file("root.ext4", 0o644)
	spec.Disks[1].Path = file("work.ext4", 0o600)
	cfg := JailConfig{UID: 1500, GID: 1501, ChrootBase: filepath.Join(dir, "jail")}
	p, err := planJail(cfg, "/usr/bin/firecracker", spec, 2)
	if err != nil {
		t.Fatal(err)
	}
	// A stale jail from a killed VM is replaced.
	if err := os.MkdirAll(filepath.Join(p.Root, "stale"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p.prepare(cfg); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	wantOwner := map[string][2]uint32{
		"vmlinux": {0, 0}, "initrd.img": {0, 0}, "disk-root.img": {0, 0},
		"disk-work.img": {1500, 1501}, "firecracker.log": {1500, 1501}, "firecracker.metrics": {1500, 1501},
	}
	var names []string
	ents, _ := os.ReadDir(p.Root)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"disk-root.img", "disk-work.img", "firecracker.log", "firecracker.metrics", "initrd.img", "vmlinux"}, names); diff != "" {
		t.Errorf("jail contents (-want +got):\n%s", diff)
	}
	for name, owner := range wantOwner {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(p.Root, name), &st); err != nil {
			t.Fatal(err)
		}
		if [2]uint32{st.Uid, st.Gid} != owner {
			t.Errorf("%s belongs to %d:%d, want %d:%d", name, st.Uid, st.Gid, owner[0], owner[1])
		}
	}
	for _, l := range p.Links {
		var a, b syscall.Stat_t
		syscall.Stat(l.Src, &a)
		syscall.Stat(filepath.Join(p.Root, l.Name), &b)
		if l.Name == jailKernel {
			if a.Ino == b.Ino || b.Mode&0o777 != 0o444 {
				t.Errorf("the private kernel is in the jail as inode %d (source %d), mode %#o; want a 0444 copy", b.Ino, a.Ino, b.Mode&0o777)
			}
			continue
		}
		if a.Ino != b.Ino {
			t.Errorf("%s in the jail is not a hard link of %s", l.Name, l.Src)
		}
	}
	// Only root reaches into the jail; the chroot is the jailed user's.
	for path, want := range map[string][3]uint32{p.Dir: {0, 0, 0o700}, p.Root: {1500, 1501, 0o700}} {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if got := [3]uint32{st.Uid, st.Gid, st.Mode & 0o777}; got != want {
			t.Errorf("%s: owner %d:%d mode %#o, want %d:%d %#o", path, got[0], got[1], got[2], want[0], want[1], want[2])
		}
	}

	// An unreadable read-only disk is refused before anything runs.
	os.Chmod(spec.Disks[0].Path, 0o600)
	if err := p.prepare(cfg); err == nil || !strings.Contains(err.Error(), "cannot read it") {
		t.Errorf("prepare with an unreadable disk = %v", err)
	}
	if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
		t.Errorf("the failed prepare left the jail: %v", err)
	}

	// A read-only disk the jailed user could write is refused: it is
	// linked, not copied, so its mode is all that keeps the VM from
	// changing a file other VMs share.
	for _, tt := range []struct {
		name     string
		mode     os.FileMode
		uid, gid int
	}{
		{"owned by the jailed user", 0o444, 1500, 0},
		{"group-writable by the jailed user's group", 0o664, 0, 1501},
		{"world-writable", 0o646, 0, 0},
		{"owned by another user", 0o444, 1600, 0},
	} {
		os.Chown(spec.Disks[0].Path, tt.uid, tt.gid)
		os.Chmod(spec.Disks[0].Path, tt.mode)
		if err := p.prepare(cfg); err == nil || !strings.Contains(err.Error(), "could write it") || !strings.Contains(err.Error(), spec.Disks[0].Path) {
			t.Errorf("prepare with a read-only disk %s = %v; want it refused, naming the disk", tt.name, err)
		}
		if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
			t.Errorf("the failed prepare (%s) left the jail: %v", tt.name, err)
		}
	}
	os.Chown(spec.Disks[0].Path, 0, 0)

	// Readable by group alone is enough: the jailed user reads, never
	// writes, the very file (a hard link, not a copy).
	os.Chown(spec.Disks[0].Path, 0, 1501)
	os.Chmod(spec.Disks[0].Path, 0o640)
	if err := p.prepare(cfg); err != nil {
		t.Fatalf("prepare with a read-only disk root:1501 0640: %v", err)
	}
	var src, linked syscall.Stat_t
	syscall.Stat(spec.Disks[0].Path, &src)
	syscall.Stat(filepath.Join(p.Root, diskFileName("root")), &linked)
	if src.Ino != linked.Ino || linked.Uid != 0 || linked.Mode&0o777 != 0o640 {
		t.Errorf("the read-only disk in the jail: inode %d (source %d), owner %d, mode %#o; want the source itself, root's, 0640", linked.Ino, src.Ino, linked.Uid, linked.Mode&0o777)
	}
	os.Chown(spec.Disks[0].Path, 0, 0)
	os.Chmod(spec.Disks[0].Path, 0o644)
	if err := p.prepare(cfg); err != nil {
		t.Fatal(err)
	}
	if err := removeJail(p.Dir, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
		t.Errorf("removeJail left %s: %v", p.Dir, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(spec.Disks[1].Path, &st); err != nil {
		t.Errorf("removing the jail removed the work disk: %v", err)
	} else if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("after the jail is gone the work disk still belongs to %d:%d, want the daemon's user", st.Uid, st.Gid)
	}
}
