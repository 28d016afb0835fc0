package guestinit

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guest/growfs"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// overlayPlan is the plan from the root device's wait to the exec for
// banger.rootfs=overlay, with root and upper devices, the overlay's mount
// flags and, when payload, the boot payload's steps.
func overlayPlan(root, upper string, flags uintptr, payload bool) []step {
	const opts = "lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work,index=off,xino=auto,redirect_dir=on"
	s := []step{
		{Op: opWaitDevice, Path: root, Timeout: 10 * time.Second, What: "root"},
		{Op: opWaitDevice, Path: upper, Timeout: 10 * time.Second, What: "upper"},
		{Op: opMkdir, Path: "/lower"},
		{Op: opMount, Source: root, Path: "/lower", FSType: "ext4", Flags: unix.MS_RDONLY, What: "lower"},
		{Op: opMkdir, Path: "/upper"},
		{Op: opMount, Source: upper, Path: "/upper", FSType: "ext4", Data: "errors=remount-ro", What: "upper"},
		{Op: opGrowFS, Path: "/upper", Source: upper, What: "upper", Optional: true},
		{Op: opMkdir, Path: "/upper/upper"},
		{Op: opMkdir, Path: "/upper/work"},
		{Op: opMkdir, Path: "/newroot"},
		{Op: opMount, Source: "overlay", Path: "/newroot", FSType: "overlay", Flags: flags, Data: opts, What: "overlay"},
	}
	if payload {
		s = append(s, step{Op: opInstall, Source: "/init", Path: "/newroot/usr/local/lib/banger/banger-agent", Mode: 0o755, Optional: true})
	}
	s = append(s,
		step{Op: opMkdir, Path: "/newroot/run"},
		step{Op: opMount, Source: "tmpfs", Path: "/newroot/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
		step{Op: opMkdir, Path: "/newroot/run/banger", Mode: 0o700},
		step{Op: opMkdir, Path: "/newroot/run/banger/rootfs", Mode: 0o700},
		step{Op: opMkdir, Path: "/newroot/run/banger/rootfs/lower"},
		step{Op: opMkdir, Path: "/newroot/run/banger/rootfs/upper"},
		step{Op: opMoveMount, Source: "/lower", Path: "/newroot/run/banger/rootfs/lower"},
		step{Op: opMoveMount, Source: "/upper", Path: "/newroot/run/banger/rootfs/upper"},
	)
	if payload {
		s = append(s,
			step{Op: opMkdir, Path: "/newroot/run/banger/boot", Mode: 0o700},
			step{Op: opInstall, Source: "/banger/boot/key", Path: "/newroot/run/banger/boot/key", Mode: 0o600},
			step{Op: opInstall, Source: "/banger/boot/payload.json", Path: "/newroot/run/banger/boot/payload.json", Mode: 0o600},
		)
	}
	return append(s,
		step{Op: opMoveMount, Source: "/dev", Path: "/newroot/dev"},
		step{Op: opMoveMount, Source: "/proc", Path: "/newroot/proc"},
		step{Op: opMoveMount, Source: "/sys", Path: "/newroot/sys"},
		step{Op: opCleanInitramfs, Path: "/newroot"},
		step{Op: opSwitchRoot, Path: "/newroot"},
		step{Op: opExec, Candidates: []string{"/sbin/init", "/lib/systemd/systemd"}},
	)
}

// TestBootPlanOverlay: banger.rootfs=overlay as data. Without the flag
// the plan is today's (TestBootPlan); with it, root= is the lower layer
// and banger.upper= (default /dev/vdc) the upper disk.
func TestBootPlanOverlay(t *testing.T) {
	tests := []struct {
		name    string
		in      bootInput
		want    []step
		wantErr string
	}{
		{
			name: "flag on: vda lower, vdc upper, rw overlay",
			in:   bootInput{Cmdline: "console=ttyS0 root=/dev/vda rw banger.rootfs=overlay", Release: rel},
			want: overlayPlan("/dev/vda", "/dev/vdc", 0, false),
		},
		{
			name: "a custom upper device; ro applies to the overlay, the upper stays rw",
			in:   bootInput{Cmdline: "banger.rootfs=overlay banger.upper=/dev/vdd ro", Release: rel},
			want: overlayPlan("/dev/vda", "/dev/vdd", unix.MS_RDONLY, false),
		},
		{
			name: "an empty banger.upper= means the default",
			in:   bootInput{Cmdline: "banger.rootfs=overlay banger.upper=", Release: rel},
			want: overlayPlan("/dev/vda", "/dev/vdc", 0, false),
		},
		{
			name: "with a boot payload: agent installed into the overlay, payload staged on the same /run",
			in:   bootInput{Cmdline: "root=/dev/vda rw banger.rootfs=overlay", Release: rel, Payload: true},
			want: overlayPlan("/dev/vda", "/dev/vdc", 0, true),
		},
		{
			name: "rootfstype and rootflags apply to the lower layer",
			in:   bootInput{Cmdline: "banger.rootfs=overlay root=/dev/vdb rootfstype=xfs rootflags=nouuid", Release: rel},
			want: func() []step {
				s := overlayPlan("/dev/vdb", "/dev/vdc", 0, false)
				s[3].FSType, s[3].Data = "xfs", "nouuid"
				return s
			}(),
		},
		{
			name: "flag off, root=/dev/vdc: today's plan, banger.upper's default is not in the way",
			in:   bootInput{Cmdline: "root=/dev/vdc", Release: rel},
			want: func() []step {
				p := overlayPlan("/dev/vda", "/dev/vdc", 0, false)
				tail := p[len(p)-6:]
				return append([]step{
					{Op: opWaitDevice, Path: "/dev/vdc", Timeout: 10 * time.Second, What: "root"},
					{Op: opMkdir, Path: "/newroot"},
					{Op: opMount, Source: "/dev/vdc", Path: "/newroot", FSType: "ext4", What: "root"},
				}, tail...)
			}(),
		},
		{
			name:    "an unknown rootfs mode",
			in:      bootInput{Cmdline: "banger.rootfs=overlayfs", Release: rel},
			wantErr: "banger.rootfs=overlayfs: want banger.rootfs=overlay, or leave it out to boot the root device read-write",
		},
		{
			name:    "banger.upper without the flag",
			in:      bootInput{Cmdline: "banger.upper=/dev/vdc", Release: rel},
			wantErr: "banger.upper=/dev/vdc needs banger.rootfs=overlay on the kernel command line",
		},
		{
			name:    "an upper that is not a device node",
			in:      bootInput{Cmdline: "banger.rootfs=overlay banger.upper=LABEL=upper", Release: rel},
			wantErr: "banger.upper=LABEL=upper: want the upper disk's device node other than root=/dev/vda, e.g. banger.upper=/dev/vdc",
		},
		{
			name:    "the upper is the root device",
			in:      bootInput{Cmdline: "banger.rootfs=overlay root=/dev/vdc", Release: rel},
			wantErr: "banger.upper=/dev/vdc: want the upper disk's device node other than root=/dev/vdc, e.g. banger.upper=/dev/vdc",
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
}

// TestRunInitOverlay runs the overlay boot against the recording fake:
// what reaches the kernel, and the one line a failure prints before the
// power off.
func TestRunInitOverlay(t *testing.T) {
	const overlayMount = "mount overlay /newroot overlay lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work,index=off,xino=auto,redirect_dir=on"
	layers := []string{
		"mkdir /lower", "mount /dev/vda /lower ext4 ro",
		"mkdir /upper", "mount /dev/vdc /upper ext4 errors=remount-ro", "grow /upper /dev/vdc",
		"mkdir /upper/upper", "mkdir /upper/work",
		"mkdir /newroot", overlayMount,
	}
	run := []string{
		"mkdir /newroot/run", "mount tmpfs /newroot/run tmpfs nosuid,nodev mode=0755",
		"mkdir /newroot/run/banger 0700", "mkdir /newroot/run/banger/rootfs 0700",
		"mkdir /newroot/run/banger/rootfs/lower", "mkdir /newroot/run/banger/rootfs/upper",
		"mount /lower /newroot/run/banger/rootfs/lower move", "mount /upper /newroot/run/banger/rootfs/upper move",
	}
	rest := []string{
		"mount /dev /newroot/dev move", "mount /proc /newroot/proc move", "mount /sys /newroot/sys move",
		"clean except /newroot",
		"chdir /newroot", "mount . / move", "chroot .", "chdir /",
		execSbinInit,
	}
	const booted = "banger-init: freed the initramfs (3 entries)\nbanger-init: starting /sbin/init\n"
	tests := []struct {
		name      string
		setup     func(f *fakeInit)
		wantCalls []string
		wantLog   string
		wantErr   string
	}{
		{
			name:      "first boot: upper/ and work/ created, overlay mounted, layers moved under /run",
			wantCalls: concat(earlyCalls, loadCalls, layers, run, rest),
			wantLog:   booted,
		},
		{
			name: "a later boot: upper/ and work/ exist",
			setup: func(f *fakeInit) {
				f.exists["/upper/upper"], f.exists["/upper/work"] = true, true
			},
			wantCalls: concat(earlyCalls, loadCalls, layers, run, rest),
			wantLog:   booted,
		},
		{
			name: "a fresh upper disk: its file system grows to fill the disk",
			setup: func(f *fakeInit) {
				f.grow = growfs.Result{Device: "/dev/vdc", Before: 60 << 20, After: 20 << 30, Disk: 20 << 30}
			},
			wantCalls: concat(earlyCalls, loadCalls, layers, run, rest),
			wantLog:   "banger-init: upper disk /dev/vdc: grown from 62914560 to 21474836480 bytes (disk 21474836480 bytes)\n" + booted,
		},
		{
			name: "growing fails: the VM boots with the disk's old size, and the console says why",
			setup: func(f *fakeInit) {
				f.fail["grow /upper /dev/vdc"] = unix.EINVAL
			},
			wantCalls: concat(earlyCalls, loadCalls, layers, run, rest),
			wantLog:   "banger-init: the upper disk keeps its size: invalid argument; booting on\n" + booted,
		},
		{
			name: "no upper disk",
			setup: func(f *fakeInit) {
				f.appearAfter["/dev/vdc"] = 1 << 30
			},
			wantCalls: concat(earlyCalls, loadCalls, powerOff),
			wantLog:   "banger-init: upper disk (banger.rootfs=overlay) /dev/vdc did not appear within 10s; is its driver (e.g. virtio_blk) in /etc/banger/modules and does the VM have that disk? modules loaded: virtio_ring, virtio_blk, vsock\n",
			wantErr:   "did not appear",
		},
		{
			name: "the upper disk is not ext4",
			setup: func(f *fakeInit) {
				f.fail["mount /dev/vdc /upper ext4 errors=remount-ro"] = unix.EINVAL
			},
			wantCalls: concat(earlyCalls, loadCalls, layers[:4], powerOff),
			wantLog:   "banger-init: mounting the upper disk /dev/vdc (ext4, rw) at /upper: invalid argument; banger.rootfs=overlay needs the VM's upper disk formatted ext4 (banger.upper= names it, default /dev/vdc)\n",
			wantErr:   "mounting the upper disk",
		},
		{
			name: "the lower does not mount read-only",
			setup: func(f *fakeInit) {
				f.fail["mount /dev/vda /lower ext4 ro"] = unix.EROFS
			},
			wantCalls: concat(earlyCalls, loadCalls, layers[:2], powerOff),
			wantLog:   "banger-init: mounting the root device /dev/vda read-only as the overlay's lower layer (ext4, rootflags=\"\") at /lower: read-only file system; it must be a clean ext4 file system (check root=, rootfstype= and rootflags=)\n",
			wantErr:   "lower layer",
		},
		{
			name: "no overlay module",
			setup: func(f *fakeInit) {
				f.fail[overlayMount] = unix.ENODEV
			},
			wantCalls: concat(earlyCalls, loadCalls, layers, powerOff),
			wantLog:   "banger-init: mounting the overlay root at /newroot: no such device: this kernel has no overlay file system; the image's initramfs predates banger's overlay support (the image's next heal rebuilds it with the overlay module), or boot without banger.rootfs=overlay\n",
			wantErr:   "no overlay file system",
		},
		{
			name: "the overlay refuses its options",
			setup: func(f *fakeInit) {
				f.fail[overlayMount] = unix.EINVAL
			},
			wantCalls: concat(earlyCalls, loadCalls, layers, powerOff),
			wantLog:   "banger-init: mounting the overlay root (rw, lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work,index=off,xino=auto,redirect_dir=on) at /newroot: invalid argument; the kernel log on the console says why\n",
			wantErr:   "mounting the overlay root",
		},
		{
			name: "the upper disk is read-only: upper/ cannot be made",
			setup: func(f *fakeInit) {
				f.fail["mkdir /upper/upper"] = unix.EROFS
			},
			wantCalls: concat(earlyCalls, loadCalls, layers[:6], powerOff),
			wantLog:   "banger-init: creating /upper/upper: read-only file system\n",
			wantErr:   "creating /upper/upper",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeInit()
			f.files["/proc/cmdline"] = "console=ttyS0 root=/dev/vda rw banger.rootfs=overlay panic=-1\n"
			f.exists["/dev/vdc"] = true
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
