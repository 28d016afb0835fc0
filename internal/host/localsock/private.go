package localsock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// fixHint is the way out the directory errors offer when the directory is
// not the user's to repair.
const fixHint = "set XDG_RUNTIME_DIR (or BANGER_HOME) to a directory only you can write"

// EnsurePrivateDir creates dir with mode 0700 when it is missing and checks
// that it is the current user's alone: a real directory (not a symbolic
// link), owned by the user, writable by no one else, in a parent that only
// the user or root can change (or a sticky one such as /tmp, where no one
// can rename another's entries). The checks run on the opened directory,
// not on a second lookup of its name, so there is no window in which
// another user can swap it. Every error names the path, the owner found
// and the fix.
func EnsurePrivateDir(dir string) error {
	dir = filepath.Clean(dir)
	uid := os.Getuid()
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", parent, err)
	}
	if err := checkParent(parent, dir, uid); err != nil {
		return err
	}
	if err := unix.Mkdir(dir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	// O_PATH: the checks need no read permission, so a foreign directory
	// the user cannot read is still reported by owner.
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return notADirError(dir)
		}
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("checking %s: %w", dir, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return notADirError(dir)
	case int(st.Uid) != uid:
		return fmt.Errorf("%s belongs to uid %d, not to you (uid %d): another user may have made it to intercept banger, so banger will not use it; have it removed (it is not yours, so as root: rm -r %s), or %s",
			dir, st.Uid, uid, dir, fixHint)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s is writable by other users (mode %v, owner uid %d), so someone else may have put files in it: remove it (rm -r %s) and run banger again, or, if you made it so and trust its contents, chmod 700 %s",
			dir, fs.FileMode(st.Mode&0o777), st.Uid, dir, dir)
	}
	return nil
}

// checkParent refuses a parent directory through which another user could
// replace dir: one owned by someone other than the user or root, one the
// world can write without the sticky bit, or one owned by root that its
// group can write without it. A group-writable parent of the user's own
// is accepted: with one-user groups and umask 002 that is how
// ~/.local/state often looks, and dir itself is still checked strictly.
func checkParent(parent, dir string, uid int) error {
	fi, err := os.Stat(parent)
	if err != nil {
		return fmt.Errorf("checking %s: %w", parent, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	switch {
	case int(st.Uid) != uid && st.Uid != 0:
		return fmt.Errorf("%s is inside %s, which belongs to uid %d (you are uid %d) who could replace it: banger will not keep its files there; %s (under sudo, do not keep the invoking user's XDG_RUNTIME_DIR: use sudo without -E)",
			dir, parent, st.Uid, uid, fixHint)
	case fi.Mode()&fs.ModeSticky == 0 && (fi.Mode().Perm()&0o002 != 0 || (fi.Mode().Perm()&0o020 != 0 && int(st.Uid) != uid)):
		return fmt.Errorf("%s is inside %s, which other users can write (mode %v, no sticky bit) and so could replace it: chmod go-w %s (or chmod +t), or %s",
			dir, parent, fi.Mode().Perm(), parent, fixHint)
	}
	return nil
}

// notADirError describes what sits at dir instead of a directory: a
// symbolic link (with its target and the target's owner) or another kind of
// file.
func notADirError(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("%s is not a directory: %w", dir, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(dir)
		return fmt.Errorf("%s is a symbolic link (to %s%s, link owned by uid %d), not a directory of your own: another user may have planted it to receive banger's socket, so banger will not follow it; remove it (rm %s) and run banger again, or %s",
			dir, target, ownerNote(dir), ownerOf(fi), dir, fixHint)
	}
	return fmt.Errorf("%s is not a directory (%v, owner uid %d): move it aside (mv %s %s.old) and run banger again, or %s",
		dir, fi.Mode().Type(), ownerOf(fi), dir, dir, fixHint)
}

// ownerNote is ", owned by uid N" for the file a symbolic link points to,
// or "" when the target is missing.
func ownerNote(link string) string {
	fi, err := os.Stat(link)
	if err != nil {
		return ", which does not exist"
	}
	return fmt.Sprintf(", owned by uid %d", ownerOf(fi))
}

func ownerOf(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// OpenPrivateFile opens path, which lies in a directory EnsurePrivateDir
// accepted, with flag (os.O_RDWR, os.O_WRONLY|os.O_APPEND, ...), creating it
// with mode 0600. It never follows a symbolic link, and an existing file
// must be a regular file of the user's with no other hard link and no write
// permission for others; anything else was not made by banger and is
// refused with what to do. It never truncates: callers that rewrite the
// file call Truncate after this check.
func OpenPrivateFile(path string, flag int) (*os.File, error) {
	// O_NONBLOCK: a named pipe planted at path must not block the open
	// waiting for a reader (it is refused below); regular files ignore it.
	f, err := os.OpenFile(path, flag|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		fi, lerr := os.Lstat(path)
		switch {
		case errors.Is(err, syscall.ELOOP):
			target, _ := os.Readlink(path)
			return nil, fmt.Errorf("%s is a symbolic link (to %s%s): banger does not write through links someone else may have planted; remove it (rm %s) and run banger again",
				path, target, ownerNote(path), path)
		case lerr == nil && !fi.Mode().IsRegular():
			return nil, fmt.Errorf("%s is not a regular file (%v): banger did not make it this way, so it will not write to it; remove it (rm %s) and run banger again",
				path, fi.Mode().Type(), path)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	var problem string
	switch {
	case !fi.Mode().IsRegular():
		problem = fmt.Sprintf("is not a regular file (%v)", fi.Mode().Type())
	case st != nil && int(st.Uid) != os.Getuid():
		problem = fmt.Sprintf("belongs to uid %d, not to you (uid %d)", st.Uid, os.Getuid())
	case st != nil && st.Nlink != 1:
		problem = fmt.Sprintf("has %d hard links (a link to another file?)", st.Nlink)
	case fi.Mode().Perm()&0o022 != 0:
		problem = fmt.Sprintf("is writable by other users (mode %v)", fi.Mode().Perm())
	}
	if problem != "" {
		f.Close()
		return nil, fmt.Errorf("%s %s: banger did not make it this way, so it will not write to it; remove it (rm %s) and run banger again", path, problem, path)
	}
	return f, nil
}

// WritePrivateFile replaces the contents of path with data, through
// OpenPrivateFile's checks (no symbolic link, the user's own regular file).
func WritePrivateFile(path string, data []byte) error {
	f, err := OpenPrivateFile(path, os.O_WRONLY)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
