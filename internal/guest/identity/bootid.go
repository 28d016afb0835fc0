package identity

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// BootIDFile is where the new boot ID is kept, below System.Root, and
// bound from over the kernel's.
const BootIDFile = "run/banger/boot_id"

// maxStacked bounds how many mounts setBootID removes from the boot_id
// path before it gives up (one is all it ever leaves).
const maxStacked = 8

// Mounter binds a file over another.
type Mounter interface {
	// Unmount detaches the topmost mount at target; mounted is false
	// when nothing is mounted there.
	Unmount(target string) (mounted bool, err error)
	// Bind mounts source over target, read-only.
	Bind(source, target string) error
}

// BindMounter is the kernel's mount(2) in the caller's mount namespace.
type BindMounter struct{}

var _ Mounter = BindMounter{}

// Unmount detaches target lazily (a reader may hold it open).
func (BindMounter) Unmount(target string) (bool, error) {
	err := unix.Unmount(target, unix.MNT_DETACH)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EINVAL): // not a mount point: nothing bound there
		return false, nil
	}
	return false, fmt.Errorf("unmounting %s: %w", target, err)
}

// Bind bind-mounts source over target and makes the mount read-only.
func (BindMounter) Bind(source, target string) error {
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding %s over %s: %w", source, target, err)
	}
	if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		unix.Unmount(target, unix.MNT_DETACH)
		return fmt.Errorf("making %s read-only: %w", target, err)
	}
	return nil
}

// setBootID writes id to BootIDFile and binds it over the kernel's
// boot_id, which cannot change once read. A mount left by an earlier call
// is removed first, so calls replace each other instead of stacking.
func setBootID(sys System, id string) error {
	if sys.Mounter == nil {
		return fmt.Errorf("binding a boot ID: %w", errNoSystem)
	}
	file := filepath.Join(sys.Root, BootIDFile)
	target := filepath.Join(sys.ProcDir, "sys", "kernel", "random", "boot_id")
	if err := atomicfile.Replace(file, []byte(id+"\n"), 0o444, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	for i := 0; ; i++ {
		if i == maxStacked {
			return fmt.Errorf("%s still has a mount after %d unmounts: see /proc/self/mountinfo", target, maxStacked)
		}
		mounted, err := sys.Mounter.Unmount(target)
		if err != nil {
			return err
		}
		if !mounted {
			break
		}
	}
	return sys.Mounter.Bind(file, target)
}
