package firecracker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// The jailer (docs/jailer.md) runs Firecracker chrooted as an unprivileged
// user, in its own mount namespace and cgroup. Started as
//
//	jailer --id <vm> --exec-file <firecracker> --uid U --gid G
//	       --chroot-base-dir <base> --cgroup-version N --cgroup ...
//	       -- --api-sock /fc.sock
//
// it copies Firecracker into <base>/<exec name>/<vm>/root (the chroot),
// makes /dev/kvm and /dev/net/tun there, moves itself into
// <cgroup root>/<parent cgroup>/<vm>, writes the --cgroup values, chroots,
// drops to U:G and, without --daemonize or --new-pid-ns, execs Firecracker
// in the same process: the PID Launch started is Firecracker's, its stdout
// is still the console log, and its session is the one Launch gave it.
// Everything Firecracker opens through the API is then a path inside the
// chroot, so before starting the jailer the driver hard-links the kernel,
// initrd and disks into the chroot (a hard link shares the disk's blocks:
// writes to the work disk land in the VM's own file) and creates the log
// and metrics files there. A read-only disk (shared by several VMs) is
// linked too, never copied: the jailed user reads it by its mode and
// cannot write it (prepare refuses a read-only disk the daemon's user does
// not own or whose mode lets the jailed user write). A read-only bind mount
// was rejected: it is host mount state to undo after the VM (and after a
// crash, before the jail can be removed), and it would still need the
// same mode bits for the jailed user to read the file. After Firecracker
// exits, the driver removes <base>/<exec name>/<vm> and the VM's cgroup.

// DefaultJailerBin is the jailer the driver runs when Driver.Jailer is set
// and Driver.JailerBin is empty.
const DefaultJailerBin = "jailer"

// DefaultChrootBase is the jailer's default --chroot-base-dir.
const DefaultChrootBase = "/srv/jailer"

// DefaultMemoryOverheadMiB is what the cgroup memory limit allows
// Firecracker beyond the guest's memory (its own code, page tables,
// device buffers).
const DefaultMemoryOverheadMiB = 64

// cpuPeriod is the CFS period the CPU limit is expressed in (100 ms, the
// kernel's default).
const cpuPeriod = 100000

// JailConfig configures the jailer.
type JailConfig struct {
	// UID and GID are the unprivileged user and group Firecracker runs as
	// (docs/prod-host-setup.md: a dedicated user, ideally one per VM).
	UID, GID int
	// ChrootBase is where the jails are built; DefaultChrootBase when
	// empty. It must be on the filesystem of the VMs' disks, which are
	// hard-linked into the jail.
	ChrootBase string
	// CgroupVersion is 1 or 2; 0 detects what /sys/fs/cgroup is.
	CgroupVersion int
	// ParentCgroup places the VMs' cgroups under this path of the
	// hierarchy; the jailer's default (the exec file's name) when empty.
	ParentCgroup string
	// NoCgroupLimits leaves out the CPU and memory limits. Otherwise the
	// VM's cgroup gets Spec.VCPUs CPUs' worth of CPU time and
	// Spec.MemoryMiB + MemoryOverheadMiB of memory.
	NoCgroupLimits bool
	// MemoryOverheadMiB is DefaultMemoryOverheadMiB when 0.
	MemoryOverheadMiB int
	// NetNS is a network namespace (a path such as /var/run/netns/x) the
	// jailer joins before exec'ing Firecracker; the TAP device must be in
	// it. Empty: the daemon's namespace.
	NetNS string
}

func (c JailConfig) chrootBase() string {
	if c.ChrootBase != "" {
		return c.ChrootBase
	}
	return DefaultChrootBase
}

// Names of the files inside a jail's root.
const (
	jailKernel = "vmlinux"
	jailInitrd = "initrd.img"
)

// diskFileName is the name by which Firecracker opens a disk: a link in
// the jail's root, or, without the jailer, in the runtime directory.
func diskFileName(id string) string { return "disk-" + id + ".img" }

// jailLink is one file hard-linked into the jail.
type jailLink struct {
	Src  string // host path
	Name string // name in the jail's root
	// Writable: Firecracker opens it read-write, so the jailed user must
	// own it.
	Writable bool
	// Copyable: when a hard link is impossible (another filesystem), a
	// copy will do (kernel and initrd, never disks).
	Copyable bool
	// State: a file of a saved state (restoreJail), shared read-only
	// like a read-only disk.
	State bool
}

// kind names what a read-only link is, for errors.
func (l jailLink) kind() string {
	if l.State {
		return "saved state"
	}
	return "disk"
}

// jailPlan is the jail of one VM, as data.
type jailPlan struct {
	// Dir is <base>/<exec name>/<vm>: what is removed after exit.
	Dir string
	// Root is Dir/root, the chroot.
	Root  string
	Links []jailLink
	// Files are created empty in Root and given to the jailed user: the
	// log and the metrics.
	Files []string
	// Args is the jailer's command line, without the jailer itself.
	Args []string
	// Cgroup is the VM's cgroup relative to the hierarchy's root.
	Cgroup string
	// Log receives prepare's warnings; nowhere when nil.
	Log *slog.Logger
}

func (p jailPlan) warn(msg string, args ...any) {
	if p.Log != nil {
		p.Log.Warn(msg, args...)
	}
}

// planJail plans the jail of spec for Firecracker binary fcBin.
func planJail(cfg JailConfig, fcBin string, spec hypervisor.Spec, cgroupVersion int) (jailPlan, error) {
	if cfg.UID <= 0 || cfg.GID <= 0 {
		return jailPlan{}, fmt.Errorf("jailer uid %d / gid %d: the jailed Firecracker must not be root: set Jail.UID and Jail.GID to an unprivileged user (the daemon uses vm_user)", cfg.UID, cfg.GID)
	}
	base := cfg.chrootBase()
	if !filepath.IsAbs(base) {
		return jailPlan{}, fmt.Errorf("jail base directory %q is not an absolute path", base)
	}
	if cgroupVersion != 1 && cgroupVersion != 2 {
		return jailPlan{}, fmt.Errorf("cgroup version %d: use 1 or 2", cgroupVersion)
	}
	execName := filepath.Base(fcBin)
	dir := filepath.Join(base, execName, spec.ID)
	p := jailPlan{Dir: dir, Root: filepath.Join(dir, "root")}
	p.Links = append(p.Links, jailLink{Src: spec.Boot.Vmlinux, Name: jailKernel, Copyable: true})
	if spec.Boot.Initrd != "" {
		p.Links = append(p.Links, jailLink{Src: spec.Boot.Initrd, Name: jailInitrd, Copyable: true})
	}
	for _, disk := range spec.Disks {
		p.Links = append(p.Links, jailLink{Src: disk.Path, Name: diskFileName(disk.ID), Writable: !disk.ReadOnly})
	}
	p.Files = []string{LogFile, MetricsFile}

	parent := cfg.ParentCgroup
	if parent == "" {
		parent = execName
	}
	p.Cgroup = filepath.Join(parent, spec.ID)
	args := []string{
		"--id", spec.ID,
		"--exec-file", fcBin,
		"--uid", strconv.Itoa(cfg.UID),
		"--gid", strconv.Itoa(cfg.GID),
		"--chroot-base-dir", base,
		"--cgroup-version", strconv.Itoa(cgroupVersion),
	}
	if cfg.ParentCgroup != "" {
		args = append(args, "--parent-cgroup", cfg.ParentCgroup)
	}
	if cfg.NetNS != "" {
		args = append(args, "--netns", cfg.NetNS)
	}
	if !cfg.NoCgroupLimits {
		overhead := cfg.MemoryOverheadMiB
		if overhead <= 0 {
			overhead = DefaultMemoryOverheadMiB
		}
		quota := spec.VCPUs * cpuPeriod
		mem := int64(spec.MemoryMiB+overhead) << 20
		if cgroupVersion == 2 {
			args = append(args,
				"--cgroup", fmt.Sprintf("cpu.max=%d %d", quota, cpuPeriod),
				"--cgroup", fmt.Sprintf("memory.max=%d", mem),
			)
		} else {
			args = append(args,
				"--cgroup", fmt.Sprintf("cpu.cfs_period_us=%d", cpuPeriod),
				"--cgroup", fmt.Sprintf("cpu.cfs_quota_us=%d", quota),
				"--cgroup", fmt.Sprintf("memory.limit_in_bytes=%d", mem),
			)
		}
	}
	// Firecracker's own arguments; the jailer adds --id.
	args = append(args, "--", "--api-sock", "/"+APISocket)
	p.Args = args
	return p, nil
}

// fcPaths returns the paths Firecracker opens, inside the jail.
func (p jailPlan) fcPaths(spec hypervisor.Spec) fcPaths {
	fp := fcPaths{
		Log:     "/" + LogFile,
		Metrics: "/" + MetricsFile,
		Kernel:  "/" + jailKernel,
		Vsock:   "/" + VsockSocket,
	}
	if spec.Boot.Initrd != "" {
		fp.Initrd = "/" + jailInitrd
	}
	for _, disk := range spec.Disks {
		fp.Disks = append(fp.Disks, "/"+diskFileName(disk.ID))
	}
	return fp
}

// prepare builds the jail's root: a fresh directory with the links and
// files of the plan, owned by the jailed user where Firecracker writes.
// On error it removes what it made.
func (p jailPlan) prepare(cfg JailConfig) (err error) {
	if err := os.RemoveAll(p.Dir); err != nil { // a jail left by a killed VM
		return fmt.Errorf("removing the stale jail %s: %w", p.Dir, err)
	}
	// The jail's directory is root's alone (0700): no other user, and no
	// other process of the jailed user (another VM's QEMU, say), can reach
	// the API and vsock sockets or the disks inside. The chroot itself
	// belongs to the jailed user, as the jailer leaves it, so that
	// Firecracker can create its sockets there.
	if err := os.MkdirAll(filepath.Dir(p.Dir), 0o755); err != nil {
		return fmt.Errorf("creating the jail base %s: %w", filepath.Dir(p.Dir), err)
	}
	if err := os.Mkdir(p.Dir, 0o700); err != nil {
		return fmt.Errorf("creating the jail %s: %w", p.Dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(p.Dir)
		}
	}()
	if err := os.Mkdir(p.Root, 0o700); err != nil {
		return fmt.Errorf("creating the jail %s: %w", p.Root, err)
	}
	if err := os.Chown(p.Root, cfg.UID, cfg.GID); err != nil {
		return fmt.Errorf("giving the jail %s to the jailed user: %w", p.Root, err)
	}
	for _, l := range p.Links {
		dst := filepath.Join(p.Root, l.Name)
		if err := os.Link(l.Src, dst); err != nil {
			if errors.Is(err, unix.EXDEV) && l.State {
				p.warn("the saved state is on another filesystem than the jail: the jail gets a copy, a full read of it at every restore; keep saved states on the filesystem of Jail.ChrootBase", "file", l.Src)
				if err := copyReadOnly(dst, l.Src); err != nil {
					return fmt.Errorf("copying %s into the jail: %w", l.Src, err)
				}
				continue
			}
			if !errors.Is(err, unix.EXDEV) || !l.Copyable {
				if errors.Is(err, unix.EXDEV) {
					return fmt.Errorf("hard-linking %s into the jail %s: they are on different filesystems: put the jail base directory (Jail.ChrootBase) on the filesystem of the VMs' disks", l.Src, p.Root)
				}
				return fmt.Errorf("hard-linking %s into the jail: %w", l.Src, err)
			}
			if err := copyReadOnly(dst, l.Src); err != nil {
				return fmt.Errorf("copying %s into the jail: %w", l.Src, err)
			}
			continue
		}
		if l.State {
			// A saved state as Save leaves it is the daemon's user's,
			// readable by the jailed user's group and writable by no one
			// else: the link is shared by every VM restored from it. One
			// that is not gets a copy of its own, which the jailed user
			// reads and cannot change either.
			err := readOnlyFor(dst, cfg.UID, cfg.GID)
			if err == nil {
				err = readableBy(dst, cfg.UID, cfg.GID)
			}
			if err != nil {
				p.warn("the jail gets a copy of the saved state, a full read of it at every restore: keep the state as Save left it", "file", l.Src, "why", err)
				if err := os.Remove(dst); err != nil {
					return err
				}
				if err := copyReadOnly(dst, l.Src); err != nil {
					return fmt.Errorf("copying %s into the jail: %w", l.Src, err)
				}
			}
			continue
		}
		if l.Writable {
			// The link is the disk itself: the VM's own file, which the
			// jailed Firecracker must be able to write.
			if err := os.Chown(dst, cfg.UID, cfg.GID); err != nil {
				return fmt.Errorf("giving %s to the jailed user: %w", l.Src, err)
			}
			continue
		}
		if !l.Copyable {
			// A read-only disk (an image's root filesystem, which other
			// VMs may share): the link is the file itself, so its mode
			// alone keeps the jailed user from writing it.
			if err := readOnlyFor(dst, cfg.UID, cfg.GID); err != nil {
				return fmt.Errorf("read-only %s %s: %w", l.kind(), l.Src, err)
			}
		}
		if err := readableBy(dst, cfg.UID, cfg.GID); err != nil {
			if !l.Copyable {
				return fmt.Errorf("%s: %w", l.Src, err)
			}
			// The image's kernel and initrd are private to the daemon:
			// the jail gets a copy the jailed user may read, not write.
			if err := os.Remove(dst); err != nil {
				return err
			}
			if err := copyReadOnly(dst, l.Src); err != nil {
				return fmt.Errorf("copying %s into the jail: %w", l.Src, err)
			}
		}
	}
	for _, name := range p.Files {
		path := filepath.Join(p.Root, name)
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			return fmt.Errorf("creating %s: %w", path, err)
		}
		if err := os.Chown(path, cfg.UID, cfg.GID); err != nil {
			return fmt.Errorf("giving %s to the jailed user: %w", path, err)
		}
	}
	return nil
}

// readableBy checks that uid:gid may read path, by its mode bits.
func readableBy(path string, uid, gid int) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	mode := st.Mode
	switch {
	case int(st.Uid) == uid && mode&unix.S_IRUSR != 0,
		int(st.Gid) == gid && mode&unix.S_IRGRP != 0,
		mode&unix.S_IROTH != 0:
		return nil
	}
	return fmt.Errorf("the jailed user %d:%d cannot read it (owner %d:%d, mode %#o): make it world-readable or owned by that user", uid, gid, st.Uid, st.Gid, mode&0o777)
}

// readOnlyFor checks that uid:gid may not write path, by its mode bits,
// and that the daemon's user owns it (so the jailed user cannot make it
// writable, and giveBackLinks never changes its owner).
func readOnlyFor(path string, uid, gid int) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	mode := st.Mode
	switch {
	case int(st.Uid) != os.Getuid(),
		int(st.Gid) == gid && mode&unix.S_IWGRP != 0,
		mode&unix.S_IWOTH != 0:
		return fmt.Errorf("the jailed user %d:%d could write it (owner %d:%d, mode %#o): it must belong to the daemon's user and be writable by no one else (chmod go-w)", uid, gid, st.Uid, st.Gid, mode&0o777)
	}
	return nil
}

// copyReadOnly copies src to a new file dst that stays the daemon's and
// that everyone may read (0444): the jailed user reads it, cannot change it.
func copyReadOnly(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if err := out.Chmod(0o444); err != nil { // past the umask
		out.Close()
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// jailOf returns the jail directory (<base>/<exec name>/<vm>) of a VM whose
// API socket is sock, when sock is in a jail under base; else "".
func jailOf(base, sock string) string {
	root := filepath.Dir(sock)
	rel, err := filepath.Rel(base, root)
	if err != nil {
		return ""
	}
	parts := strings.Split(rel, string(filepath.Separator))
	if len(parts) != 3 || parts[2] != "root" || parts[0] == ".." || parts[0] == "." {
		return ""
	}
	return filepath.Join(base, parts[0], parts[1])
}

// removeJail removes a jail and the VM's cgroup. The cgroup is found under
// every hierarchy the jailer may have used: the unified one (v2) or the
// controllers' (v1).
func removeJail(dir, parentCgroup string) error {
	id := filepath.Base(dir)
	if parentCgroup == "" {
		parentCgroup = filepath.Base(filepath.Dir(dir))
	}
	cg := filepath.Join(parentCgroup, id)
	candidates := []string{filepath.Join("/sys/fs/cgroup", cg), filepath.Join("/sys/fs/cgroup/unified", cg)}
	if more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", cg)); len(more) > 0 {
		candidates = append(candidates, more...)
	}
	for _, c := range candidates {
		os.Remove(c) // a cgroup directory goes with rmdir once empty
	}
	giveBackLinks(filepath.Join(dir, "root"))
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing the jail %s: %w", dir, err)
	}
	return nil
}

// detectCgroupVersion returns 2 when /sys/fs/cgroup is the unified
// hierarchy, else 1.
func detectCgroupVersion() int {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return 2
	}
	return 1
}

// giveBackLinks returns to the daemon's user the files the jail shares
// with the VM's directory (hard links: the writable disks, given to the
// jailed user by prepare), so that once the VM is stopped the VM user owns
// nothing of it. Only regular files are touched, never through a link.
func giveBackLinks(root string) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	uid, gid := os.Getuid(), os.Getgid()
	for _, e := range ents {
		p := filepath.Join(root, e.Name())
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink < 2 || int(st.Uid) == uid {
			continue
		}
		os.Lchown(p, uid, gid)
	}
}
