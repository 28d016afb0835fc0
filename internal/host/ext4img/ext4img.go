// Package ext4img builds, checks and edits ext4 image files without
// mounting them: mkfs.ext4 -d to populate, debugfs to read and write single
// files, resize2fs to grow, and a superblock reader to recognise them.
// Nothing here needs a loop device, so it works for an unprivileged daemon.
package ext4img

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Superblock is what banger reads from an ext4 image's superblock.
type Superblock struct {
	BlockSize   int64
	BlocksCount int64
	FreeBlocks  int64
	Label       string
	UUID        [16]byte
}

// Size is the filesystem's size in bytes.
func (s Superblock) Size() int64 { return s.BlockSize * s.BlocksCount }

// Used is the space in use, in bytes.
func (s Superblock) Used() int64 { return s.BlockSize * (s.BlocksCount - s.FreeBlocks) }

// ErrNotExt4 means the file has no ext2/3/4 superblock.
var ErrNotExt4 = errors.New("not an ext4 filesystem image")

// ReadSuperblock reads the primary superblock at offset 1024.
func ReadSuperblock(path string) (Superblock, error) {
	f, err := os.Open(path)
	if err != nil {
		return Superblock{}, err
	}
	defer f.Close()
	buf := make([]byte, 1024)
	if _, err := f.ReadAt(buf, 1024); err != nil {
		if errors.Is(err, io.EOF) {
			return Superblock{}, fmt.Errorf("%s: %w (file too small)", path, ErrNotExt4)
		}
		return Superblock{}, err
	}
	le := binary.LittleEndian
	if le.Uint16(buf[0x38:]) != 0xEF53 {
		return Superblock{}, fmt.Errorf("%s: %w (no superblock magic)", path, ErrNotExt4)
	}
	var sb Superblock
	sb.BlockSize = 1024 << le.Uint32(buf[0x18:])
	sb.BlocksCount = int64(le.Uint32(buf[0x04:]))
	sb.FreeBlocks = int64(le.Uint32(buf[0x0C:]))
	if le.Uint32(buf[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
		sb.BlocksCount |= int64(le.Uint32(buf[0x150:])) << 32
		sb.FreeBlocks |= int64(le.Uint32(buf[0x158:])) << 32
	}
	copy(sb.UUID[:], buf[0x68:0x78])
	sb.Label = strings.TrimRight(string(buf[0x78:0x88]), "\x00")
	return sb, nil
}

// Runner runs an external tool; tests may replace it to record calls.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs programs for real and includes their output in errors.
type ExecRunner struct{}

// Run executes name with args and returns its combined output.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return out, fmt.Errorf("%s not found: install e2fsprogs (apt-get install e2fsprogs)", name)
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Tools edits images with e2fsprogs.
type Tools struct {
	R Runner
}

// New returns Tools that run the real programs.
func New() *Tools { return &Tools{R: ExecRunner{}} }

// SeedBlockSize is the block size of every image MakeFromDir makes.
const SeedBlockSize = 4096

// MakeFromDir creates a fresh ext4 image of size bytes at path populated
// with the contents of dir (owners and modes kept), labelled label. The
// image is sparse. path must not exist.
//
// The images are seeds: small file systems that a VM's guest grows to
// fill a disk of many GiB (internal/guest/growfs). So they get the block
// size (SeedBlockSize) and inode density (one per 16 KiB) of a big file
// system; mkfs would otherwise pick its "small" profile for them (1 KiB
// blocks, an inode per 4 KiB), four times the block-group metadata and
// inodes once grown.
func (t *Tools) MakeFromDir(ctx context.Context, path, dir, label string, size int64) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s already exists", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	f.Close()
	args := []string{"-q", "-F", "-t", "ext4", "-b", strconv.Itoa(SeedBlockSize), "-i", "16384", "-d", dir}
	if label != "" {
		args = append(args, "-L", label)
	}
	args = append(args, path)
	if _, err := t.R.Run(ctx, "mkfs.ext4", args...); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// Grow enlarges the image file to size bytes and the filesystem with it.
// Shrinking is refused.
func (t *Tools) Grow(ctx context.Context, path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if size < fi.Size() {
		return fmt.Errorf("cannot shrink %s from %d to %d bytes", path, fi.Size(), size)
	}
	if size == fi.Size() {
		return nil
	}
	if err := os.Truncate(path, size); err != nil {
		return err
	}
	// resize2fs insists on a checked filesystem.
	if _, err := t.R.Run(ctx, "e2fsck", "-f", "-p", path); err != nil {
		// e2fsck exits 1 when it fixed something, which is fine here.
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() > 1 {
			return err
		}
	}
	_, err = t.R.Run(ctx, "resize2fs", path)
	return err
}

// script runs debugfs requests from a command file and returns its output.
func (t *Tools) script(ctx context.Context, image string, write bool, cmds []string) ([]byte, error) {
	f, err := os.CreateTemp("", "debugfs-*.cmd")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	f.WriteString(strings.Join(cmds, "\n") + "\n")
	f.Close()
	args := []string{"-f", f.Name()}
	if write {
		args = append([]string{"-w"}, args...)
	}
	return t.R.Run(ctx, "debugfs", append(args, image)...)
}

// debugfs runs requests and fails when debugfs reports a failed request.
func (t *Tools) debugfs(ctx context.Context, image string, write bool, cmds ...string) ([]byte, error) {
	out, err := t.script(ctx, image, write, cmds)
	if err != nil {
		return out, err
	}
	// debugfs reports per-request failures on its output but exits 0.
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "debugfs ") {
			continue
		}
		for _, bad := range []string{"File not found", "Could not allocate", "No free space", "Ext2 file too big",
			"already exists", "Filesystem opened read/only", "is not a directory", "not found by ext2_lookup"} {
			if strings.Contains(l, bad) {
				return out, fmt.Errorf("debugfs on %s: %s", image, l)
			}
		}
	}
	return out, nil
}

// File is one file to write into an image.
type File struct {
	Path    string // absolute path inside the image
	Mode    os.FileMode
	UID     int
	GID     int
	Content []byte // for regular files
	Target  string // for symlinks (Mode has ModeSymlink)
}

// WriteFiles writes files (and the directories they need, mode 0755) into
// the image, replacing existing files. It is idempotent: writing the same
// files again leaves the same image.
func (t *Tools) WriteFiles(ctx context.Context, image string, files []File) error {
	tmp, err := os.MkdirTemp("", "ext4img-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var dirs, targets []string
	seen := map[string]bool{}
	for _, f := range files {
		if !filepath.IsAbs(f.Path) || strings.ContainsAny(f.Path, " \t\n\"") {
			return fmt.Errorf("cannot write %q: need an absolute path without spaces or quotes", f.Path)
		}
		for _, dir := range parents(f.Path) {
			if !seen[dir] {
				seen[dir] = true
				dirs = append(dirs, dir)
			}
		}
		targets = append(targets, f.Path)
	}
	// debugfs corrupts the directory tree when asked to mkdir a directory
	// that exists, so look first and create only what is missing.
	present, err := t.existing(ctx, image, append(append([]string{}, dirs...), targets...))
	if err != nil {
		return err
	}
	var cmds []string
	for _, dir := range dirs {
		if !present[dir] {
			cmds = append(cmds, "mkdir "+dir)
		}
	}
	for i, f := range files {
		if present[f.Path] {
			cmds = append(cmds, "rm "+f.Path)
		}
		if f.Mode&os.ModeSymlink != 0 {
			cmds = append(cmds, fmt.Sprintf("symlink %s %s", f.Path, f.Target))
			continue
		}
		src := filepath.Join(tmp, fmt.Sprint(i))
		if err := os.WriteFile(src, f.Content, 0o600); err != nil {
			return err
		}
		mode := uint32(f.Mode.Perm()) | 0o100000
		if f.Mode&os.ModeSetuid != 0 {
			mode |= 0o4000
		}
		cmds = append(cmds,
			fmt.Sprintf("write %s %s", src, f.Path),
			fmt.Sprintf("set_inode_field %s mode 0%o", f.Path, mode),
			fmt.Sprintf("set_inode_field %s uid %d", f.Path, f.UID),
			fmt.Sprintf("set_inode_field %s gid %d", f.Path, f.GID),
		)
	}
	_, err = t.debugfs(ctx, image, true, cmds...)
	return err
}

// existing stats every path in one debugfs session and reports which exist.
func (t *Tools) existing(ctx context.Context, image string, paths []string) (map[string]bool, error) {
	cmds := make([]string, len(paths))
	for i, p := range paths {
		cmds[i] = "stat " + p
	}
	out, err := t.script(ctx, image, false, cmds)
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	current := ""
	for _, line := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(line, "debugfs: stat "); ok {
			current = strings.TrimSpace(p)
			present[current] = true
			continue
		}
		if current != "" && strings.Contains(line, "File not found") {
			present[current] = false
		}
	}
	return present, nil
}

// parents returns the directories above path, outermost first, excluding /.
func parents(path string) []string {
	var out []string
	for dir := filepath.Dir(path); dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		out = append([]string{dir}, out...)
	}
	return out
}

// ReadFile returns a file's content from the image.
func (t *Tools) ReadFile(ctx context.Context, image, path string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "ext4img-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dst := filepath.Join(tmp, "out")
	if _, err := t.debugfs(ctx, image, false, fmt.Sprintf("dump %s %s", path, dst)); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(dst)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s has no %s", image, path)
	}
	return b, err
}

// DumpDir copies directory dir of the image (recursively, with owners and
// modes) to dest/<base of dir>.
func (t *Tools) DumpDir(ctx context.Context, image, dir, dest string) error {
	_, err := t.debugfs(ctx, image, false, fmt.Sprintf("rdump %s %s", dir, dest))
	return err
}

// Exists reports whether path exists in the image.
func (t *Tools) Exists(ctx context.Context, image, path string) (bool, error) {
	out, err := t.R.Run(ctx, "debugfs", "-R", "stat "+path, image)
	if err != nil {
		return false, err
	}
	return !bytes.Contains(out, []byte("File not found")), nil
}
