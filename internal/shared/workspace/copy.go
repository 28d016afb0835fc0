package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// PackPath writes a tar stream of the file, symlink or directory tree at src
// to w, as a single top-level entry named filepath.Base(src): "dir" and
// "dir/...", or just "file". src itself is not followed (a symlink is stored
// as a symlink) and the walk below a directory follows the same rules as
// [Pack] in full_copy mode.
//
// src must have a name of its own: "/", "." and ".." are refused. On error
// the stream is left without its end-of-archive marker, so [Place] on the
// other end refuses it.
func PackPath(ctx context.Context, src string, w io.Writer) (Stats, error) {
	name, err := CopyName(src)
	if err != nil {
		return Stats{}, err
	}
	clean := filepath.Clean(src)
	parent := filepath.Dir(clean)
	// O_PATH: the parent only has to be searchable, not readable.
	pfd, err := unix.Open(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("copying %s: opening its directory %s: %w", src, parent, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return Stats{}, fmt.Errorf("copying %s: %w", src, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR, unix.S_IFLNK:
	default:
		return Stats{}, fmt.Errorf("copying %s: it is a socket, fifo or device node: only regular files, directories and symlinks can be copied", src)
	}
	p := newPacker(ctx, w)
	if err := p.walkEntry(pfd, name, clean, name, "", nil, &st); err != nil {
		return p.stats, err
	}
	if p.stats == (Stats{}) {
		return p.stats, fmt.Errorf("copying %s: it disappeared while packing: run again", src)
	}
	if err := p.tw.Close(); err != nil {
		return p.stats, fmt.Errorf("finishing the stream of %s: %w", src, err)
	}
	return p.stats, nil
}

// CopyName returns the name [PackPath] gives src's entry, or an error
// naming the fix when it has none. The receiving side uses it as
// ExtractOptions.Name, so the name comes from the request, not the stream.
func CopyName(src string) (string, error) {
	if src == "" {
		return "", errors.New("copying: no source path given")
	}
	name := filepath.Base(filepath.Clean(src))
	if name != "/" && name != "." && name != ".." {
		return name, nil
	}
	abs, err := filepath.Abs(src)
	if err != nil || abs == "/" {
		return "", fmt.Errorf("copying %s: the filesystem root has no name to copy it as: copy the files and directories under it one at a time", src)
	}
	return "", fmt.Errorf("copying %s: it has no name of its own to copy it as: name the directory by its path instead (%s)", src, abs)
}

// Place reads a stream from [PackPath] and installs its one top-level entry
// with `docker cp` semantics: into target/<name> if target is a directory
// (or a symlink to one), else as target itself, whose parent must exist. A
// target ending in "/" must be an existing directory.
//
// The entry is built in a private staging directory next to its final path
// with the rules of [Extract] (and opt as Extract uses it), then renamed into
// place: a file or symlink replaces a file or symlink already there (unless
// opt.NoReplace); a directory already there, or a directory entry meeting
// anything already there, is refused, never merged or removed. With
// opt.Name set, the stream must hold that name and target/<opt.Name> is
// the final path whatever it holds. On error nothing at the final path
// changes, the staging directory is removed and zero Stats are returned.
// Place returns the absolute path it installed.
func Place(ctx context.Context, r io.Reader, target string, opt ExtractOptions) (string, Stats, error) {
	dir, final, err := placeDir(target)
	if err != nil {
		return "", Stats{}, err
	}
	if opt.Name != "" {
		if opt.Name == "." || opt.Name == ".." || strings.ContainsRune(opt.Name, '/') {
			return "", Stats{}, fmt.Errorf("copying to %s: %q is not a file name (Name)", target, opt.Name)
		}
		if final == "" {
			final = filepath.Join(dir, opt.Name)
		}
	}
	if final != "" {
		// Refuse what placeEntry would refuse before reading the stream.
		var exists error
		if fi, err := os.Lstat(final); err == nil && fi.IsDir() {
			exists = &existsError{path: final, what: "is a directory"}
		} else if err == nil && opt.NoReplace {
			exists = &existsError{path: final, noReplace: true}
		}
		if exists != nil {
			return "", Stats{}, fmt.Errorf("copying to %s (left unchanged): %w", target, exists)
		}
	}
	room := roomIn(dir)
	staging, err := os.MkdirTemp(dir, ".banger-cp-")
	if err != nil {
		return "", Stats{}, fmt.Errorf("copying to %s: creating a staging directory in %s (it must be writable): %w", target, dir, room.noSpace(err))
	}
	stats, name, err := extractInto(ctx, room.count(r), staging, opt, true)
	err = room.noSpace(err)
	if err == nil {
		if final == "" {
			final = filepath.Join(dir, name)
		}
		err = placeEntry(filepath.Join(staging, name), final, opt.NoReplace)
	}
	var late lateError
	if errors.As(err, &late) {
		_ = os.Remove(staging)
		return final, stats, fmt.Errorf("copied to %s, but %w", final, late.err)
	}
	if err != nil {
		if rerr := removeTree(staging); rerr != nil {
			err = fmt.Errorf("%w (and removing the staging directory failed: %v: remove %s by hand)", err, rerr, staging)
		}
		return "", Stats{}, fmt.Errorf("copying to %s (left unchanged): %w", target, err)
	}
	syncDir(dir)
	if err := os.Remove(staging); err != nil {
		return final, stats, fmt.Errorf("copied to %s, but removing the staging directory failed: %w: remove %s by hand", final, err, staging)
	}
	return final, stats, nil
}

// placeDir decides where Place installs: into dir under the entry's own name
// (final is ""), or as final, an absolute path in dir.
func placeDir(target string) (dir, final string, err error) {
	if target == "" {
		return "", "", errors.New("copying: no destination path given")
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return "", "", fmt.Errorf("copying to %s: %w", target, err)
	}
	wantDir := strings.HasSuffix(target, "/") || strings.HasSuffix(target, "/.")
	fi, err := os.Stat(abs)
	switch {
	case err == nil && fi.IsDir():
		return abs, "", nil
	case err == nil && wantDir:
		return "", "", fmt.Errorf("copying to %s: it is not a directory: drop the trailing slash to replace it, or name a directory", target)
	case errors.Is(err, fs.ErrNotExist) && wantDir:
		return "", "", fmt.Errorf("copying to %s: no such directory: create it first, or drop the trailing slash to copy to that name", target)
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return "", "", fmt.Errorf("copying to %s: %w", target, err)
	}
	dir = filepath.Dir(abs)
	pfi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", fmt.Errorf("copying to %s: its parent directory %s does not exist: create it first", target, dir)
	case err != nil:
		return "", "", fmt.Errorf("copying to %s: %w", target, err)
	case !pfi.IsDir():
		return "", "", fmt.Errorf("copying to %s: %s is not a directory", target, dir)
	}
	return dir, abs, nil
}

// ProcessUmask returns the calling process's umask, for
// ExtractOptions.Umask. It reads /proc/self/status (Linux 4.7 and later)
// rather than setting and restoring the umask, which would briefly change
// it for every thread of the process; where that line is missing it
// returns 0o077, the most private choice.
func ProcessUmask() uint32 {
	data, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return uint32(n) & 0o777
				}
			}
		}
	}
	return 0o077
}

// lateError is a failure after the entry is already in place.
type lateError struct{ err error }

func (e lateError) Error() string { return e.err.Error() }

// placeEntry renames the staged entry to final, which must be absent or,
// for a file or symlink and without noReplace, a file or symlink. Only a
// lateError comes after final changed.
func placeEntry(staged, final string, noReplace bool) error {
	sfi, err := os.Lstat(staged)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(final)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if sfi.IsDir() {
			err = moveDir(staged, final)
		} else {
			err = renameNoReplace(staged, final)
		}
		if errors.Is(err, fs.ErrExist) && noReplace {
			return &existsError{path: final, noReplace: true} // it appeared since the Lstat
		}
		return moveErr(final, err)
	case err != nil:
		return err
	case fi.IsDir():
		return &existsError{path: final, what: "is a directory"}
	case sfi.IsDir():
		return &existsError{path: final, what: "is not a directory"}
	case noReplace:
		return &existsError{path: final, noReplace: true}
	}
	// os.Rename refuses to replace a directory even if one appeared since
	// the Lstat.
	return moveErr(final, rename(staged, final))
}

// existsError: the final path holds something a copy must not replace.
// It matches fs.ErrExist, and ErrWouldReplace when only NoReplace stood
// in the way.
type existsError struct {
	path, what string
	noReplace  bool
}

func (e *existsError) Error() string {
	if e.noReplace {
		return e.path + " already exists and replacing it was not asked for (NoReplace)"
	}
	return e.path + " exists and " + e.what + ": remove it first or copy to another path"
}

func (e *existsError) Is(target error) bool {
	return target == fs.ErrExist || (e.noReplace && target == ErrWouldReplace)
}

func moveErr(final string, err error) error {
	var late lateError
	if err == nil || errors.As(err, &late) {
		return err
	}
	return fmt.Errorf("moving the copy into place as %s: %w", final, err)
}

// moveDir renames the directory staged to final, which must not exist.
// Moving a directory to another parent rewrites its ".." entry, which
// needs write permission on it unless we are root, so a read-only
// directory is made writable for the move through a descriptor that
// follows it.
func moveDir(staged, final string) error {
	fd, err := unix.Open(staged, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	mode := st.Mode & 0o777
	if mode&0o200 != 0 {
		return renameNoReplace(staged, final)
	}
	if err := unix.Fchmod(fd, mode|0o200); err != nil {
		return fmt.Errorf("making %s writable for the move: %w", staged, err)
	}
	if err := renameNoReplace(staged, final); err != nil {
		_ = unix.Fchmod(fd, mode)
		return err
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return lateError{fmt.Errorf("restoring its mode %#o failed: %w", mode, err)}
	}
	return nil
}
