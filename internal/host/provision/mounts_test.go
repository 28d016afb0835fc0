package provision

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// fakeMounter is a mount table in memory. It records every call, with
// targets relative to root, and can fail or report busy on given targets.
type fakeMounter struct {
	root      string
	calls     []string
	mounted   []string // host paths, in mount order
	failMount map[string]error
	busy      map[string]bool // relative targets whose plain unmount is EBUSY
	pids      []int
}

func (f *fakeMounter) rel(p string) string {
	if r, err := filepath.Rel(f.root, p); err == nil && !strings.HasPrefix(r, "..") {
		return "/" + r
	}
	return p
}

func (f *fakeMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	kind := fstype
	if flags&unix.MS_BIND != 0 {
		kind = "bind " + source
	}
	f.calls = append(f.calls, "mount "+kind+" "+f.rel(target))
	if err := f.failMount[f.rel(target)]; err != nil {
		return err
	}
	f.mounted = append(f.mounted, target)
	return nil
}

func (f *fakeMounter) Unmount(target string, flags int) error {
	call := "umount " + f.rel(target)
	if flags&unix.MNT_DETACH != 0 {
		call = "umount -l " + f.rel(target)
	}
	f.calls = append(f.calls, call)
	for i := len(f.mounted) - 1; i >= 0; i-- {
		if f.mounted[i] != target {
			continue
		}
		if f.busy[f.rel(target)] && flags&unix.MNT_DETACH == 0 {
			return unix.EBUSY
		}
		f.mounted = append(f.mounted[:i], f.mounted[i+1:]...)
		return nil
	}
	return unix.EINVAL
}

func (f *fakeMounter) mountinfo() ([]byte, error) {
	var b strings.Builder
	b.WriteString("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n")
	for i, m := range f.mounted {
		fmt.Fprintf(&b, "%d 22 0:%d / %s rw shared:%d - tmpfs tmpfs rw\n", 100+i, 50+i, strings.ReplaceAll(m, " ", `\040`), i+2)
	}
	return []byte(b.String()), nil
}

func (f *fakeMounter) pidsRootedIn(string) []int { return f.pids }

func (f *fakeMounter) kill(pid int) error {
	f.calls = append(f.calls, fmt.Sprintf("kill %d", pid))
	for i, p := range f.pids {
		if p == pid {
			f.pids = append(f.pids[:i], f.pids[i+1:]...)
			break
		}
	}
	return nil
}

// fakeRoot makes a directory that looks like a root filesystem.
func fakeRoot(t *testing.T, dirs ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range append([]string{"bin", "etc", "usr/sbin"}, dirs...) {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin/sh"), []byte("#!"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestChrootPlan(t *testing.T) {
	tests := []struct {
		name   string
		resolv []byte
		want   Plan
	}{
		{
			name:   "with host resolver",
			resolv: []byte("nameserver 192.0.2.53\n"),
			want: Plan{
				Mounts: []Mount{
					{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
				},
				Files: []TempFile{
					{Path: "/etc/resolv.conf", Content: []byte("nameserver 192.0.2.53\n"), Mode: 0o644},
					{Path: "/usr/sbin/policy-rc.d", Content: []byte(policyRCD), Mode: 0o755},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ChrootPlan(tt.resolv)); diff != "" {
				t.Errorf("ChrootPlan (-want +got):\n%s", diff)
			}
		})
	}
	// Mount points must be mounted parents first: /dev before /dev/pts.
	seen := map[string]bool{"/": true}
	for _, m := range ChrootPlan(nil).Mounts {
		if !seen[filepath.Dir(m.Target)] && filepath.Dir(m.Target) != "/" {
			t.Errorf("%s is mounted before its parent", m.Target)
		}
		seen[m.Target] = true
	}
	// No host path is bound into the image: the kernel filesystems and
	// /dev are the sandbox's own (buildsandbox.Plan).
	for _, m := range ChrootPlan(nil).Mounts {
		if m.FSType == "" || strings.HasPrefix(m.Source, "/") {
			t.Errorf("ChrootPlan binds host path %s into the image", m.Source)
		}
	}
	if !strings.Contains(policyRCD, "exit 101") {
		t.Error("policy-rc.d must exit 101 to deny service starts")
	}
}

// sampleMounts are several nested mounts for the executor's tests: the
// plan of earlier banger versions, which bound the host's /dev (a crash of
// such a version is what Cleanup must still undo).
var sampleMounts = []Mount{
	{Source: "proc", Target: "/proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY},
	{Source: "/dev", Target: "/dev", Flags: unix.MS_BIND},
	{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
	{Source: "tmpfs", Target: "/dev/shm", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777"},
	{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
}

func TestMountExecutor(t *testing.T) {
	plan := sampleMounts
	tests := []struct {
		name      string
		failMount map[string]error
		busy      map[string]bool
		wantErr   string
		want      []string // calls of apply followed by undo
	}{
		{
			name: "apply then undo in reverse",
			want: []string{
				"mount proc /proc", "mount sysfs /sys", "mount bind /dev /dev", "mount devpts /dev/pts", "mount tmpfs /dev/shm", "mount tmpfs /run",
				"umount /run", "umount /dev/shm", "umount /dev/pts", "umount /dev", "umount /sys", "umount /proc",
			},
		},
		{
			name:      "failure midway unwinds what was mounted, in reverse",
			failMount: map[string]error{"/dev/pts": unix.EPERM},
			wantErr:   "mounting devpts on /dev/pts",
			want: []string{
				"mount proc /proc", "mount sysfs /sys", "mount bind /dev /dev", "mount devpts /dev/pts",
				"umount /dev", "umount /sys", "umount /proc",
			},
		},
		{
			name:      "first mount fails",
			failMount: map[string]error{"/proc": unix.EPERM},
			wantErr:   "mounting proc on /proc",
			want:      []string{"mount proc /proc"},
		},
		{
			name: "busy mount is detached lazily",
			busy: map[string]bool{"/proc": true},
			want: []string{
				"mount proc /proc", "mount sysfs /sys", "mount bind /dev /dev", "mount devpts /dev/pts", "mount tmpfs /dev/shm", "mount tmpfs /run",
				"umount /run", "umount /dev/shm", "umount /dev/pts", "umount /dev", "umount /sys", "umount /proc", "umount -l /proc",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeRoot(t, "proc", "sys", "dev/pts", "dev/shm", "run")
			f := &fakeMounter{root: root, failMount: tt.failMount, busy: tt.busy}
			e := &mountExec{m: f, root: root}
			err := e.apply(plan)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("apply error = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if err := e.undo(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if len(f.mounted) != 0 || len(e.applied) != 0 {
				t.Errorf("left mounted: %v (executor thinks %d)", f.mounted, len(e.applied))
			}
			// A second undo has nothing left to do.
			n := len(f.calls)
			if err := e.undo(); err != nil || len(f.calls) != n {
				t.Errorf("second undo: %v, %d new calls", err, len(f.calls)-n)
			}
		})
	}
}

func TestMountExecutorMountPoints(t *testing.T) {
	t.Run("created mount points are removed again, existing ones kept", func(t *testing.T) {
		root := fakeRoot(t, "proc") // no /sys
		f := &fakeMounter{root: root}
		e := &mountExec{m: f, root: root}
		if err := e.apply([]Mount{{Source: "proc", Target: "/proc", FSType: "proc"}, {Source: "sysfs", Target: "/sys", FSType: "sysfs"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "sys")); err != nil {
			t.Fatalf("mount point not created: %v", err)
		}
		if err := e.undo(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "sys")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("created mount point /sys left behind: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "proc")); err != nil {
			t.Errorf("existing /proc removed: %v", err)
		}
	})
	t.Run("symbolic links resolve inside the root", func(t *testing.T) {
		root := fakeRoot(t, "real")
		os.Symlink("/real", filepath.Join(root, "proc"))
		os.Symlink("../../../../../..", filepath.Join(root, "sys"))
		f := &fakeMounter{root: root}
		e := &mountExec{m: f, root: root}
		if err := e.apply([]Mount{{Source: "proc", Target: "/proc", FSType: "proc"}}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"mount proc /real"}, f.calls); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
		err := e.apply([]Mount{{Source: "sysfs", Target: "/sys", FSType: "sysfs"}})
		if err == nil || !strings.Contains(err.Error(), "root itself") {
			t.Errorf("mount over the root through a symlink: error = %v", err)
		}
		e.undo()
	})
}

func TestOpenChrootAndClose(t *testing.T) {
	root := fakeRoot(t, "proc", "sys", "dev/pts", "dev/shm", "run")
	os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("nameserver 10.0.0.1\n"), 0o644)
	f := &fakeMounter{root: root}
	c, err := openChroot(root, ChrootPlan([]byte("nameserver 192.0.2.53\n")), f, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	if got := read("etc/resolv.conf"); got != "nameserver 192.0.2.53\n" {
		t.Errorf("resolv.conf in the chroot = %q", got)
	}
	if got := read("usr/sbin/policy-rc.d"); got != policyRCD {
		t.Errorf("policy-rc.d = %q", got)
	}
	if len(f.mounted) != len(ChrootPlan(nil).Mounts) {
		t.Errorf("mounted %v, want the plan's %d mounts", f.mounted, len(ChrootPlan(nil).Mounts))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if len(f.mounted) != 0 {
		t.Errorf("left mounted: %v", f.mounted)
	}
	if got := read("etc/resolv.conf"); got != "nameserver 10.0.0.1\n" {
		t.Errorf("original resolv.conf not restored: %q", got)
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/sbin/policy-rc.d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("policy-rc.d left behind: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(root, "*/*.banger-*"))
	more, _ := filepath.Glob(filepath.Join(root, "*/*/*.banger-*"))
	if len(left)+len(more) > 0 {
		t.Errorf("markers left: %v %v", left, more)
	}
}

func TestOpenChrootRefusesNonRootfs(t *testing.T) {
	f := &fakeMounter{}
	if _, err := openChroot(t.TempDir(), ChrootPlan(nil), f, f, nil); err == nil || !strings.Contains(err.Error(), "does not look like a root filesystem") {
		t.Errorf("error = %v", err)
	}
	if _, err := openChroot("/", ChrootPlan(nil), f, f, nil); err == nil {
		t.Error("openChroot(/) accepted")
	}
	if len(f.calls) != 0 {
		t.Errorf("mounted anyway: %v", f.calls)
	}
}

func TestCleanupAfterCrash(t *testing.T) {
	root := fakeRoot(t, "proc", "sys", "dev/pts", "dev/shm", "run", "mnt/with space")
	f := &fakeMounter{root: root}
	// A crashed run (of an earlier version, which bound the host's /dev):
	// everything applied, nothing undone, plus a mount a script made
	// inside, and mounts that are not ours.
	e := &mountExec{m: f, root: root}
	if err := e.apply(sampleMounts); err != nil {
		t.Fatal(err)
	}
	f.mounted = append(f.mounted, filepath.Join(root, "mnt/with space"), root, root+"-sibling/proc", "/other")
	f.pids = []int{4242} // a process left running in the root
	for _, tf := range ChrootPlan([]byte("x")).Files {
		if err := placeFile(root, tf); err != nil {
			t.Fatal(err)
		}
	}
	f.calls = nil

	if err := cleanup(f, f, root, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kill 4242",
		// deepest first; at equal depth the latest mounted first
		"umount /mnt/with space", "umount /dev/shm", "umount /dev/pts", "umount /run", "umount /dev", "umount /sys", "umount /proc",
	}
	if diff := cmp.Diff(want, f.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{root, root + "-sibling/proc", "/other"}, f.mounted); diff != "" {
		t.Errorf("left mounted (-want +got):\n%s", diff)
	}
	for _, p := range []string{"etc/resolv.conf", "usr/sbin/policy-rc.d"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not removed: %v", p, err)
		}
	}
	// Idempotent.
	f.calls = nil
	if err := cleanup(f, f, root, nil); err != nil || len(f.calls) != 0 {
		t.Errorf("second cleanup: %v, calls %v", err, f.calls)
	}
	if err := cleanup(f, f, "/", nil); err == nil {
		t.Error("cleanup of / accepted")
	}
	if err := cleanup(f, f, filepath.Join(root, "missing"), nil); err != nil {
		t.Errorf("cleanup of a missing directory: %v", err)
	}
}

func TestParseMountinfo(t *testing.T) {
	info := []byte(`22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:5 / /tmp/a\040b/proc rw - proc proc rw
31 22 0:6 / /tmp/x\134y rw - tmpfs tmpfs rw
short line
`)
	want := []string{"/", "/tmp/a b/proc", `/tmp/x\y`}
	if diff := cmp.Diff(want, parseMountinfo(info)); diff != "" {
		t.Errorf("parseMountinfo (-want +got):\n%s", diff)
	}
}

func TestResolveInRoot(t *testing.T) {
	root := fakeRoot(t, "usr/lib", "etc/ssl")
	os.Symlink("usr/lib", filepath.Join(root, "lib"))
	os.Symlink("/usr/lib", filepath.Join(root, "abs"))
	os.Symlink("../../../../..", filepath.Join(root, "etc/up"))
	os.Symlink("loop", filepath.Join(root, "loop"))
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "/etc/ssl", want: "/etc/ssl"},
		{in: "/lib/systemd/x", want: "/usr/lib/systemd/x"},
		{in: "/abs/x", want: "/usr/lib/x"},
		{in: "/etc/up/etc/passwd", want: "/etc/passwd"},
		{in: "/../../etc", want: "/etc"},
		{in: "/missing/a/../b", want: "/missing/b"},
		{in: "/loop", wantErr: "too many symbolic links"},
		{in: "relative", wantErr: "not an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := resolveInRoot(root, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(filepath.Join(root, tt.want), got); diff != "" {
				t.Errorf("resolveInRoot(%s) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestTempFiles(t *testing.T) {
	tests := []struct {
		name     string
		original *string // nil: no file there before
		link     string  // original is a symbolic link to this
	}{
		{name: "replaces a file and restores it", original: ptr("old\n")},
		{name: "creates a file and removes it"},
		{name: "replaces a dangling symbolic link", link: "/run/systemd/resolve/stub-resolv.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeRoot(t)
			p := filepath.Join(root, "etc/resolv.conf")
			switch {
			case tt.original != nil:
				os.WriteFile(p, []byte(*tt.original), 0o600)
			case tt.link != "":
				os.Symlink(tt.link, p)
			}
			f := TempFile{Path: "/etc/resolv.conf", Content: []byte("new\n"), Mode: 0o644}
			// Applying twice (a crash between, say) must still restore the real original.
			for i := 0; i < 2; i++ {
				if err := placeFile(root, f); err != nil {
					t.Fatal(err)
				}
			}
			if b, _ := os.ReadFile(p); string(b) != "new\n" {
				t.Errorf("placed content %q", b)
			}
			if err := restoreFile(root, f.Path); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.original != nil:
				b, _ := os.ReadFile(p)
				fi, _ := os.Stat(p)
				if string(b) != *tt.original || fi.Mode().Perm() != 0o600 {
					t.Errorf("restored %q mode %v", b, fi.Mode())
				}
			case tt.link != "":
				if l, err := os.Readlink(p); err != nil || l != tt.link {
					t.Errorf("symlink not restored: %q %v", l, err)
				}
			default:
				if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("temporary file left: %v", err)
				}
			}
			entries, _ := os.ReadDir(filepath.Join(root, "etc"))
			for _, e := range entries {
				if strings.Contains(e.Name(), "banger") {
					t.Errorf("marker left: %s", e.Name())
				}
			}
			if err := restoreFile(root, f.Path); err != nil {
				t.Errorf("second restore: %v", err)
			}
		})
	}
}

func ptr(s string) *string { return &s }
