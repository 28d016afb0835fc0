// Package diskclone clones VM disk images: reflink (FICLONE) where the
// filesystem supports it, sparse copy otherwise.
//
// Either way a clone costs time in proportion to the data in the image, not
// its apparent size, so VM create does not slow down as disks grow. The
// package owns the clone primitive and the probe that tells whether a
// directory's filesystem can reflink; choosing where images live is the
// caller's business.
package diskclone

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// Method says how Clone copied a file.
type Method string

const (
	// MethodReflink: the clone shares the source's extents copy-on-write.
	MethodReflink Method = "reflink"
	// MethodSparseCopy: only the source's data extents were copied; holes
	// stay holes.
	MethodSparseCopy Method = "sparse-copy"
)

// ReflinkSupported reports whether files in dir can be reflinked: it creates
// two temporary files there, tries FICLONE between them and removes them. A
// filesystem that cannot reflink gives false and no error; an error means the
// probe itself failed, for example because dir is missing or not writable.
func ReflinkSupported(dir string) (bool, error) {
	src, err := os.CreateTemp(dir, ".banger-reflink-probe-*")
	if err != nil {
		return false, fmt.Errorf("probing reflink support in %s: %w: make sure the directory exists and is writable", dir, err)
	}
	defer os.Remove(src.Name())
	defer src.Close()
	dst, err := os.CreateTemp(dir, ".banger-reflink-probe-*")
	if err != nil {
		return false, fmt.Errorf("probing reflink support in %s: %w: make sure the directory is writable", dir, err)
	}
	defer os.Remove(dst.Name())
	defer dst.Close()

	// A real block of data, so the probe clones an extent like Clone would.
	if _, err := src.Write(bytes.Repeat([]byte{0xb4}, 4096)); err != nil {
		return false, fmt.Errorf("probing reflink support in %s: %w", dir, err)
	}
	switch err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())); {
	case err == nil:
		return true, nil
	case reflinkUnsupported(err):
		return false, nil
	default:
		return false, fmt.Errorf("probing reflink support in %s: FICLONE: %w", dir, err)
	}
}

// reflinkUnsupported reports whether a FICLONE error means "not here" rather
// than a failure: the filesystem cannot reflink, the files are on different
// filesystems, or the ioctl is unknown.
func reflinkUnsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY)
}

// Clone copies src to dst, which must not exist, and returns how. It reflinks
// where the filesystem allows and otherwise copies only the source's data
// extents, keeping holes, so dst has the size and content of src. The copy is
// built in dst+".tmp" (a leftover one from a crash is replaced) and renamed to
// dst only when complete: dst is never partial.
func Clone(dst, src string) (Method, error) {
	return clone(dst, src, true)
}

// clone is Clone with reflink optional, so tests and benchmarks can measure
// the sparse copy on filesystems that would reflink.
func clone(dst, src string, tryReflink bool) (Method, error) {
	if _, err := os.Lstat(dst); err == nil {
		return "", fmt.Errorf("cloning %s: destination %s already exists: remove it or choose another path", src, dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("cloning %s: checking destination %s: %w", src, dst, err)
	}
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("cloning %s: %w", src, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return "", fmt.Errorf("cloning %s: %w", src, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("cloning %s: not a regular file: give the path of a disk image", src)
	}

	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("cloning %s: creating %s: %w", src, tmp, err)
	}
	published := false
	defer func() {
		out.Close()
		if !published {
			os.Remove(tmp)
		}
	}()

	method, err := cloneInto(out, in, fi.Size(), tryReflink)
	if err != nil {
		return "", fmt.Errorf("cloning %s to %s: %w", src, dst, err)
	}
	if err := out.Chmod(fi.Mode().Perm()); err != nil {
		return "", fmt.Errorf("cloning %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		return "", fmt.Errorf("cloning %s: syncing %s: %w", src, tmp, err)
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("cloning %s: closing %s: %w", src, tmp, err)
	}
	if err := renameNoReplace(tmp, dst); errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("cloning %s: destination %s appeared while cloning: remove it or choose another path", src, dst)
	} else if err != nil {
		return "", fmt.Errorf("cloning %s: renaming %s to %s: %w", src, tmp, dst, err)
	}
	published = true
	if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
		return "", fmt.Errorf("cloning %s: %w", src, err)
	}
	return method, nil
}

// cloneInto fills the empty file out with the content of in, size bytes.
func cloneInto(out, in *os.File, size int64, tryReflink bool) (Method, error) {
	if tryReflink {
		err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
		if err == nil {
			return MethodReflink, nil
		}
		if !reflinkUnsupported(err) {
			return "", fmt.Errorf("reflink (FICLONE): %w", err)
		}
	}
	if err := copySparse(out, in, size); err != nil {
		return "", fmt.Errorf("sparse copy: %w", err)
	}
	return MethodSparseCopy, nil
}

const chunkSize = 1 << 20

// copySparse copies the data extents of in (found with SEEK_DATA/SEEK_HOLE)
// into out at the same offsets, then sets out's size to size. Chunks that are
// all zeros are skipped too, so zero-filled blocks become holes.
func copySparse(out, in *os.File, size int64) error {
	buf := make([]byte, chunkSize)
	zeros := make([]byte, chunkSize)
	fd := int(in.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			return fmt.Errorf("finding data at offset %d (SEEK_DATA): %w", off, err)
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("finding a hole after offset %d (SEEK_HOLE): %w", data, err)
		}
		hole = min(hole, size)
		if err := copyRange(out, in, data, hole, buf, zeros); err != nil {
			return err
		}
		off = hole
	}
	if err := out.Truncate(size); err != nil {
		return fmt.Errorf("setting size to %d: %w", size, err)
	}
	return nil
}

// copyRange copies bytes [start, end) of in to the same offsets in out.
func copyRange(out, in *os.File, start, end int64, buf, zeros []byte) error {
	for pos := start; pos < end; {
		n := int(min(int64(len(buf)), end-pos))
		if _, err := in.ReadAt(buf[:n], pos); err != nil {
			return fmt.Errorf("reading at offset %d: %w", pos, err)
		}
		if !bytes.Equal(buf[:n], zeros[:n]) {
			if _, err := out.WriteAt(buf[:n], pos); err != nil {
				return fmt.Errorf("writing at offset %d: %w", pos, err)
			}
		}
		pos += int64(n)
	}
	return nil
}

// renameNoReplace renames oldpath to newpath unless newpath exists, in which
// case the error wraps fs.ErrExist.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if err == nil || !(errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)) {
		return err
	}
	// No RENAME_NOREPLACE on this filesystem: link refuses to replace too.
	if err := os.Link(oldpath, newpath); err != nil {
		return err
	}
	return os.Remove(oldpath)
}
