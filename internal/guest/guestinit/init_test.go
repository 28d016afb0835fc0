package guestinit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guest/growfs"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"console=ttyS0 root=/dev/vda panic=-1", []string{"console=ttyS0", "root=/dev/vda", "panic=-1"}},
		{"  a   b\n", []string{"a", "b"}},
		{`x="a b" "y=c d" e`, []string{"x=a b", "y=c d", "e"}},
		{"root=/dev/vda ro -- single root=/dev/vdb", []string{"root=/dev/vda", "ro"}},
		{"a --b c", []string{"a", "--b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseCmdline(tt.in).words); diff != "" {
				t.Errorf("words (-want +got):\n%s", diff)
			}
		})
	}

	c := parseCmdline("root=/dev/vda rw init=/bin/sh root=/dev/vdb ro rootflags= x")
	if v, ok := c.value("root"); v != "/dev/vdb" || !ok {
		t.Errorf("value(root) = %q, %v; want the last one, /dev/vdb", v, ok)
	}
	if v, ok := c.value("rootflags"); v != "" || !ok {
		t.Errorf("value(rootflags) = %q, %v; want empty but present", v, ok)
	}
	if _, ok := c.value("x"); ok {
		t.Error("value(x): a bare word is not a key=value parameter")
	}
	if got := c.last("ro", "rw"); got != "ro" {
		t.Errorf("last(ro, rw) = %q, want ro", got)
	}
	if got := c.last("quiet"); got != "" {
		t.Errorf("last(quiet) = %q, want none", got)
	}
}

func TestModulesFile(t *testing.T) {
	mods := []Module{
		{Path: "kernel/drivers/virtio/virtio_ring.ko"},
		{Path: "kernel/drivers/block/virtio_blk.ko.xz"},
		{Path: "kernel/net/vmw_vsock/vsock.ko", Optional: true},
	}
	data := FormatModules("6.1.0-56-cloud-amd64", mods)
	wantText := "# release 6.1.0-56-cloud-amd64\nkernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/block/virtio_blk.ko.xz\nkernel/net/vmw_vsock/vsock.ko optional\n"
	if diff := cmp.Diff(wantText, string(data)); diff != "" {
		t.Errorf("FormatModules (-want +got):\n%s", diff)
	}
	release, got, err := ParseModules(data)
	if err != nil || release != "6.1.0-56-cloud-amd64" {
		t.Fatalf("ParseModules = %q, %v", release, err)
	}
	if diff := cmp.Diff(mods, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	var names []string
	for _, m := range got {
		names = append(names, m.Name())
	}
	if diff := cmp.Diff([]string{"virtio_ring", "virtio_blk", "vsock"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}

	bad := []struct{ name, in, errSub string }{
		{"empty", "", `first line must be "# release <kernel release>"`},
		{"no release line", "kernel/a.ko\n", "first line must be"},
		{"unknown flag", "# release r\nkernel/a.ko sometimes\n", `line 2: "kernel/a.ko sometimes"`},
		{"absolute", "# release r\n/lib/a.ko\n", "must be clean and relative to /lib/modules/r/"},
		{"escapes", "# release r\n../a.ko\n", "must be clean and relative"},
		{"unclean", "# release r\nkernel//a.ko\n", "must be clean and relative"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseModules([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error = %v, want one containing %q", err, tt.errSub)
			}
		})
	}
	_, got, err = ParseModules([]byte("# release r\n\n# a comment\nkernel/a.ko\n"))
	if err != nil || len(got) != 1 {
		t.Errorf("comments and blank lines: %v, %v", got, err)
	}
}

func TestIsInit(t *testing.T) {
	tests := []struct {
		argv []string
		pid  int
		want bool
	}{
		{[]string{"/init"}, 1, true},
		{[]string{"/init", "single"}, 1, true}, // the kernel passes unknown words on
		{[]string{"/init", "probe"}, 1, false}, // the KVM probe
		{[]string{"/init"}, 42, false},
		{[]string{"/usr/local/lib/banger/banger-agent"}, 1, false},
		{[]string{"init"}, 1, false},
		{nil, 1, false},
	}
	for _, tt := range tests {
		if got := IsInit(tt.argv, tt.pid); got != tt.want {
			t.Errorf("IsInit(%q, %d) = %v, want %v", tt.argv, tt.pid, got, tt.want)
		}
	}
}

const (
	nosuid = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	rel    = "6.1.0-56-cloud-amd64"
)

func TestBootPlan(t *testing.T) {
	modules := FormatModules(rel, []Module{
		{Path: "kernel/drivers/virtio/virtio.ko"},
		{Path: "kernel/drivers/char/virtio_console.ko", Optional: true},
	})
	moduleSteps := []step{
		{Op: opLoadModule, Path: "/lib/modules/" + rel + "/kernel/drivers/virtio/virtio.ko", Module: "virtio"},
		{Op: opLoadModule, Path: "/lib/modules/" + rel + "/kernel/drivers/char/virtio_console.ko", Module: "virtio_console", Optional: true},
	}
	tail := func(root, fstype string, flags uintptr, data string, candidates []string, args, env []string) []step {
		return []step{
			{Op: opWaitDevice, Path: root, Timeout: 10 * time.Second, What: "root"},
			{Op: opMkdir, Path: "/newroot"},
			{Op: opMount, Source: root, Path: "/newroot", FSType: fstype, Flags: flags, Data: data, What: "root"},
			{Op: opMoveMount, Source: "/dev", Path: "/newroot/dev"},
			{Op: opMoveMount, Source: "/proc", Path: "/newroot/proc"},
			{Op: opMoveMount, Source: "/sys", Path: "/newroot/sys"},
			{Op: opCleanInitramfs, Path: "/newroot"},
			{Op: opSwitchRoot, Path: "/newroot"},
			{Op: opExec, Candidates: candidates, Args: args, Env: env},
		}
	}
	defaultInits := []string{"/sbin/init", "/lib/systemd/systemd"}
	env := []string{"HOME=/", "TERM=linux"}

	tests := []struct {
		name    string
		in      bootInput
		want    []step
		wantErr string
	}{
		{
			name: "defaults: /dev/vda, ext4, rw, /sbin/init then systemd",
			in:   bootInput{Cmdline: "console=ttyS0 panic=-1", Modules: modules, Release: rel, Env: env},
			want: append(append([]step{}, moduleSteps...), tail("/dev/vda", "ext4", 0, "", defaultInits, nil, env)...),
		},
		{
			name: "everything from the command line; init's arguments handed on",
			in: bootInput{
				Cmdline: `root=/dev/vdb rootfstype=xfs rootflags="noatime,nodiratime" ro init=/bin/sh`,
				Release: rel, Args: []string{"single"},
			},
			want: tail("/dev/vdb", "xfs", unix.MS_RDONLY, "noatime,nodiratime", []string{"/bin/sh"}, []string{"single"}, nil),
		},
		{
			name: "the last of ro and rw wins",
			in:   bootInput{Cmdline: "ro rw", Release: rel},
			want: tail("/dev/vda", "ext4", 0, "", defaultInits, nil, nil),
		},
		{
			name: "init=/sbin/init keeps the systemd fallback",
			in:   bootInput{Cmdline: "init=/sbin/init", Release: rel},
			want: tail("/dev/vda", "ext4", 0, "", defaultInits, nil, nil),
		},
		{
			name: "an empty modules file list loads nothing whatever its release",
			in:   bootInput{Modules: FormatModules("other", nil), Release: rel},
			want: tail("/dev/vda", "ext4", 0, "", defaultInits, nil, nil),
		},
		{
			name: "banger.rootwait bounds the wait for the root device",
			in:   bootInput{Cmdline: "banger.rootwait=2", Release: rel},
			want: func() []step {
				s := tail("/dev/vda", "ext4", 0, "", defaultInits, nil, nil)
				s[0].Timeout = 2 * time.Second
				return s
			}(),
		},
		{
			name:    "banger.rootwait not a number",
			in:      bootInput{Cmdline: "banger.rootwait=5s", Release: rel},
			wantErr: "banger.rootwait=5s: want whole seconds from 1 to 3600",
		},
		{
			name:    "modules for another kernel",
			in:      bootInput{Modules: modules, Release: "6.9.0-1-amd64"},
			wantErr: "the initramfs holds modules for kernel " + rel + " but the running kernel is 6.9.0-1-amd64; boot the kernel the initramfs was built for, or rebuild the initramfs",
		},
		{
			name:    "a malformed modules file",
			in:      bootInput{Modules: []byte("kernel/a.ko\n"), Release: rel},
			wantErr: `/etc/banger/modules: first line must be "# release <kernel release>", got "kernel/a.ko"; rebuild the initramfs with banger's kernel staging`,
		},
		{
			name:    "root by UUID needs udev",
			in:      bootInput{Cmdline: "root=UUID=1234", Release: rel},
			wantErr: "root=UUID=1234 is not supported: banger's init has no udev to resolve it; pass the device node, e.g. root=/dev/vda",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bootPlan(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v\nwant   %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}

	early := []step{
		{Op: opMkdir, Path: "/proc"},
		{Op: opMount, Source: "proc", Path: "/proc", FSType: "proc", Flags: nosuid},
		{Op: opMkdir, Path: "/sys"},
		{Op: opMount, Source: "sysfs", Path: "/sys", FSType: "sysfs", Flags: nosuid},
		{Op: opMkdir, Path: "/dev"},
		{Op: opMount, Source: "devtmpfs", Path: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
	}
	if diff := cmp.Diff(early, earlyPlan()); diff != "" {
		t.Errorf("early plan (-want +got):\n%s", diff)
	}
}

// fakeInit plays the kernel for Init and records what Init asks of it.
type fakeInit struct {
	pid     int
	release string
	args    []string
	env     []string
	files   map[string]string // readable files; they also exist
	exists  map[string]bool   // paths that exist (directories, devices)
	// appearAfter makes a path exist only after that many Sleep calls.
	appearAfter map[string]int
	// fail maps a recorded call (e.g. "load /lib/...", "exec /sbin/init")
	// to the error it returns.
	fail  map[string]error
	clean func() (int, error)
	grow  growfs.Result // what GrowFS reports (unless it fails)

	now    time.Time
	sleeps int
	calls  []string
}

func (f *fakeInit) record(call string) error {
	f.calls = append(f.calls, call)
	return f.fail[call]
}

func (f *fakeInit) Getpid() int { return f.pid }
func (f *fakeInit) KernelRelease() (string, error) {
	return f.release, nil
}
func (f *fakeInit) Sync() { f.calls = append(f.calls, "sync") }
func (f *fakeInit) PowerOff() error {
	return f.record("poweroff")
}
func (f *fakeInit) Args() []string    { return f.args }
func (f *fakeInit) Environ() []string { return f.env }
func (f *fakeInit) Mkdir(path string, mode os.FileMode) error {
	call := "mkdir " + path
	if mode != 0o755 {
		call += fmt.Sprintf(" %#o", mode)
	}
	if f.exists[path] {
		f.calls = append(f.calls, call)
		return fs.ErrExist
	}
	if err := f.record(call); err != nil {
		return err
	}
	f.exists[path] = true
	return nil
}
func (f *fakeInit) WriteFile(path string, data []byte, mode os.FileMode) error {
	if err := f.record(fmt.Sprintf("write %s %#o", path, mode)); err != nil {
		return err
	}
	f.files[path] = string(data)
	return nil
}
func (f *fakeInit) Mount(source, target, fstype string, flags uintptr, data string) error {
	call := fmt.Sprintf("mount %s %s", source, target)
	if fstype != "" {
		call += " " + fstype
	}
	if flags != 0 {
		call += " " + flagNames(flags)
	}
	if data != "" {
		call += " " + data
	}
	return f.record(call)
}
func (f *fakeInit) Exists(path string) (bool, error) {
	if n, ok := f.appearAfter[path]; ok {
		return f.sleeps >= n, nil
	}
	_, file := f.files[path]
	return file || f.exists[path], nil
}
func (f *fakeInit) ReadFile(path string) ([]byte, error) {
	s, ok := f.files[path]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	return []byte(s), nil
}
func (f *fakeInit) LoadModule(path string) error { return f.record("load " + path) }
func (f *fakeInit) GrowFS(dir, device string) (growfs.Result, error) {
	if err := f.record("grow " + dir + " " + device); err != nil {
		return growfs.Result{}, err
	}
	return f.grow, nil
}
func (f *fakeInit) Now() time.Time { return f.now }
func (f *fakeInit) Sleep(d time.Duration) {
	f.sleeps++
	f.now = f.now.Add(d)
}
func (f *fakeInit) CleanInitramfs(keep string) (int, error) {
	f.calls = append(f.calls, "clean except "+keep)
	if f.clean != nil {
		return f.clean()
	}
	return 3, nil
}
func (f *fakeInit) Chdir(path string) error  { return f.record("chdir " + path) }
func (f *fakeInit) Chroot(path string) error { return f.record("chroot " + path) }
func (f *fakeInit) Exec(path string, argv, env []string) error {
	return f.record(fmt.Sprintf("exec %s argv=%q env=%q", path, argv, env))
}

func flagNames(flags uintptr) string {
	names := []struct {
		bit  uintptr
		name string
	}{
		{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
		{unix.MS_NOEXEC, "noexec"}, {unix.MS_MOVE, "move"},
	}
	var out []string
	for _, n := range names {
		if flags&n.bit != 0 {
			out = append(out, n.name)
			flags &^= n.bit
		}
	}
	if flags != 0 {
		out = append(out, fmt.Sprintf("%#x", flags))
	}
	return strings.Join(out, ",")
}

// newFakeInit is a guest whose initramfs and root disk are all there.
func newFakeInit() *fakeInit {
	return &fakeInit{
		pid:     1,
		release: rel,
		args:    []string{"single"},
		env:     []string{"HOME=/", "TERM=linux"},
		files: map[string]string{
			"/proc/cmdline": "console=ttyS0 root=/dev/vda panic=-1\n",
			ModulesFile: string(FormatModules(rel, []Module{
				{Path: "kernel/drivers/virtio/virtio_ring.ko"},
				{Path: "kernel/drivers/block/virtio_blk.ko"},
				{Path: "kernel/net/vmw_vsock/vsock.ko", Optional: true},
			})),
			"/lib/modules/" + rel + "/kernel/drivers/virtio/virtio_ring.ko": "elf",
			"/lib/modules/" + rel + "/kernel/drivers/block/virtio_blk.ko":   "elf",
			"/lib/modules/" + rel + "/kernel/net/vmw_vsock/vsock.ko":        "elf",
		},
		exists: map[string]bool{
			"/dev": true, "/proc": true, "/sys": true,
			"/newroot/dev": true, "/newroot/proc": true, "/newroot/sys": true,
		},
		appearAfter: map[string]int{"/dev/vda": 2},
		fail:        map[string]error{},
		now:         time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

var (
	earlyCalls = []string{
		"mkdir /proc", "mount proc /proc proc nosuid,nodev,noexec",
		"mkdir /sys", "mount sysfs /sys sysfs nosuid,nodev,noexec",
		"mkdir /dev", "mount devtmpfs /dev devtmpfs nosuid mode=0755",
	}
	loadCalls = []string{
		"load /lib/modules/" + rel + "/kernel/drivers/virtio/virtio_ring.ko",
		"load /lib/modules/" + rel + "/kernel/drivers/block/virtio_blk.ko",
		"load /lib/modules/" + rel + "/kernel/net/vmw_vsock/vsock.ko",
	}
	rootCalls = []string{
		"mkdir /newroot", "mount /dev/vda /newroot ext4",
		"mount /dev /newroot/dev move", "mount /proc /newroot/proc move", "mount /sys /newroot/sys move",
		"clean except /newroot",
		"chdir /newroot", "mount . / move", "chroot .", "chdir /",
	}
	payloadCalls = []string{
		"write /newroot/usr/local/lib/banger/banger-agent 0755",
		"mkdir /newroot/run", "mount tmpfs /newroot/run tmpfs nosuid,nodev mode=0755",
		"mkdir /newroot/run/banger 0700", "mkdir /newroot/run/banger/boot 0700",
		"write /newroot/run/banger/boot/key 0600", "write /newroot/run/banger/boot/payload.json 0600",
	}
	execSbinInit = `exec /sbin/init argv=["/sbin/init" "single"] env=["HOME=/" "TERM=linux"]`
	execSystemd  = `exec /lib/systemd/systemd argv=["/lib/systemd/systemd" "single"] env=["HOME=/" "TERM=linux"]`
	powerOff     = []string{"sync", "poweroff"}
)

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestRunInit(t *testing.T) {
	enoent := unix.ENOENT
	tests := []struct {
		name      string
		setup     func(f *fakeInit)
		wantCalls []string
		wantLog   string // console output
		wantErr   string // "" means Init reached the exec
	}{
		{
			name:      "boots: modules, root, switch, exec",
			wantCalls: concat(earlyCalls, loadCalls, rootCalls, []string{execSbinInit}),
			wantLog:   "banger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\n",
		},
		{
			name: "a boot payload: the agent installed, the payload staged on a tmpfs /run",
			setup: func(f *fakeInit) {
				f.files["/init"] = "daemon's agent"
				f.files["/banger/boot/key"] = "k"
				f.files["/banger/boot/payload.json"] = "{}"
			},
			wantCalls: concat(earlyCalls, loadCalls, rootCalls[:2], payloadCalls, rootCalls[2:], []string{execSbinInit}),
			wantLog:   "banger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\n",
		},
		{
			name: "a boot payload: an agent that is already current is not rewritten",
			setup: func(f *fakeInit) {
				f.files["/init"] = "daemon's agent"
				f.files["/newroot"+AgentPath] = "daemon's agent"
				f.files["/banger/boot/key"] = "k"
				f.files["/banger/boot/payload.json"] = "{}"
			},
			wantCalls: concat(earlyCalls, loadCalls, rootCalls[:2], payloadCalls[1:], rootCalls[2:], []string{execSbinInit}),
			wantLog:   "banger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\n",
		},
		{
			name: "a boot payload on a read-only root: the image's agent stays, the boot goes on",
			setup: func(f *fakeInit) {
				f.files["/init"] = "daemon's agent"
				f.files["/banger/boot/key"] = "k"
				f.files["/banger/boot/payload.json"] = "{}"
				f.fail[payloadCalls[0]] = unix.EROFS
			},
			wantCalls: concat(earlyCalls, loadCalls, rootCalls[:2], payloadCalls, rootCalls[2:], []string{execSbinInit}),
			wantLog: "banger-init: installing /newroot/usr/local/lib/banger/banger-agent: read-only file system; booting on\n" +
				"banger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\n",
		},
		{
			name: "a boot payload that cannot be staged stops the boot",
			setup: func(f *fakeInit) {
				f.files["/init"] = "daemon's agent"
				f.files["/banger/boot/key"] = "k"
				f.files["/banger/boot/payload.json"] = "{}"
				f.fail["mount tmpfs /newroot/run tmpfs nosuid,nodev mode=0755"] = unix.ENOMEM
			},
			wantCalls: concat(earlyCalls, loadCalls, rootCalls[:2], payloadCalls[:3], powerOff),
			wantLog:   "banger-init: mounting tmpfs (tmpfs) at /newroot/run: cannot allocate memory; does the kernel have tmpfs support?\n",
			wantErr:   "mounting tmpfs",
		},
		{
			name: "already loaded modules (EEXIST) are fine",
			setup: func(f *fakeInit) {
				f.fail[loadCalls[0]] = unix.EEXIST
			},
			wantCalls: concat(earlyCalls, loadCalls, rootCalls, []string{execSbinInit}),
			wantLog:   "banger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\n",
		},
		{
			name: "a missing optional module is logged and skipped",
			setup: func(f *fakeInit) {
				delete(f.files, "/lib/modules/"+rel+"/kernel/net/vmw_vsock/vsock.ko")
			},
			wantCalls: concat(earlyCalls, loadCalls[:2], rootCalls, []string{execSbinInit}),
			wantLog: "banger-init: optional module vsock is not in the initramfs (/lib/modules/" + rel + "/kernel/net/vmw_vsock/vsock.ko); skipping it\n" +
				"banger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\n",
		},
		{
			name: "a failing optional module is logged and skipped",
			setup: func(f *fakeInit) {
				f.fail[loadCalls[2]] = unix.ENODEV
			},
			wantCalls: concat(earlyCalls, loadCalls, rootCalls, []string{execSbinInit}),
			wantLog: "banger-init: optional module vsock failed to load: no such device; booting on without it\n" +
				"banger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\n",
		},
		{
			name: "no modules file: nothing loaded",
			setup: func(f *fakeInit) {
				delete(f.files, ModulesFile)
			},
			wantCalls: concat(earlyCalls, rootCalls, []string{execSbinInit}),
			wantLog:   "banger-init: /etc/banger/modules is missing; loading no modules\nbanger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\n",
		},
		{
			name: "no /sbin/init: systemd itself",
			setup: func(f *fakeInit) {
				f.fail[execSbinInit] = enoent
			},
			wantCalls: concat(earlyCalls, loadCalls, rootCalls, []string{execSbinInit, execSystemd}),
			wantLog:   "banger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\nbanger-init: starting /lib/systemd/systemd\n",
		},
		{
			name: "freeing the initramfs fails: boot on",
			setup: func(f *fakeInit) {
				f.clean = func() (int, error) { return 1, errors.New("unlink /x: EBUSY") }
			},
			wantCalls: concat(earlyCalls, loadCalls, rootCalls, []string{execSbinInit}),
			wantLog:   "banger-init: freeing the initramfs (removed 1 entries): unlink /x: EBUSY; booting on\nbanger-init: starting /sbin/init\n",
		},
		{
			name: "no init at all",
			setup: func(f *fakeInit) {
				f.fail[execSbinInit] = enoent
				f.fail[execSystemd] = enoent
			},
			wantCalls: concat(earlyCalls, loadCalls, rootCalls, []string{execSbinInit, execSystemd}, powerOff),
			wantLog: "banger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\nbanger-init: starting /lib/systemd/systemd\n" +
				"banger-init: cannot start an init in the root filesystem (/sbin/init: no such file or directory; /lib/systemd/systemd: no such file or directory); install systemd-sysv in the image or pass init=<program>\n",
			wantErr: "power off returned without switching the machine off",
		},
		{
			name: "root device never appears",
			setup: func(f *fakeInit) {
				f.appearAfter["/dev/vda"] = 1 << 30
				f.fail[loadCalls[2]] = unix.ENODEV
			},
			wantCalls: concat(earlyCalls, loadCalls, powerOff),
			wantLog: "banger-init: optional module vsock failed to load: no such device; booting on without it\n" +
				"banger-init: root device /dev/vda did not appear within 10s; is its driver (e.g. virtio_blk) in /etc/banger/modules and does the VM have that disk? modules loaded: virtio_ring, virtio_blk; failed: vsock\n",
			wantErr: "did not appear within 10s",
		},
		{
			name: "a required module is missing from the initramfs",
			setup: func(f *fakeInit) {
				delete(f.files, "/lib/modules/"+rel+"/kernel/drivers/block/virtio_blk.ko")
			},
			wantCalls: concat(earlyCalls, loadCalls[:1], powerOff),
			wantLog:   "banger-init: module virtio_blk is listed in /etc/banger/modules but /lib/modules/" + rel + "/kernel/drivers/block/virtio_blk.ko is not in the initramfs; rebuild the initramfs\n",
			wantErr:   "is not in the initramfs",
		},
		{
			name: "a required module has an unknown symbol",
			setup: func(f *fakeInit) {
				f.fail[loadCalls[1]] = unix.ENOENT
			},
			wantCalls: concat(earlyCalls, loadCalls[:2], powerOff),
			wantLog:   "banger-init: loading module virtio_blk: no such file or directory (an unknown symbol: a module it depends on is not loaded; list its dependencies before it in /etc/banger/modules)\n",
			wantErr:   "loading module virtio_blk",
		},
		{
			name: "the root filesystem does not mount",
			setup: func(f *fakeInit) {
				f.files["/proc/cmdline"] = "root=/dev/vda rootfstype=xfs ro"
				f.fail["mount /dev/vda /newroot xfs ro"] = unix.EINVAL
			},
			wantCalls: concat(earlyCalls, loadCalls, []string{"mkdir /newroot", "mount /dev/vda /newroot xfs ro"}, powerOff),
			wantLog:   "banger-init: mounting the root device /dev/vda (xfs, ro, rootflags=\"\") at /newroot: invalid argument; check root=, rootfstype= and rootflags= on the kernel command line\n",
			wantErr:   "mounting the root device",
		},
		{
			name: "the root filesystem lacks /proc",
			setup: func(f *fakeInit) {
				delete(f.exists, "/newroot/proc")
			},
			wantCalls: concat(earlyCalls, loadCalls, rootCalls[:3], powerOff),
			wantLog:   "banger-init: the root filesystem has no /proc directory to move /proc to; is root= the right filesystem? (a banger image always has /dev, /proc and /sys)\n",
			wantErr:   "has no /proc directory",
		},
		{
			name: "devtmpfs does not mount",
			setup: func(f *fakeInit) {
				f.fail["mount devtmpfs /dev devtmpfs nosuid mode=0755"] = unix.ENODEV
			},
			wantCalls: concat(earlyCalls, powerOff),
			wantLog:   "banger-init: mounting devtmpfs (devtmpfs) at /dev: no such device; does the kernel have devtmpfs support?\n",
			wantErr:   "mounting devtmpfs",
		},
		{
			name: "power off fails too",
			setup: func(f *fakeInit) {
				f.files["/proc/cmdline"] = "root=LABEL=root"
				f.fail["poweroff"] = unix.EPERM
			},
			wantCalls: concat(earlyCalls, powerOff),
			wantLog:   "banger-init: root=LABEL=root is not supported: banger's init has no udev to resolve it; pass the device node, e.g. root=/dev/vda\n",
			wantErr:   "powering off failed too: operation not permitted",
		},
		{
			name:      "not PID 1: refuses and touches nothing",
			setup:     func(f *fakeInit) { f.pid = 4242 },
			wantCalls: nil,
			wantErr:   "init runs only as PID 1 inside a guest's initramfs (this is PID 4242); refusing to mount or power off anything",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeInit()
			if tt.setup != nil {
				tt.setup(f)
			}
			var console bytes.Buffer
			err := runInit(&console, f)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("runInit: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantCalls, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLog, console.String()); diff != "" {
				t.Errorf("console (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRemoveTree frees a directory tree as Init frees the initramfs,
// keeping the new root.
func TestRemoveTree(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"init", "etc/banger/modules", "lib/modules/r/kernel/a.ko", "newroot/sbin/init", "dev/.keep"} {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/nonexistent", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	n, err := removeTree(root, filepath.Join(root, "newroot"))
	if err != nil {
		t.Fatalf("removeTree: %v", err)
	}
	var left []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		left = append(left, rel)
		return err
	})
	sort.Strings(left)
	if diff := cmp.Diff([]string{".", "newroot", "newroot/sbin", "newroot/sbin/init"}, left); diff != "" {
		t.Errorf("left behind (-want +got):\n%s", diff)
	}
	// init, etc, etc/banger, modules, lib, lib/modules, lib/modules/r,
	// kernel, a.ko, dev, .keep, link
	if n != 12 {
		t.Errorf("removed %d entries, want 12", n)
	}
}
