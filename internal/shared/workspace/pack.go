package workspace

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Pack writes a tar stream of the workspace at root to w.
//
// In git mode root may be anywhere inside a work tree: the whole work tree
// is packed from its top. In full_copy mode root itself is the top. root may
// be reached through a symlink; nothing under it is followed.
//
// On error the stream is left without its end-of-archive marker, so
// [Extract] on the other end refuses it instead of installing a partial tree.
func Pack(ctx context.Context, root string, mode Mode, w io.Writer) (Stats, error) {
	mode, err := ParseMode(string(mode))
	if err != nil {
		return Stats{}, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return Stats{}, fmt.Errorf("workspace %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return Stats{}, fmt.Errorf("workspace %s: %w: pass the checkout's directory", root, err)
	}
	if !fi.IsDir() {
		return Stats{}, fmt.Errorf("workspace %s is not a directory: pass the checkout's directory", root)
	}
	p := newPacker(ctx, w)
	switch mode {
	case ModeFullCopy:
		err = p.walkRoot(abs, "", nil)
	default:
		err = packGit(ctx, p, abs)
	}
	if err != nil {
		return p.stats, err
	}
	if err := p.tw.Close(); err != nil {
		return p.stats, fmt.Errorf("finishing workspace stream: %w", err)
	}
	return p.stats, nil
}

// Check refuses what Pack would refuse, without reading any file's
// content: a root that is not a directory, and in git mode a root outside
// a work tree, submodules, nested repositories and unusable git
// directories. `banger vm run` checks before it creates a VM.
func Check(ctx context.Context, root string, mode Mode) error {
	mode, err := ParseMode(string(mode))
	if err != nil {
		return err
	}
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("workspace %s: %w: pass the checkout's directory", root, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("workspace %s is not a directory: pass the checkout's directory", root)
	}
	if mode == ModeGit {
		abs, err := filepath.Abs(root)
		if err != nil {
			return err
		}
		_, err = planGit(ctx, abs)
		return err
	}
	return nil
}

// keepFunc decides whether the walk packs the entry at rel (relative to the
// walk's start) and, for a directory, descends into it.
type keepFunc func(rel string, isDir bool) bool

func newPacker(ctx context.Context, w io.Writer) *packer {
	return &packer{
		ctx:  ctx,
		tw:   tar.NewWriter(w),
		seen: map[string]bool{},
		buf:  make([]byte, 128<<10),
	}
}

// packer writes tar entries for files it reaches through directory file
// descriptors, never following a symlink.
type packer struct {
	ctx   context.Context
	tw    *tar.Writer
	stats Stats
	seen  map[string]bool // archive names already written (overlays write a name once)
	buf   []byte
}

// walkRoot packs the tree under dir (not dir itself) with names prefix+rel.
func (p *packer) walkRoot(dir, prefix string, keep keepFunc) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(fd)
	return p.walkDir(fd, dir, "", prefix, keep)
}

func (p *packer) walkDir(dirfd int, hostDir, rel, prefix string, keep keepFunc) error {
	names, err := readDirNames(dirfd)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", hostDir, err)
	}
	for _, name := range names {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		childRel := name
		if rel != "" {
			childRel = rel + "/" + name
		}
		hostPath := filepath.Join(hostDir, name)
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed while we walk: it is simply not part of the workspace
			}
			return fmt.Errorf("stat %s: %w", hostPath, err)
		}
		if keep != nil && !keep(childRel, st.Mode&unix.S_IFMT == unix.S_IFDIR) {
			continue
		}
		if err := p.walkEntry(dirfd, name, hostPath, childRel, prefix, keep, &st); err != nil {
			return err
		}
	}
	return nil
}

// walkEntry packs the entry name of the directory dirfd, whose lstat is st,
// as prefix+rel, and for a directory everything under it.
func (p *packer) walkEntry(dirfd int, name, hostPath, rel, prefix string, keep keepFunc, st *unix.Stat_t) error {
	archName := prefix + rel
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := p.writeDir(archName, st); err != nil {
			return err
		}
		sub, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening %s: %w (did it change while packing? run again)", hostPath, err)
		}
		defer unix.Close(sub)
		return p.walkDir(sub, hostPath, rel, prefix, keep)
	case unix.S_IFREG:
		return p.writeFile(dirfd, name, hostPath, archName)
	case unix.S_IFLNK:
		return p.writeSymlink(dirfd, name, hostPath, archName, st)
	}
	// Sockets, fifos and device nodes are not workspace content.
	return nil
}

// readDirNames lists a directory by file descriptor, sorted so the stream is
// deterministic. The descriptor stays owned by the caller.
func readDirNames(dirfd int) ([]string, error) {
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(dup)
	f := os.NewFile(uintptr(dup), "")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func mtime(st *unix.Stat_t) time.Time {
	return time.Unix(st.Mtim.Sec, 0)
}

func (p *packer) writeDir(archName string, st *unix.Stat_t) error {
	if p.seen[archName] {
		return nil
	}
	p.seen[archName] = true
	hdr := &tar.Header{
		Typeflag: tar.TypeDir,
		Name:     archName + "/",
		Mode:     int64(st.Mode & 0o777),
		ModTime:  mtime(st),
	}
	if err := p.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", archName, err)
	}
	p.stats.Dirs++
	return nil
}

func (p *packer) writeFile(dirfd int, name, hostPath, archName string) error {
	if p.seen[archName] {
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("opening %s: %w", hostPath, err)
	}
	f := os.NewFile(uintptr(fd), hostPath)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", hostPath, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s changed type while packing: run again", hostPath)
	}
	p.seen[archName] = true
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     archName,
		Mode:     int64(st.Mode & 0o777),
		Size:     st.Size,
		ModTime:  mtime(&st),
	}
	if err := p.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", archName, err)
	}
	n, err := io.CopyBuffer(p.tw, io.LimitReader(ctxReader{p.ctx, f}, st.Size), p.buf)
	if err != nil {
		return fmt.Errorf("packing %s: %w", hostPath, err)
	}
	if n != st.Size {
		return fmt.Errorf("%s shrank while packing (%d of %d bytes): run again once it stops changing", hostPath, n, st.Size)
	}
	p.stats.Files++
	p.stats.Bytes += n
	return nil
}

func (p *packer) writeSymlink(dirfd int, name, hostPath, archName string, st *unix.Stat_t) error {
	if p.seen[archName] {
		return nil
	}
	target, err := readlinkat(dirfd, name, int(st.Size))
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("reading symlink %s: %w", hostPath, err)
	}
	p.seen[archName] = true
	hdr := &tar.Header{
		Typeflag: tar.TypeSymlink,
		Name:     archName,
		Linkname: target,
		Mode:     0o777,
		ModTime:  mtime(st),
	}
	if err := p.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", archName, err)
	}
	p.stats.Symlinks++
	return nil
}

func readlinkat(dirfd int, name string, size int) (string, error) {
	n := max(size+1, 128)
	for {
		buf := make([]byte, n)
		got, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if got < n {
			return string(buf[:got]), nil
		}
		n *= 2
	}
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// dirHeader writes a directory entry for archName from the host directory dir.
func (p *packer) dirHeader(archName, dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	return p.writeDir(archName, &st)
}

// pathAncestors adds every directory above rel (a slash-separated relative
// path) to set.
func pathAncestors(set map[string]bool, rel string) {
	for d := path.Dir(rel); d != "." && d != "/"; d = path.Dir(d) {
		if set[d] {
			return
		}
		set[d] = true
	}
}
