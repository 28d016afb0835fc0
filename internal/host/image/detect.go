package image

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/ext4img"
)

// KernelFormat is what a kernel file turned out to be.
type KernelFormat string

// Kernel formats banger accepts.
const (
	FormatELF     KernelFormat = "elf"     // uncompressed vmlinux
	FormatBzImage KernelFormat = "bzimage" // x86 compressed kernel
)

// What each path field of a register request accepts (api.Error.Allowed),
// by the field's JSON name.
var allowed = map[string]string{
	"kernel":    "an absolute path to a bzImage (vmlinuz) or an x86-64 ELF vmlinux",
	"initrd":    "an absolute path to an initramfs (newc cpio, optionally compressed)",
	"modules":   "an absolute path to a lib/modules/<release> directory",
	"rootfs":    "an absolute path to an ext4 image of at least 64MiB",
	"work_seed": "an absolute path to an ext4 image of at least 1MiB",
}

// invalid is the error for a bad path in a request field: field is the
// field's JSON name, and the message begins with it.
func invalid(field, path, format string, args ...any) error {
	return api.FieldErrorf(field, allowed[field], "%s %s: %s", field, path, fmt.Sprintf(format, args...))
}

func readHead(path string, n int) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	buf := make([]byte, n)
	m, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	return buf[:m], fi, nil
}

// statFile checks that path is a readable, non-empty regular file and
// phrases the failure for the request field that named it.
func statFile(field, path string) (os.FileInfo, error) {
	if path == "" {
		return nil, api.FieldErrorf(field, allowed[field], "%s is required", field)
	}
	if !filepath.IsAbs(path) {
		return nil, invalid(field, path, "not an absolute path")
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, invalid(field, path, "no such file: check the path")
	case err != nil:
		return nil, invalid(field, path, "%v", err)
	case fi.IsDir():
		return nil, invalid(field, path, "is a directory, want a file")
	case fi.Size() == 0:
		return nil, invalid(field, path, "is empty")
	}
	return fi, nil
}

// DetectKernel says whether path is an x86-64 ELF vmlinux or a bzImage.
func DetectKernel(path string) (KernelFormat, error) {
	if _, err := statFile("kernel", path); err != nil {
		return "", err
	}
	head, _, err := readHead(path, 0x210)
	if err != nil {
		return "", invalid("kernel", path, "%v", err)
	}
	if bytes.HasPrefix(head, []byte("\x7fELF")) {
		f, err := elf.Open(path)
		if err != nil {
			return "", invalid("kernel", path, "unreadable ELF: %v", err)
		}
		defer f.Close()
		if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
			return "", invalid("kernel", path, "ELF for %v/%v, want an x86-64 kernel", f.Class, f.Machine)
		}
		return FormatELF, nil
	}
	if len(head) >= 0x206 && string(head[0x202:0x206]) == "HdrS" && head[0x1fe] == 0x55 && head[0x1ff] == 0xaa {
		return FormatBzImage, nil
	}
	return "", invalid("kernel", path, "neither an ELF vmlinux nor an x86 bzImage: give a vmlinuz or vmlinux file (e.g. /boot/vmlinuz-<release>)")
}

var initrdMagics = []struct {
	magic []byte
	name  string
}{
	{[]byte("070701"), "cpio"}, {[]byte("070702"), "cpio"},
	{[]byte{0x1f, 0x8b}, "gzip"}, {[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz"},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd"}, {[]byte{0x02, 0x21, 0x4c, 0x18}, "lz4"},
	{[]byte("BZh"), "bzip2"}, {[]byte{0x5d, 0x00, 0x00}, "lzma"},
}

// DetectInitrd checks that path looks like an initramfs (a newc cpio
// archive, possibly compressed).
func DetectInitrd(path string) (string, error) {
	if _, err := statFile("initrd", path); err != nil {
		return "", err
	}
	head, _, err := readHead(path, 8)
	if err != nil {
		return "", invalid("initrd", path, "%v", err)
	}
	for _, m := range initrdMagics {
		if bytes.HasPrefix(head, m.magic) {
			return m.name, nil
		}
	}
	return "", invalid("initrd", path, "not an initramfs (no cpio, gzip, xz, zstd, lz4, bzip2 or lzma header)")
}

// CheckExt4 checks that path, given in the request field field, is an ext4
// image of a sensible size.
func CheckExt4(field, path string, minSize int64) (ext4img.Superblock, error) {
	fi, err := statFile(field, path)
	if err != nil {
		return ext4img.Superblock{}, err
	}
	sb, err := ext4img.ReadSuperblock(path)
	if err != nil {
		return sb, invalid(field, path, "not an ext4 filesystem image (no superblock): make one with mkfs.ext4 -d DIR FILE SIZE")
	}
	if sb.Size() > fi.Size() {
		return sb, invalid(field, path, "truncated: the filesystem says %d bytes but the file has %d", sb.Size(), fi.Size())
	}
	if sb.Size() < minSize {
		return sb, invalid(field, path, "filesystem is only %d bytes, want at least %d", sb.Size(), minSize)
	}
	return sb, nil
}

// CheckModules checks that dir is a lib/modules/<release> tree and
// returns the release.
func CheckModules(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", invalid("modules", dir, "not an absolute path")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", invalid("modules", dir, "no such directory")
	}
	if !fi.IsDir() {
		return "", invalid("modules", dir, "is a file, want the lib/modules/<release> directory")
	}
	if _, err := os.Stat(filepath.Join(dir, "kernel")); err != nil {
		if _, err := os.Stat(filepath.Join(dir, "modules.builtin")); err != nil {
			return "", invalid("modules", dir, "no kernel/ or modules.builtin inside: pass lib/modules/<release>, not its parent")
		}
	}
	return filepath.Base(filepath.Clean(dir)), nil
}
