package buildsandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// system is the part of the kernel the executor changes; the real one is
// sysCalls, tests record calls with a fake.
type system interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Mkdir(path string, mode uint32) error
	Chmod(path string, mode uint32) error
	Mknod(path string, mode uint32, dev int) error
	Symlink(target, path string) error
	Sethostname(name string) error
	// Lstat reports whether path exists and is a directory.
	Lstat(path string) (exists, dir bool, err error)
}

type sysCalls struct{}

func (sysCalls) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}
func (sysCalls) Mkdir(path string, mode uint32) error          { return unix.Mkdir(path, mode) }
func (sysCalls) Chmod(path string, mode uint32) error          { return unix.Chmod(path, mode) }
func (sysCalls) Mknod(path string, mode uint32, dev int) error { return unix.Mknod(path, mode, dev) }
func (sysCalls) Symlink(target, path string) error             { return unix.Symlink(target, path) }
func (sysCalls) Sethostname(name string) error                 { return unix.Sethostname([]byte(name)) }
func (sysCalls) Lstat(path string) (bool, bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, fi.IsDir(), nil
}

// apply carries out plan in order; the first failure stops it and names
// the step.
func apply(sys system, plan []step) error {
	for _, s := range plan {
		if err := applyStep(sys, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func applyStep(sys system, s step) error {
	switch s.Op {
	case opMkdir:
		exists, dir, err := sys.Lstat(s.Path)
		if err != nil {
			return err
		}
		if exists && dir {
			return nil
		}
		if exists {
			return fmt.Errorf("%s exists and is not a directory: the image's %s must be a directory", s.Path, s.Path)
		}
		if err := sys.Mkdir(s.Path, s.Mode&0o777); err != nil {
			return err
		}
		return sys.Chmod(s.Path, s.Mode)
	case opMount:
		return sys.Mount(s.Source, s.Path, s.FSType, s.Flags, s.Data)
	case opMknod:
		if err := sys.Mknod(s.Path, unix.S_IFCHR|s.Mode, int(unix.Mkdev(s.Major, s.Minor))); err != nil {
			return err
		}
		return sys.Chmod(s.Path, s.Mode) // mknod applies the umask
	case opSymlink:
		return sys.Symlink(s.Target, s.Path)
	case opHostname:
		return sys.Sethostname(s.Target)
	case opMask:
		exists, dir, err := sys.Lstat(s.Path)
		if err != nil || !exists {
			return err
		}
		if dir {
			return sys.Mount("tmpfs", s.Path, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0555")
		}
		return sys.Mount("/dev/null", s.Path, "", unix.MS_BIND, "")
	case opReadOnly:
		exists, _, err := sys.Lstat(s.Path)
		if err != nil || !exists {
			return err
		}
		if err := sys.Mount(s.Path, s.Path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		return sys.Mount(s.Path, s.Path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	return fmt.Errorf("unknown step %q", s.Op)
}

// enterRoot makes root the process's whole filesystem: the host's mounts
// become slaves of this mount namespace (nothing mounted here reaches the
// host), root is bound onto itself with its submounts, without device
// files or set-user-ID anywhere below, pivot_root makes it / and the old
// root is detached, so no path, "..", chroot or open file of the init
// leads back to the host's tree.
func enterRoot(root string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("making the host's mounts slaves: %w", err)
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding %s onto itself: %w", root, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOSUID}
	if err := unix.MountSetattr(unix.AT_FDCWD, root, unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("making %s nodev,nosuid: %w (needs Linux 5.12 or later)", root, err)
	}
	if err := unix.Chdir(root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one at
	// "."; unmounting "." then detaches it (the runc way: no directory for
	// the old root is needed in the image).
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host's root: %w", err)
	}
	return unix.Chdir("/")
}
