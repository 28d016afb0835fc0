package guestinit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/bangerdev/banger/internal/guest/growfs"
	"github.com/bangerdev/banger/internal/shared/atomicfile"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
	"golang.org/x/sys/unix"
)

// InitPath is argv[0] when the kernel runs banger-agent as the initramfs'
// init.
const InitPath = "/init"

// IsInit reports whether banger-agent was started by the kernel as the
// initramfs' /init: it runs as PID 1 under the name /init. The kernel
// hands init the command-line words it does not know (such as "single") as
// arguments, and Init passes them on to the real init, so arguments do not
// matter here, except "/init probe", which is the KVM probe (IsProbe).
func IsInit(argv []string, pid int) bool {
	return pid == 1 && len(argv) > 0 && argv[0] == InitPath && !IsProbe(argv)
}

// Init is the initramfs' init: it mounts /proc, /sys and /dev, loads the
// modules listed in ModulesFile, waits for the root device named by root=
// (default /dev/vda; at most 10 s, or banger.rootwait=<seconds>), mounts
// it (rootfstype=, rootflags=, ro/rw), moves the kernel filesystems into
// it, deletes the initramfs' files, switches root and executes the real
// init (init=, default /sbin/init, then /lib/systemd/systemd) with init's
// own arguments and environment.
//
// With banger.rootfs=overlay on the command line the root is an overlay:
// the root device is mounted read-only as its lower layer, the upper disk
// (banger.upper=, default /dev/vdc, ext4) read-write, its upper/ and
// work/ directories are created when missing, and the overlay
// (OverlayOptions) becomes the new root; the two layers are moved to
// RootfsDir/lower and RootfsDir/upper on a tmpfs /run. Without the flag
// nothing of this happens.
//
// It never returns on success. On failure it writes one line starting
// with "banger-init: " and naming the cause to console, syncs and powers
// the machine off; it returns only if even that fails (the caller, PID 1,
// then exits and the kernel panics, which with panic=-1 ends the VM too).
// It refuses to run unless the process is PID 1.
func Init(console io.Writer) error {
	return runInit(console, hostSystem{})
}

// initSystem is what Init needs from the kernel. hostSystem is the real
// kernel; tests use a fake that records the calls.
type initSystem interface {
	system
	Args() []string // argv[1:]
	Environ() []string
	Mkdir(path string, mode os.FileMode) error
	// WriteFile replaces path with data (atomically: a temporary file in
	// the same directory, renamed), creating missing parents 0755.
	WriteFile(path string, data []byte, mode os.FileMode) error
	Mount(source, target, fstype string, flags uintptr, data string) error
	Exists(path string) (bool, error)
	ReadFile(path string) ([]byte, error)
	LoadModule(path string) error
	// GrowFS grows the ext4 file system mounted at dir to fill device
	// (growfs.Fill).
	GrowFS(dir, device string) (growfs.Result, error)
	Now() time.Time
	Sleep(d time.Duration)
	// CleanInitramfs deletes the files of the initramfs mounted at /,
	// except keep and other mount points, and reports how many entries it
	// removed. It returns errNotInitramfs, and touches nothing, when / is
	// not a ramfs or tmpfs.
	CleanInitramfs(keep string) (int, error)
	Chdir(path string) error
	Chroot(path string) error
	Exec(path string, argv, env []string) error
}

var errNotInitramfs = errors.New("/ is not a ramfs or tmpfs")

// devicePoll is how often Init looks for the root device.
const devicePoll = 50 * time.Millisecond

func runInit(console io.Writer, sys initSystem) error {
	if pid := sys.Getpid(); pid != 1 {
		return fmt.Errorf("guestinit: init runs only as PID 1 inside a guest's initramfs (this is PID %d); refusing to mount or power off anything", pid)
	}
	e := &executor{sys: sys, log: console}
	err := e.boot()
	if err == nil {
		return nil // only a fake's Exec returns without error
	}
	fmt.Fprintf(console, "banger-init: %s\n", oneLine(err.Error()))
	sys.Sync()
	if perr := sys.PowerOff(); perr != nil {
		return fmt.Errorf("guestinit: %w; powering off failed too: %v", err, perr)
	}
	return fmt.Errorf("guestinit: %w; power off returned without switching the machine off", err)
}

// executor carries out plans. It remembers which modules it loaded, for
// the message when the root device never appears.
type executor struct {
	sys    initSystem
	log    io.Writer
	loaded []string
	failed []string
}

// boot runs the early plan, reads what the boot plan depends on, and runs
// the boot plan.
func (e *executor) boot() error {
	if err := e.run(earlyPlan()); err != nil {
		return err
	}
	cmdline, err := e.sys.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("reading /proc/cmdline: %v", err)
	}
	modules, err := e.sys.ReadFile(ModulesFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		e.logf("%s is missing; loading no modules", ModulesFile)
		modules = nil
	case err != nil:
		return fmt.Errorf("reading %s: %v", ModulesFile, err)
	case modules == nil:
		modules = []byte{}
	}
	release, err := e.sys.KernelRelease()
	if err != nil {
		return fmt.Errorf("reading the kernel release: %v", err)
	}
	payload, err := e.sys.Exists(path.Join(bootpayload.ArchiveDir, bootpayload.KeyFile))
	if err != nil {
		return fmt.Errorf("looking for the boot payload: %v", err)
	}
	steps, err := bootPlan(bootInput{
		Payload: payload,
		Cmdline: strings.TrimSpace(string(cmdline)),
		Modules: modules,
		Release: release,
		Args:    e.sys.Args(),
		Env:     e.sys.Environ(),
	})
	if err != nil {
		return err
	}
	return e.run(steps)
}

// run carries out steps in order and stops at the first failure.
func (e *executor) run(steps []step) error {
	for _, s := range steps {
		if err := e.do(s); err != nil {
			return err
		}
	}
	return nil
}

func (e *executor) do(s step) error {
	switch s.Op {
	case opMkdir:
		mode := os.FileMode(s.Mode)
		if mode == 0 {
			mode = 0o755
		}
		if err := e.sys.Mkdir(s.Path, mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating %s: %v", s.Path, err)
		}
		return nil

	case opInstall:
		err := e.install(s)
		if err != nil && s.Optional {
			e.logf("%v; booting on", err)
			return nil
		}
		return err

	case opMount:
		if err := e.sys.Mount(s.Source, s.Path, s.FSType, s.Flags, s.Data); err != nil {
			return mountError(s, err)
		}
		return nil

	case opLoadModule:
		return e.loadModule(s)

	case opGrowFS:
		r, err := e.sys.GrowFS(s.Path, s.Source)
		switch {
		case err != nil && s.Optional:
			e.logf("the %s disk keeps its size: %v; booting on", s.What, err)
		case err != nil:
			return err
		case r.Grown():
			e.logf("%s disk %s", s.What, r)
		}
		return nil

	case opWaitDevice:
		deadline := e.sys.Now().Add(s.Timeout)
		for {
			ok, err := e.sys.Exists(s.Path)
			if err != nil {
				return fmt.Errorf("looking for root device %s: %v", s.Path, err)
			}
			if ok {
				return nil
			}
			if !e.sys.Now().Before(deadline) {
				disk := "root device"
				if s.What == "upper" {
					disk = "upper disk (banger.rootfs=overlay)"
				}
				return fmt.Errorf("%s %s did not appear within %v; is its driver (e.g. virtio_blk) in %s and does the VM have that disk? modules loaded: %s%s",
					disk, s.Path, s.Timeout, ModulesFile, listOrNone(e.loaded), failedSuffix(e.failed))
			}
			e.sys.Sleep(devicePoll)
		}

	case opMoveMount:
		ok, err := e.sys.Exists(s.Path)
		if err == nil && !ok {
			if !strings.HasPrefix(s.Path, newRoot+"/") || strings.Count(s.Path, "/") != 2 {
				return fmt.Errorf("moving %s to %s: the target directory is missing", s.Source, s.Path)
			}
			return fmt.Errorf("the root filesystem has no %s directory to move %s to; is root= the right filesystem? (a banger image always has /dev, /proc and /sys)", strings.TrimPrefix(s.Path, newRoot), s.Source)
		}
		if err := e.sys.Mount(s.Source, s.Path, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s to %s: %v", s.Source, s.Path, err)
		}
		return nil

	case opCleanInitramfs:
		// Like busybox switch_root: the initramfs (rootfs) can never be
		// unmounted, so whatever it holds would stay in RAM for the life
		// of the VM. Failing to free it is not worth failing the boot.
		n, err := e.sys.CleanInitramfs(s.Path)
		switch {
		case err == nil:
			e.logf("freed the initramfs (%d entries)", n)
		case errors.Is(err, errNotInitramfs):
			e.logf("not freeing the initramfs: %v", err)
		case err != nil:
			e.logf("freeing the initramfs (removed %d entries): %v; booting on", n, err)
		}
		return nil

	case opSwitchRoot:
		if err := e.sys.Chdir(s.Path); err != nil {
			return fmt.Errorf("switching root: chdir %s: %v", s.Path, err)
		}
		if err := e.sys.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("switching root: moving %s to /: %v", s.Path, err)
		}
		if err := e.sys.Chroot("."); err != nil {
			return fmt.Errorf("switching root: chroot %s: %v", s.Path, err)
		}
		if err := e.sys.Chdir("/"); err != nil {
			return fmt.Errorf("switching root: chdir / in the new root: %v", err)
		}
		return nil

	case opExec:
		var errs []string
		for _, p := range s.Candidates {
			e.logf("starting %s", p)
			argv := append([]string{p}, s.Args...)
			err := e.sys.Exec(p, argv, s.Env)
			if err == nil {
				return nil // a fake; the real exec does not return on success
			}
			errs = append(errs, fmt.Sprintf("%s: %v", p, err))
		}
		return fmt.Errorf("cannot start an init in the root filesystem (%s); install systemd-sysv in the image or pass init=<program>", strings.Join(errs, "; "))
	}
	return fmt.Errorf("internal error: unknown boot step %q", s.Op)
}

// mountError says which mount of the boot failed and what to check.
func mountError(s step, err error) error {
	mode := "rw"
	if s.Flags&unix.MS_RDONLY != 0 {
		mode = "ro"
	}
	switch s.What {
	case "root":
		return fmt.Errorf("mounting the root device %s (%s, %s, rootflags=%q) at %s: %v; check root=, rootfstype= and rootflags= on the kernel command line", s.Source, s.FSType, mode, s.Data, s.Path, err)
	case "lower":
		return fmt.Errorf("mounting the root device %s read-only as the overlay's lower layer (%s, rootflags=%q) at %s: %v; it must be a clean %s file system (check root=, rootfstype= and rootflags=)", s.Source, s.FSType, s.Data, s.Path, err, s.FSType)
	case "upper":
		return fmt.Errorf("mounting the upper disk %s (%s, rw) at %s: %v; banger.rootfs=overlay needs the VM's upper disk formatted %s (banger.upper= names it, default %s)", s.Source, s.FSType, s.Path, err, s.FSType, defaultUpper)
	case "overlay":
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("mounting the overlay root at %s: %v: this kernel has no overlay file system; the image's initramfs predates banger's overlay support (the image's next heal rebuilds it with the overlay module), or boot without banger.rootfs=overlay", s.Path, err)
		}
		return fmt.Errorf("mounting the overlay root (%s, %s) at %s: %v; the kernel log on the console says why", mode, s.Data, s.Path, err)
	}
	return fmt.Errorf("mounting %s (%s) at %s: %v; does the kernel have %s support?", s.Source, s.FSType, s.Path, err, s.FSType)
}

// install copies s.Source to s.Path unless it holds the same bytes.
func (e *executor) install(s step) error {
	data, err := e.sys.ReadFile(s.Source)
	if err != nil {
		return fmt.Errorf("installing %s: reading %s: %v", s.Path, s.Source, err)
	}
	if old, err := e.sys.ReadFile(s.Path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := e.sys.WriteFile(s.Path, data, os.FileMode(s.Mode)); err != nil {
		return fmt.Errorf("installing %s: %v", s.Path, err)
	}
	return nil
}

func (e *executor) loadModule(s step) error {
	ok, err := e.sys.Exists(s.Path)
	if err != nil {
		return fmt.Errorf("looking for module %s: %v", s.Path, err)
	}
	if !ok {
		if s.Optional {
			e.logf("optional module %s is not in the initramfs (%s); skipping it", s.Module, s.Path)
			return nil
		}
		return fmt.Errorf("module %s is listed in %s but %s is not in the initramfs; rebuild the initramfs", s.Module, ModulesFile, s.Path)
	}
	err = e.sys.LoadModule(s.Path)
	switch {
	case err == nil, errors.Is(err, unix.EEXIST):
		e.loaded = append(e.loaded, s.Module)
		return nil
	case s.Optional:
		e.failed = append(e.failed, s.Module)
		e.logf("optional module %s failed to load: %v; booting on without it", s.Module, err)
		return nil
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("loading module %s: %v (an unknown symbol: a module it depends on is not loaded; list its dependencies before it in %s)", s.Module, err, ModulesFile)
	case errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("loading module %s: %v (built for another kernel? rebuild the initramfs for this kernel)", s.Module, err)
	default:
		return fmt.Errorf("loading module %s: %v", s.Module, err)
	}
}

func (e *executor) logf(format string, args ...any) {
	fmt.Fprintf(e.log, "banger-init: "+format+"\n", args...)
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func failedSuffix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return "; failed: " + strings.Join(names, ", ")
}

// oneLine folds a message onto one console line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// The real kernel.

func (hostSystem) Args() []string {
	if len(os.Args) < 2 {
		return nil
	}
	return os.Args[1:]
}

func (hostSystem) Environ() []string { return os.Environ() }

func (hostSystem) Mkdir(path string, mode os.FileMode) error {
	if err := os.Mkdir(path, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode) // past the umask
}

func (hostSystem) WriteFile(name string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(name, data, mode, 0o755)
}

func (hostSystem) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

func (hostSystem) Exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

func (hostSystem) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

func (hostSystem) LoadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	for _, suf := range []string{".xz", ".zst", ".gz"} {
		if strings.HasSuffix(path, suf) {
			// The kernel decompresses (CONFIG_MODULE_DECOMPRESS).
			flags |= unix.MODULE_INIT_COMPRESSED_FILE
		}
	}
	return unix.FinitModule(int(f.Fd()), "", flags)
}

func (hostSystem) GrowFS(dir, device string) (growfs.Result, error) {
	return growfs.Fill(dir, device)
}

func (hostSystem) Now() time.Time        { return time.Now() }
func (hostSystem) Sleep(d time.Duration) { time.Sleep(d) }

func (hostSystem) CleanInitramfs(keep string) (int, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return 0, fmt.Errorf("statfs /: %w", err)
	}
	if st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC {
		return 0, fmt.Errorf("%w (filesystem magic %#x)", errNotInitramfs, st.Type)
	}
	if _, err := os.Stat(InitPath); err != nil {
		return 0, fmt.Errorf("%w: it has no %s", errNotInitramfs, InitPath)
	}
	return removeTree("/", keep)
}

func (hostSystem) Chdir(path string) error  { return unix.Chdir(path) }
func (hostSystem) Chroot(path string) error { return unix.Chroot(path) }

func (hostSystem) Exec(path string, argv, env []string) error {
	return unix.Exec(path, argv, env)
}

// removeTree deletes everything under dir that lives on dir's own
// filesystem, except the entry keep, and reports how many entries it
// removed. It never crosses into another filesystem: mount points (such
// as the new root) and whatever is below them are left alone.
func removeTree(dir, keep string) (int, error) {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return 0, fmt.Errorf("lstat %s: %w", dir, err)
	}
	return removeContents(dir, st.Dev, keep)
}

func removeContents(dir string, dev uint64, keep string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, ent := range entries {
		p := strings.TrimSuffix(dir, "/") + "/" + ent.Name()
		if p == keep {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Dev != dev {
			continue // a mount point
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			m, err := removeContents(p, dev, keep)
			n += m
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := unix.Rmdir(p); err != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", p, err))
				continue
			}
		} else if err := unix.Unlink(p); err != nil {
			errs = append(errs, fmt.Errorf("unlink %s: %w", p, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
