package guestinit

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentimage"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
	"golang.org/x/sys/unix"
)

// The boot is planned as data (a list of steps) and carried out by one
// executor (exec.go), so what Init does for a given command line and
// modules file is unit-testable without a VM.

// op is what a step does.
type op string

const (
	opMkdir          op = "mkdir"           // create Path with Mode (0755 when zero; an existing directory is fine)
	opInstall        op = "install"         // copy Source to Path with Mode, unless Path holds the same bytes
	opMount          op = "mount"           // mount Source (FSType, Flags, Data) at Path
	opLoadModule     op = "load-module"     // finit_module(Path)
	opWaitDevice     op = "wait-device"     // poll until Path exists, at most Timeout
	opMoveMount      op = "move-mount"      // mount --move Source Path
	opCleanInitramfs op = "clean-initramfs" // delete the initramfs' files, except Path
	opSwitchRoot     op = "switch-root"     // chdir Path, mount --move . /, chroot .
	opExec           op = "exec"            // exec the first of Candidates that runs
	opGrowFS         op = "grow-fs"         // grow the ext4 mounted at Path to fill its disk Source
)

// step is one action of the boot. Which fields matter depends on Op.
type step struct {
	Op         op
	Path       string
	Source     string
	FSType     string
	Flags      uintptr
	Data       string
	Module     string // load-module: the module's name, for messages
	What       string // wait-device, mount: the role (root, lower, upper, overlay), for messages
	Optional   bool   // load-module, install, grow-fs: a failure is logged, not fatal
	Mode       uint32 // mkdir, install: permission bits
	Timeout    time.Duration
	Candidates []string // exec: init programs, tried in order
	Args       []string // exec: arguments after argv[0]
	Env        []string // exec: environment
}

const (
	newRoot = "/newroot"
	// rootWait bounds how long Init waits for the root device, unless
	// banger.rootwait=<seconds> says otherwise. Modules load synchronously
	// before the wait, so the device normally exists at once; the bound
	// covers asynchronous probing on slow (emulated) CPUs.
	rootWait = 10 * time.Second
	// defaultInit and fallbackInit are tried in this order unless init= is
	// given; fallbackInit helps images without systemd-sysv's /sbin/init.
	defaultInit  = "/sbin/init"
	fallbackInit = "/lib/systemd/systemd"
	defaultRoot  = "/dev/vda"
	defaultFS    = "ext4"
)

// The overlay root (banger.rootfs=overlay). The root device (root=) is
// the overlay's read-only lower layer; the upper disk (banger.upper=,
// default /dev/vdc, ext4) holds the upper and work directories. Both
// are mounted in the initramfs first and moved, once the overlay is
// mounted, to RootfsDir/lower and RootfsDir/upper in the booted system,
// so the guest (and systemd at shutdown) sees them.
//
// The image's /etc/fstab entry for / ("/dev/vda / ext4
// defaults,errors=remount-ro 0 1", written by imagebuild) is harmless on
// an overlay root: systemd-fsck-root only runs on a read-only root;
// systemd-remount-fs runs "mount -o remount /", which overlayfs accepts
// and ignores through mount(2) and, on banger's 6.1 kernel (overlay there
// still takes the legacy mount data), through the new mount API too
// (TestInitBootOverlay checks both). Kernels from 6.5 on refuse option
// changes through the new API ("No changes allowed in reconfigure"),
// which makes systemd-remount-fs fail, harmlessly, with a util-linux of
// 2.39 or later (Debian 13); / stays read-write because Init mounts it rw.
// The errors=remount-ro wish is kept on the upper disk (upperOptions).
// df / shows the upper disk: overlayfs reports its upper's statfs.
//
// At power off systemd unmounts RootfsDir/upper but the overlay keeps its
// own reference to the upper file system, which stays mounted read-write
// to the end: its data is synced (systemd-shutdown syncs, and remounting
// / read-only syncs the upper), and the next mount replays the ext4
// journal. Nothing on the host reads the upper disk (SPEC §8).
const (
	rootfsOverlay = "overlay"
	defaultUpper  = "/dev/vdc"
	lowerMount    = "/lower"
	upperMount    = "/upper"
	// UpperDir and WorkDir are the overlay's directories on the upper
	// disk; Init creates them when missing (a blank disk's first boot).
	UpperDir = "upper"
	WorkDir  = "work"
	// RootfsDir is where the booted system finds the overlay's layers:
	// RootfsDir/lower (the image's root, read-only) and RootfsDir/upper
	// (the VM's upper disk; its UpperDir holds what the VM changed).
	RootfsDir = "/run/banger/rootfs"
	// OverlayOptions are the overlay's options besides the layers:
	// index=off, because an inode index ties the upper to one lower by
	// file handles and nothing here needs hard-link or NFS-export
	// consistency across copy-up; xino=auto, because lower and upper are
	// different file systems, and without xino st_dev and st_ino of files
	// change on copy-up (find -xdev, du -x, tar and git's index notice);
	// redirect_dir=on, so renaming a directory of the image works like
	// on ext4 instead of failing with EXDEV (the lower never changes and
	// only the guest's kernel reads the upper, so redirects are safe).
	// metacopy stays off (the kernel's default): a chmod copies the file.
	OverlayOptions = "index=off,xino=auto,redirect_dir=on"
	// upperOptions: an ext4 error on the upper disk makes / read-only,
	// as the image's fstab asks for its root (errors=remount-ro).
	upperOptions = "errors=remount-ro"
)

// earlyPlan mounts the kernel filesystems the rest of the boot reads from:
// /proc (the command line), /sys and /dev (the root device node).
func earlyPlan() []step {
	const nosuid = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	return []step{
		{Op: opMkdir, Path: "/proc"},
		{Op: opMount, Source: "proc", Path: "/proc", FSType: "proc", Flags: nosuid},
		{Op: opMkdir, Path: "/sys"},
		{Op: opMount, Source: "sysfs", Path: "/sys", FSType: "sysfs", Flags: nosuid},
		{Op: opMkdir, Path: "/dev"},
		{Op: opMount, Source: "devtmpfs", Path: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
	}
}

// bootInput is everything the boot plan depends on.
type bootInput struct {
	Cmdline string   // /proc/cmdline
	Modules []byte   // ModulesFile's contents; nil when the initramfs has none
	Release string   // the running kernel's release (uname -r)
	Args    []string // init's own arguments (argv[1:]), handed on to the real init
	Env     []string // init's environment, handed on to the real init
	// Payload: the initramfs carries a boot payload from the host
	// (internal/shared/bootpayload), so this init is the daemon's.
	Payload bool
}

// bootPlan computes the steps from the module loads to the exec of the
// real init.
func bootPlan(in bootInput) ([]step, error) {
	c := parseCmdline(in.Cmdline)
	var steps []step

	if in.Modules != nil {
		release, mods, err := ParseModules(in.Modules)
		if err != nil {
			return nil, err
		}
		if len(mods) > 0 && release != in.Release {
			return nil, fmt.Errorf("the initramfs holds modules for kernel %s but the running kernel is %s; boot the kernel the initramfs was built for, or rebuild the initramfs", release, in.Release)
		}
		for _, m := range mods {
			steps = append(steps, step{
				Op:       opLoadModule,
				Path:     path.Join("/lib/modules", release, m.Path),
				Module:   m.Name(),
				Optional: m.Optional,
			})
		}
	}

	root, ok := c.value("root")
	if !ok || root == "" {
		root = defaultRoot
	}
	if !strings.HasPrefix(root, "/dev/") {
		return nil, fmt.Errorf("root=%s is not supported: banger's init has no udev to resolve it; pass the device node, e.g. root=/dev/vda", root)
	}
	fstype, ok := c.value("rootfstype")
	if !ok || fstype == "" {
		fstype = defaultFS
	}
	rootflags, _ := c.value("rootflags")
	var flags uintptr
	if c.last("ro", "rw") == "ro" {
		flags |= unix.MS_RDONLY
	}
	wait := rootWait
	if v, ok := c.value("banger.rootwait"); ok {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 1 || secs > 3600 {
			return nil, fmt.Errorf("banger.rootwait=%s: want whole seconds from 1 to 3600", v)
		}
		wait = time.Duration(secs) * time.Second
	}
	overlay := false
	switch v, ok := c.value("banger.rootfs"); {
	case !ok:
	case v == rootfsOverlay:
		overlay = true
	default:
		return nil, fmt.Errorf("banger.rootfs=%s: want banger.rootfs=overlay, or leave it out to boot the root device read-write", v)
	}
	upper, hasUpper := c.value("banger.upper")
	switch {
	case hasUpper && !overlay:
		return nil, fmt.Errorf("banger.upper=%s needs banger.rootfs=overlay on the kernel command line", upper)
	case !hasUpper || upper == "":
		upper = defaultUpper
	}
	if overlay && (!strings.HasPrefix(upper, "/dev/") || upper == root) {
		return nil, fmt.Errorf("banger.upper=%s: want the upper disk's device node other than root=%s, e.g. banger.upper=/dev/vdc", upper, root)
	}

	if !overlay {
		steps = append(steps,
			step{Op: opWaitDevice, Path: root, Timeout: wait, What: "root"},
			step{Op: opMkdir, Path: newRoot},
			step{Op: opMount, Source: root, Path: newRoot, FSType: fstype, Flags: flags, Data: rootflags, What: "root"},
		)
		if in.Payload {
			steps = append(steps, installAgentStep())
			steps = append(steps, runSteps()...)
			steps = append(steps, payloadSteps()...)
		}
	} else {
		steps = append(steps, overlaySteps(root, fstype, rootflags, upper, flags, wait)...)
		if in.Payload {
			steps = append(steps, installAgentStep())
		}
		steps = append(steps, runSteps()...)
		rootfs := newRoot + RootfsDir
		steps = append(steps,
			step{Op: opMkdir, Path: rootfs, Mode: 0o700},
			step{Op: opMkdir, Path: rootfs + "/lower"},
			step{Op: opMkdir, Path: rootfs + "/upper"},
			step{Op: opMoveMount, Source: lowerMount, Path: rootfs + "/lower"},
			step{Op: opMoveMount, Source: upperMount, Path: rootfs + "/upper"},
		)
		if in.Payload {
			steps = append(steps, payloadSteps()...)
		}
	}
	for _, fs := range []string{"/dev", "/proc", "/sys"} {
		steps = append(steps, step{Op: opMoveMount, Source: fs, Path: newRoot + fs})
	}

	candidates := []string{defaultInit, fallbackInit}
	if init, ok := c.value("init"); ok && init != "" {
		candidates = []string{init}
		if init == defaultInit {
			candidates = append(candidates, fallbackInit)
		}
	}
	steps = append(steps,
		step{Op: opCleanInitramfs, Path: newRoot},
		step{Op: opSwitchRoot, Path: newRoot},
		step{Op: opExec, Candidates: candidates, Args: in.Args, Env: in.Env},
	)
	return steps, nil
}

// AgentPath is where images carry banger-agent, the program systemd runs
// as the guest agent.
const AgentPath = agentimage.InstallPath

// overlaySteps mount the root device read-only at lowerMount and the
// upper disk read-write at upperMount, create the upper and work
// directories when missing, and mount the overlay at newRoot (ro when
// the command line says ro, as a plain root would be).
func overlaySteps(root, fstype, rootflags, upper string, flags uintptr, wait time.Duration) []step {
	upperDir := path.Join(upperMount, UpperDir)
	workDir := path.Join(upperMount, WorkDir)
	return []step{
		{Op: opWaitDevice, Path: root, Timeout: wait, What: "root"},
		{Op: opWaitDevice, Path: upper, Timeout: wait, What: "upper"},
		{Op: opMkdir, Path: lowerMount},
		{Op: opMount, Source: root, Path: lowerMount, FSType: fstype, Flags: unix.MS_RDONLY, Data: rootflags, What: "lower"},
		{Op: opMkdir, Path: upperMount},
		{Op: opMount, Source: upper, Path: upperMount, FSType: defaultFS, Data: upperOptions, What: "upper"},
		// The host extends the upper disk's file to the VM's size but
		// never resizes its file system (internal/guest/growfs).
		{Op: opGrowFS, Path: upperMount, Source: upper, What: "upper", Optional: true},
		{Op: opMkdir, Path: upperDir},
		{Op: opMkdir, Path: workDir},
		{Op: opMkdir, Path: newRoot},
		{Op: opMount, Source: "overlay", Path: newRoot, FSType: "overlay", Flags: flags, What: "overlay",
			Data: "lowerdir=" + lowerMount + ",upperdir=" + upperDir + ",workdir=" + workDir + "," + OverlayOptions},
	}
}

// installAgentStep makes the daemon's init the rootfs's agent: this init
// is the daemon's own banger-agent (the payload archive replaced the
// image's /init), so the VM runs the agent that speaks the daemon's
// protocol whatever banger built its image. A read-only root keeps the
// image's agent (logged).
func installAgentStep() step {
	return step{Op: opInstall, Source: InitPath, Path: newRoot + AgentPath, Mode: 0o755, Optional: true}
}

// runSteps mount the new root's /run (systemd keeps a /run that is
// already mounted) with banger's 0700 directory on it.
func runSteps() []step {
	const nosuid = unix.MS_NOSUID | unix.MS_NODEV
	run := newRoot + "/run"
	return []step{
		{Op: opMkdir, Path: run},
		{Op: opMount, Source: "tmpfs", Path: run, FSType: "tmpfs", Flags: nosuid, Data: "mode=0755"},
		{Op: opMkdir, Path: path.Dir(newRoot + bootpayload.StageDir), Mode: 0o700},
	}
}

// payloadSteps copy the host's boot payload to the new root's /run
// (runSteps), readable by root only; the agent takes it from
// bootpayload.StageDir.
func payloadSteps() []step {
	stage := newRoot + bootpayload.StageDir
	return []step{
		{Op: opMkdir, Path: stage, Mode: 0o700},
		{Op: opInstall, Source: path.Join(bootpayload.ArchiveDir, bootpayload.KeyFile), Path: path.Join(stage, bootpayload.KeyFile), Mode: 0o600},
		{Op: opInstall, Source: path.Join(bootpayload.ArchiveDir, bootpayload.PayloadFile), Path: path.Join(stage, bootpayload.PayloadFile), Mode: 0o600},
	}
}
