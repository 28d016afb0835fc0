package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/shared/sizetext"
	"golang.org/x/sys/unix"
)

// SpaceMargin is the free space a create or start leaves on the VMs'
// filesystem beyond what the VM may use: room for the daemon's store, logs
// and console files, and for everything else on the host.
const SpaceMargin = 1 << 30

// spaceReading is how much room a filesystem has: the checks take it as a
// value, so a test drives them with any reading.
type spaceReading struct {
	Dir  string // the directory asked about
	Free int64  // bytes an unprivileged process may still allocate there
}

// statFree reads the free space of the filesystem that holds dir, or
// would hold it: a missing dir is looked up at its nearest ancestor.
func statFree(dir string) (spaceReading, error) {
	p := dir
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			return spaceReading{Dir: dir, Free: int64(st.Bavail) * int64(st.Bsize)}, nil
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, unix.ENOENT) || parent == p {
			return spaceReading{}, fmt.Errorf("reading the free space of %s: %w", p, err)
		}
		p = parent
	}
}

// createSpace is what a VM of diskBytes made from img may come to take on
// the host: the rootfs clone (or, on a shared base, the upper disk) and
// the work disk at full size. Both are sparse or reflinked at first and
// use little, but the guest decides how much of them it fills.
func createSpace(img image.Image, diskBytes int64) (int64, error) {
	fi, err := os.Stat(img.Path(image.Rootfs))
	if err != nil {
		return 0, fmt.Errorf("image %s: %w", img.Name, err)
	}
	root := fi.Size()
	if img.Has(image.UpperSeed) {
		root = diskBytes
	}
	work := diskBytes
	if img.Has(image.WorkSeed) {
		if sfi, err := os.Stat(img.Path(image.WorkSeed)); err == nil && sfi.Size() > work {
			work = sfi.Size()
		}
	}
	return root + work, nil
}

// checkCreateSpace refuses a create whose VM could not fill its disks
// without filling the filesystem: it needs its full (promised) size plus
// SpaceMargin free. The promise is checked, not the few MiB a reflinked or
// sparse create writes at first, because a guest that fills a disk the
// host cannot back gets I/O errors in the middle of its work, and
// everything else on the host gets ENOSPC. Other VMs' unused promises are
// not counted: sparse disks are there to be overcommitted.
func checkCreateSpace(r spaceReading, promised int64) error {
	need := promised + SpaceMargin
	if r.Free >= need {
		return nil
	}
	return &api.Error{Code: api.CodeFailedPrecondition, Field: "disk_bytes", Message: fmt.Sprintf(
		"not enough free disk space for this VM: its disks can grow to %s, and %s more is kept free for the host (%s in all), but %s has %s free: free space in %s or lower disk_bytes",
		sizetext.Up(promised), sizetext.Up(SpaceMargin), sizetext.Up(need), r.Dir, sizetext.Down(r.Free), r.Dir)}
}

// checkStartSpace refuses a start when the filesystem has less than
// SpaceMargin free (a running guest could fill the host's disk at once),
// and warns when the VM's disks could grow past what is free.
func checkStartSpace(r spaceReading, growth int64) (warning string, err error) {
	if r.Free < SpaceMargin {
		return "", api.Errorf(api.CodeFailedPrecondition,
			"not enough free disk space to start this VM: %s has %s free and a running VM needs at least %s free beside it: free space in %s",
			r.Dir, sizetext.Down(r.Free), sizetext.Up(SpaceMargin), r.Dir)
	}
	if r.Free < growth+SpaceMargin {
		return fmt.Sprintf("this VM's disks can still grow by %s, but %s has %s free: free space there before the guest fills its disks",
			sizetext.Up(growth), r.Dir, sizetext.Down(r.Free)), nil
	}
	return "", nil
}

// vmsDir is where VM directories (and their disks) live.
func (m *Manager) vmsDir() string { return filepath.Dir(m.Dir("x")) }

// checkSpaceForCreate reads the VMs' filesystem and applies
// checkCreateSpace.
func (m *Manager) checkSpaceForCreate(img image.Image, diskBytes int64) error {
	promised, err := createSpace(img, diskBytes)
	if err != nil {
		return err
	}
	r, err := statFree(m.vmsDir())
	if err != nil {
		return err
	}
	return checkCreateSpace(r, promised)
}

// checkSpaceForStart reads the VMs' filesystem and how much v's disks can
// still grow, and applies checkStartSpace; a warning goes to p.
func (m *Manager) checkSpaceForStart(v *VM, p Progress) error {
	dir := m.Dir(v.ID)
	r, err := statFree(dir)
	if err != nil {
		return err
	}
	var growth int64
	for _, disk := range []string{rootDisk(dir), workDisk(dir), upperDisk(dir)} {
		growth += unallocated(disk)
	}
	warning, err := checkStartSpace(r, growth)
	if warning != "" {
		v.Runtime.Warnings = append(v.Runtime.Warnings, warning)
		p.Logf("warning: %s", warning)
	}
	return err
}

// unallocated is how much of a sparse file's size is not yet backed by
// blocks; 0 when it cannot be read (a missing disk fails the boot anyway).
func unallocated(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	return max(fi.Size()-st.Blocks*512, 0)
}

// checkSpaceForState refuses to save a VM's state where it would not fit:
// a state is at most the VM's memory (pages that are all zero take
// nothing), plus the margin.
func (m *Manager) checkSpaceForState(v *VM) error {
	r, err := statFree(m.Dir(v.ID))
	if err != nil {
		return err
	}
	need := int64(v.Spec.MemoryMiB)<<20 + SpaceMargin
	if r.Free < need {
		return api.Errorf(api.CodeFailedPrecondition,
			"not enough free disk space to save VM %s: its state can take up to %s (its memory) and %s has %s free: free space there, or stop the VM instead",
			v.Name, sizetext.Up(int64(v.Spec.MemoryMiB)<<20), r.Dir, sizetext.Down(r.Free))
	}
	return nil
}
