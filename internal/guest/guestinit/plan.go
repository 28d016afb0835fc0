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
	Optional   bool   // load-module, install: a failure is logged, not fatal
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
	steps = append(steps,
		step{Op: opWaitDevice, Path: root, Timeout: wait},
		step{Op: opMkdir, Path: newRoot},
		step{Op: opMount, Source: root, Path: newRoot, FSType: fstype, Flags: flags, Data: rootflags},
	)
	if in.Payload {
		steps = append(steps, payloadSteps()...)
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

// payloadSteps hand the host's boot payload to the booted system. This
// init is the daemon's own banger-agent (the payload archive replaced the
// image's /init), so it first installs itself as the rootfs's agent: the
// VM runs the agent that speaks the daemon's protocol whatever banger
// built its image. A read-only root keeps the image's agent (logged).
// Then it mounts the new root's /run (systemd keeps a /run that is
// already mounted) and copies the payload there, readable by root only;
// the agent takes it from bootpayload.StageDir.
func payloadSteps() []step {
	const nosuid = unix.MS_NOSUID | unix.MS_NODEV
	run := newRoot + "/run"
	stage := newRoot + bootpayload.StageDir
	return []step{
		{Op: opInstall, Source: InitPath, Path: newRoot + AgentPath, Mode: 0o755, Optional: true},
		{Op: opMkdir, Path: run},
		{Op: opMount, Source: "tmpfs", Path: run, FSType: "tmpfs", Flags: nosuid, Data: "mode=0755"},
		{Op: opMkdir, Path: path.Dir(stage), Mode: 0o700},
		{Op: opMkdir, Path: stage, Mode: 0o700},
		{Op: opInstall, Source: path.Join(bootpayload.ArchiveDir, bootpayload.KeyFile), Path: path.Join(stage, bootpayload.KeyFile), Mode: 0o600},
		{Op: opInstall, Source: path.Join(bootpayload.ArchiveDir, bootpayload.PayloadFile), Path: path.Join(stage, bootpayload.PayloadFile), Mode: 0o600},
	}
}
