package buildsandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// What the init does inside the sandbox, after pivot_root, is planned as
// data (a list of steps) and carried out by one executor (exec.go), so the
// sandbox's shape is unit-testable without namespaces. Paths are inside
// the new root: nothing in the plan names a host path.

// op is what a step does.
type op string

const (
	opMkdir    op = "mkdir"     // create Path (Mode) unless a directory is there
	opMount    op = "mount"     // mount Source (FSType, Flags, Data) at Path
	opReadOnly op = "read-only" // bind Path onto itself and make the bind read-only; skipped when Path is absent
	opMask     op = "mask"      // hide Path: /dev/null over a file, an empty read-only tmpfs over a directory; skipped when absent
	opMknod    op = "mknod"     // make character device Major:Minor at Path with Mode
	opSymlink  op = "symlink"   // make Path a symbolic link to Target
	opHostname op = "hostname"  // set the UTS namespace's hostname to Target
)

// step is one action of the sandbox's setup. Which fields matter depends
// on Op.
type step struct {
	Op     op
	Path   string
	Source string
	FSType string
	Flags  uintptr
	Data   string
	Mode   uint32
	Major  uint32
	Minor  uint32
	Target string // symlink: the link's target; hostname: the name
}

func (s step) String() string {
	switch s.Op {
	case opMount:
		return fmt.Sprintf("mount %s on %s", s.FSType, s.Path)
	case opMknod:
		return fmt.Sprintf("mknod %s c %d %d", s.Path, s.Major, s.Minor)
	case opSymlink:
		return fmt.Sprintf("symlink %s -> %s", s.Path, s.Target)
	case opHostname:
		return "set hostname " + s.Target
	}
	return fmt.Sprintf("%s %s", s.Op, s.Path)
}

// Devices are the device nodes a build's /dev holds: the ones programs
// expect to exist and none that reaches hardware.
var Devices = []struct {
	Name         string
	Major, Minor uint32
}{
	{"null", 1, 3},
	{"zero", 1, 5},
	{"full", 1, 7},
	{"random", 1, 8},
	{"urandom", 1, 9},
	{"tty", 5, 0},
}

// maskedPaths are hidden from the build: they expose the host's kernel
// memory, keys, timing and hardware (the same list container runtimes
// mask).
var maskedPaths = []string{
	"/proc/acpi",
	"/proc/asound",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/sys/devices/virtual/powercap",
	"/sys/firmware",
}

// readOnlyPaths are kernel interfaces a root process could write to change
// the host: sysctls (kernel.core_pattern and kernel.modprobe run programs
// on the host), SysRq, interrupt affinity, bus and filesystem settings.
var readOnlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// DefaultHostname is the sandbox's hostname when the caller names none.
const DefaultHostname = "banger-build"

// maxHostname is the kernel's limit; a longer name (an image's) is cut.
const maxHostname = 64

// Plan returns what the init does after pivot_root: a /proc of the
// sandbox's own PID namespace, a read-only /sys, a minimal /dev on tmpfs
// (Devices, a private devpts, /dev/shm and the usual links), the masks and
// read-only binds over the kernel's host-wide interfaces, and the
// hostname (DefaultHostname when empty, cut to the kernel's 64 bytes).
func Plan(hostname string) []step {
	if hostname == "" {
		hostname = DefaultHostname
	}
	if len(hostname) > maxHostname {
		hostname = hostname[:maxHostname]
	}
	const hardened = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	plan := []step{
		{Op: opMkdir, Path: "/proc", Mode: 0o555},
		{Op: opMount, Source: "proc", Path: "/proc", FSType: "proc", Flags: hardened},
		{Op: opMkdir, Path: "/sys", Mode: 0o555},
		{Op: opMount, Source: "sysfs", Path: "/sys", FSType: "sysfs", Flags: hardened | unix.MS_RDONLY},
		{Op: opMkdir, Path: "/dev", Mode: 0o755},
		{Op: opMount, Source: "tmpfs", Path: "/dev", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "mode=0755,size=1m,nr_inodes=4k"},
	}
	for _, d := range Devices {
		plan = append(plan, step{Op: opMknod, Path: "/dev/" + d.Name, Major: d.Major, Minor: d.Minor, Mode: 0o666})
	}
	plan = append(plan,
		step{Op: opMkdir, Path: "/dev/pts", Mode: 0o755},
		step{Op: opMount, Source: "devpts", Path: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		step{Op: opSymlink, Path: "/dev/ptmx", Target: "pts/ptmx"},
		step{Op: opMkdir, Path: "/dev/shm", Mode: 0o1777},
		step{Op: opMount, Source: "tmpfs", Path: "/dev/shm", FSType: "tmpfs", Flags: hardened, Data: "mode=1777"},
		step{Op: opSymlink, Path: "/dev/fd", Target: "/proc/self/fd"},
		step{Op: opSymlink, Path: "/dev/stdin", Target: "/proc/self/fd/0"},
		step{Op: opSymlink, Path: "/dev/stdout", Target: "/proc/self/fd/1"},
		step{Op: opSymlink, Path: "/dev/stderr", Target: "/proc/self/fd/2"},
	)
	for _, p := range maskedPaths {
		plan = append(plan, step{Op: opMask, Path: p})
	}
	for _, p := range readOnlyPaths {
		plan = append(plan, step{Op: opReadOnly, Path: p})
	}
	return append(plan, step{Op: opHostname, Target: hostname})
}
