package workspace

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// ExtractOptions tunes Extract.
type ExtractOptions struct {
	// MaxBytes caps what the stream may make the receiver write: every
	// file's content at its full logical size (a sparse entry counts as if
	// its holes were data, since they are written out as zeros) plus 512
	// bytes for each entry, so that a stream of endless empty entries is
	// bounded too. 0 means no limit.
	MaxBytes int64
	// Umask holds the permission bits cleared from every file and
	// directory installed, as the receiving process's umask does for
	// files it creates itself; 0 keeps the stream's bits. Setuid, setgid
	// and sticky bits are never installed, whatever the options.
	Umask uint32
	// Name is, for [Place], the one top-level name the stream must hold:
	// the name the user asked to copy. The entry is installed under the
	// name the request chose, never one the stream chose; a stream naming
	// anything else is refused. "" accepts whichever single name the
	// stream holds.
	Name string
	// NoReplace makes [Place] refuse, with an error matching
	// [ErrWouldReplace], when anything already exists at the final path;
	// by default a file or symlink there is replaced.
	NoReplace bool
	// ConfineSymlinks refuses symlinks that could point outside the copied
	// entry on the receiving side: an absolute target, a target that
	// climbs above the entry's top with "..", a ".." after another
	// component (which the kernel resolves through symlinks, not
	// lexically), and a top-level entry that is itself a symlink. Set it
	// when the stream's author is not trusted: a link planted in a copy
	// aims the user's later writes through it.
	ConfineSymlinks bool
	// UID and GID own everything installed. Running as root, the tree is
	// chowned to them (root:root by default). Not running as root, ownership
	// is left alone unless one of them is set, in which case the chown is
	// attempted and its failure reported.
	UID, GID int
}

// Extract reads a tar stream and installs it as dest (e.g. /root/repo),
// replacing what was there. dest's parent must exist. If dest is a symlink,
// the directory it points to is replaced.
//
// Until the new tree is in place nothing outside the staging directory is
// touched: on any error (an unsafe entry, MaxBytes exceeded, a stream cut
// short, ctx cancelled) dest is left as it was, the staging directory is
// removed and zero Stats are returned. If the new tree is installed but the
// previous one cannot be removed, Extract returns the new tree's Stats and
// an error saying where the leftover is.
func Extract(ctx context.Context, r io.Reader, dest string, opt ExtractOptions) (Stats, error) {
	if dest == "" {
		return Stats{}, errors.New("extracting workspace: no destination directory given")
	}
	dest, err := filepath.Abs(dest)
	if err != nil {
		return Stats{}, fmt.Errorf("extracting workspace into %s: %w", dest, err)
	}
	fi, err := os.Lstat(dest)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		resolved, rerr := filepath.EvalSymlinks(dest)
		if rerr != nil {
			return Stats{}, fmt.Errorf("extracting workspace: %s is a symlink to a missing directory: create its target, or remove the link: %w", dest, rerr)
		}
		dest = resolved
		fi, err = os.Lstat(dest)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return Stats{}, fmt.Errorf("extracting workspace into %s: %w", dest, err)
	}
	if err == nil && !fi.IsDir() {
		return Stats{}, fmt.Errorf("extracting workspace: %s exists and is not a directory: move it away first", dest)
	}
	if filepath.Dir(dest) == dest {
		return Stats{}, fmt.Errorf("extracting workspace: refusing to replace %s: pass a directory such as /root/repo", dest)
	}

	room := roomIn(filepath.Dir(dest))
	staging, err := os.MkdirTemp(filepath.Dir(dest), filepath.Base(dest)+".incoming-")
	if err != nil {
		return Stats{}, fmt.Errorf("extracting workspace: creating a staging directory next to %s (its parent must exist and be writable): %w", dest, room.noSpace(err))
	}
	stats, _, err := extractInto(ctx, room.count(r), staging, opt, false)
	err = room.noSpace(err)
	var previous string
	if err == nil {
		previous, err = install(staging, dest)
	}
	if err != nil {
		if rerr := removeTree(staging); rerr != nil {
			err = fmt.Errorf("%w (and removing the staging directory failed: %v: remove %s by hand)", err, rerr, staging)
		}
		return Stats{}, fmt.Errorf("extracting workspace into %s (left unchanged): %w", dest, err)
	}
	if previous != "" {
		if err := removeTree(previous); err != nil {
			return stats, fmt.Errorf("workspace installed at %s, but removing the previous copy at %s failed: %w: remove it by hand", dest, previous, err)
		}
	}
	return stats, nil
}

// extractInto extracts the stream into the (fresh, empty) directory dir.
// With oneTop set, every entry must be one top-level name or under it (a
// stream from PackPath); that name is returned.
func extractInto(ctx context.Context, r io.Reader, dir string, opt ExtractOptions, oneTop bool) (Stats, string, error) {
	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, "", fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(rootfd)
	x := &extractor{
		ctx:      ctx,
		rootfd:   rootfd,
		chown:    os.Geteuid() == 0 || opt.UID != 0 || opt.GID != 0,
		uid:      opt.UID,
		gid:      opt.GID,
		maxBytes: opt.MaxBytes,
		umask:    opt.Umask & 0o777,
		confine:  opt.ConfineSymlinks,
		dirs:     map[string]dirMeta{},
		oneTop:   oneTop,
		wantTop:  opt.Name,
		rootMode: 0o755 &^ (opt.Umask & 0o777),
		cacheFd:  -1,
		buf:      make([]byte, 128<<10),
	}
	defer x.dropCache()
	if err := x.readStream(r); err != nil {
		return Stats{}, "", err
	}
	if oneTop && x.top == "" {
		return Stats{}, "", unsafeEntry("the stream holds no file or directory to copy")
	}
	if err := x.finishDirs(); err != nil {
		return Stats{}, "", err
	}
	// One syncfs makes the content durable before the rename publishes it,
	// instead of an fsync per file.
	if err := unix.Syncfs(rootfd); err != nil {
		return Stats{}, "", fmt.Errorf("syncing %s: %w", dir, err)
	}
	return x.stats, x.top, nil
}

type extractor struct {
	ctx      context.Context
	rootfd   int
	chown    bool
	uid, gid int
	maxBytes int64
	total    int64  // what MaxBytes counts so far
	umask    uint32 // permission bits cleared from every mode
	confine  bool   // ExtractOptions.ConfineSymlinks
	stats    Stats
	oneTop   bool               // every entry must be top or under it
	wantTop  string             // the top name the caller asked for ("" any)
	top      string             // the first entry's first component
	dirs     map[string]dirMeta // final metadata, applied once every entry is in
	rootMode uint32
	rootTime time.Time
	cacheRel string // the directory cacheFd refers to
	cacheFd  int
	buf      []byte
}

type dirMeta struct {
	mode  uint32
	mtime time.Time // zero: leave as created
}

type writerOnly struct{ io.Writer }

// countingReader counts the bytes the tar reader consumed, which lets
// readStream tell a complete archive from one cut at an entry boundary
// (archive/tar accepts both).
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func (x *extractor) readStream(r io.Reader) error {
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	var dataEnd int64 // stream offset where the last entry's data ended
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the workspace stream after %d bytes: %w", cr.n, err)
		}
		if err := x.entry(tr, hdr); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		dataEnd = cr.n
	}
	// A complete archive ends with two zero blocks after the padded data.
	if trailer := cr.n - (dataEnd+511)/512*512; trailer < 1024 {
		return fmt.Errorf("the workspace stream ended after %d bytes without its end-of-archive marker: it was cut short (did the sender fail?)", cr.n)
	}
	return nil
}

// blockSize is tar's block: every entry takes at least one, its header.
const blockSize = 512

// charge counts n more bytes against MaxBytes.
func (x *extractor) charge(n int64) error {
	x.total += n
	if x.maxBytes > 0 && (x.total > x.maxBytes || x.total < 0) {
		return fmt.Errorf("%w: the stream's files (at their full size, holes included, plus 512 bytes per entry) exceed the %d-byte limit (MaxBytes): raise the limit, or leave large files out", ErrTooLarge, x.maxBytes)
	}
	return nil
}

// perm is the permission part of a tar mode, less the umask: setuid,
// setgid and sticky bits are dropped.
func (x *extractor) perm(mode int64) uint32 {
	return uint32(mode) & 0o777 &^ x.umask
}

// confined refuses a symlink at rel (a path whose first component is the
// copied entry) unless its target stays inside the entry. The check is
// lexical and therefore only sound for targets whose ".." components all
// come first: those climb from the link's own directory, a real directory
// (the extractor never creates anything through a symlink), and every
// later component descends, through links that are confined themselves.
func confined(rel, target string) error {
	dir := path.Dir(rel)
	if dir == "." {
		return unsafeEntry("the entry is a symlink to %q: copy the file or directory it points to instead", target)
	}
	if strings.HasPrefix(target, "/") {
		return outsideLink("symlink to the absolute path %q, which would point outside the copy on this side", target)
	}
	up, descending := 0, false
	for _, c := range strings.Split(target, "/") {
		switch {
		case c == "" || c == ".":
		case c == "..":
			if descending {
				return outsideLink("symlink to %q: a \"..\" after another component may leave the copy", target)
			}
			up++
		default:
			descending = true
		}
	}
	if up > strings.Count(dir, "/") {
		return outsideLink("symlink to %q, which climbs out of the copy", target)
	}
	return nil
}

func outsideLink(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrOutsideLink)
}

func unsafeEntry(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrUnsafeEntry)
}

// cleanName validates a tar name and returns it relative to the root
// ("." for the root itself). Only directories may carry a trailing slash.
func cleanName(name string, isDir bool) (string, error) {
	n := name
	if isDir && len(n) > 1 {
		n = strings.TrimSuffix(n, "/")
	}
	switch {
	case n == "":
		return "", unsafeEntry("empty name")
	case strings.HasPrefix(n, "/"):
		return "", unsafeEntry("absolute path")
	case n == ".." || strings.HasPrefix(n, "../") || strings.HasSuffix(n, "/..") || strings.Contains(n, "/../"):
		return "", unsafeEntry(`".." in the path`)
	case filepath.Clean(n) != n:
		return "", unsafeEntry("name is not clean (it would be %q)", filepath.Clean(n))
	}
	return n, nil
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		// PAX defaults for the entries that follow; archive/tar applies
		// what matters. Counted, so that endless ones end too.
		return x.charge(blockSize)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return unsafeEntry("device nodes and fifos are not workspace content")
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
	default:
		return unsafeEntry("unsupported entry type %q", hdr.Typeflag)
	}
	rel, err := cleanName(hdr.Name, hdr.Typeflag == tar.TypeDir)
	if err != nil {
		return err
	}
	cost := int64(blockSize)
	if hdr.Typeflag == tar.TypeReg {
		if hdr.Size < 0 {
			return unsafeEntry("negative size")
		}
		cost += hdr.Size
	}
	if err := x.charge(cost); err != nil {
		return err
	}
	if x.oneTop {
		if err := x.checkTop(rel); err != nil {
			return err
		}
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return unsafeEntry("only a directory may stand for the workspace root")
		}
		x.rootMode, x.rootTime = x.perm(hdr.Mode), hdr.ModTime
		return nil
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(rel, hdr)
	case tar.TypeReg:
		return x.file(tr, rel, hdr)
	case tar.TypeSymlink:
		return x.symlink(rel, hdr)
	default:
		return x.hardlink(rel, hdr)
	}
}

// checkTop refuses an entry outside the one top-level name the first entry
// set.
func (x *extractor) checkTop(rel string) error {
	if rel == "." {
		return unsafeEntry("a root entry: the stream must hold exactly one file or directory")
	}
	top, _, _ := strings.Cut(rel, "/")
	switch {
	case x.wantTop != "" && top != x.wantTop:
		return unsafeEntry("the stream's entry is named %q, but %q was asked for: only that name is accepted", top, x.wantTop)
	case x.top == "":
		x.top = top
	case top != x.top:
		return unsafeEntry("a second top-level name %q after %q: the stream must hold exactly one file or directory", top, x.top)
	}
	return nil
}

func (x *extractor) dir(rel string, hdr *tar.Header) error {
	pfd, base, err := x.parentOf(rel)
	if err != nil {
		return err
	}
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
		if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating directory: %w", err)
		}
		// A directory may be announced after its contents; anything else
		// of that name is a duplicate.
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return unsafeEntry("an earlier entry of that name is not a directory")
		}
		unix.Close(fd)
	} else {
		x.stats.Dirs++
		if err := x.chownAt(pfd, base); err != nil {
			return err
		}
	}
	x.dirs[rel] = dirMeta{mode: x.perm(hdr.Mode), mtime: hdr.ModTime}
	return nil
}

func (x *extractor) file(tr *tar.Reader, rel string, hdr *tar.Header) error {
	pfd, base, err := x.parentOf(rel)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return unsafeEntry("an earlier entry has the same name")
		}
		return fmt.Errorf("creating file: %w", err)
	}
	f := os.NewFile(uintptr(fd), rel)
	// writerOnly hides (*os.File).ReadFrom, which would ignore x.buf and
	// allocate a fresh buffer per file.
	n, err := io.CopyBuffer(writerOnly{f}, ctxReader{x.ctx, tr}, x.buf)
	if err == nil && x.chown {
		err = x.chownErr(f.Chown(x.uid, x.gid))
	}
	if err == nil {
		err = unix.Fchmod(fd, x.perm(hdr.Mode))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing file: %w", err)
	}
	x.stats.Files++
	x.stats.Bytes += n
	return setTimes(pfd, base, hdr.ModTime)
}

func (x *extractor) symlink(rel string, hdr *tar.Header) error {
	if hdr.Linkname == "" {
		return unsafeEntry("symlink with an empty target")
	}
	if x.confine {
		if err := confined(rel, hdr.Linkname); err != nil {
			return err
		}
	}
	pfd, base, err := x.parentOf(rel)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return unsafeEntry("an earlier entry has the same name")
		}
		return fmt.Errorf("creating symlink: %w", err)
	}
	if err := x.chownAt(pfd, base); err != nil {
		return err
	}
	x.stats.Symlinks++
	return setTimes(pfd, base, hdr.ModTime)
}

func (x *extractor) hardlink(rel string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname, false)
	if err != nil || target == "." {
		return unsafeEntry("hard link to %q, which is not a path inside the workspace", hdr.Linkname)
	}
	tfd, err := x.walk(path.Dir(target), false)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return unsafeEntry("hard link to %q, which no earlier entry created", hdr.Linkname)
		}
		return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
	}
	defer unix.Close(tfd)
	tbase := path.Base(target)
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return unsafeEntry("hard link to %q, which no earlier entry created", hdr.Linkname)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return unsafeEntry("hard link to %q, which is not a regular file (only files may be hard linked)", hdr.Linkname)
	}
	pfd, base, err := x.parentOf(rel)
	if err != nil {
		return err
	}
	// Flags 0: linkat does not follow a symlink at the target, and we just
	// checked it is a regular file in a directory only we write to.
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return unsafeEntry("an earlier entry has the same name")
		}
		return fmt.Errorf("creating hard link: %w", err)
	}
	x.stats.Files++
	return nil
}

// parentOf returns a descriptor of rel's parent directory, creating missing
// directories, and rel's last component. The descriptor belongs to the
// extractor's one-entry cache: tar streams list a directory's files together.
func (x *extractor) parentOf(rel string) (int, string, error) {
	dir, base := path.Dir(rel), path.Base(rel)
	if x.cacheFd >= 0 && x.cacheRel == dir {
		return x.cacheFd, base, nil
	}
	x.dropCache()
	fd, err := x.walk(dir, true)
	if err != nil {
		return -1, "", err
	}
	x.cacheRel, x.cacheFd = dir, fd
	return fd, base, nil
}

func (x *extractor) dropCache() {
	if x.cacheFd >= 0 {
		unix.Close(x.cacheFd)
		x.cacheFd = -1
	}
}

// walk opens the directory rel under the root one component at a time with
// O_NOFOLLOW|O_DIRECTORY, so it never passes through a symlink, creating
// missing components when create is set. The caller closes the descriptor.
func (x *extractor) walk(rel string, create bool) (int, error) {
	fd, err := unix.Dup(x.rootfd)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	if rel == "." {
		return fd, nil
	}
	sofar := ""
	for _, comp := range strings.Split(rel, "/") {
		sofar = path.Join(sofar, comp)
		next, err := unix.Openat(fd, comp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, comp, 0o700); err == nil {
				x.stats.Dirs++
				x.dirs[sofar] = dirMeta{mode: 0o755 &^ x.umask}
				if err = x.chownAt(fd, comp); err == nil {
					next, err = unix.Openat(fd, comp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				}
			}
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			// Linux reports a symlink met with O_NOFOLLOW|O_DIRECTORY as
			// either; tell the two apart for the message.
			var st unix.Stat_t
			if unix.Fstatat(fd, comp, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			} else {
				err = unix.ENOTDIR
			}
		}
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.ELOOP):
			return -1, unsafeEntry("the path goes through the symlink %q", sofar)
		case errors.Is(err, unix.ENOTDIR):
			return -1, unsafeEntry("the path goes through %q, which is not a directory", sofar)
		case err != nil:
			return -1, fmt.Errorf("opening directory %q: %w", sofar, err)
		}
		fd = next
	}
	return fd, nil
}

func (x *extractor) chownAt(dirfd int, name string) error {
	if !x.chown {
		return nil
	}
	return x.chownErr(unix.Fchownat(dirfd, name, x.uid, x.gid, unix.AT_SYMLINK_NOFOLLOW))
}

func (x *extractor) chownErr(err error) error {
	if err != nil {
		return fmt.Errorf("chown to %d:%d: %w (run as root, or leave UID and GID zero to keep the caller's ownership)", x.uid, x.gid, err)
	}
	return nil
}

func setTimes(dirfd int, name string, mtime time.Time) error {
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if err := unix.UtimesNanoAt(dirfd, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting mtime: %w", err)
	}
	return nil
}

// finishDirs gives directories their final modes and mtimes, deepest first,
// so that neither a read-only mode nor a later child creation gets in the
// way.
func (x *extractor) finishDirs() error {
	rels := make([]string, 0, len(x.dirs))
	for rel := range x.dirs {
		rels = append(rels, rel)
	}
	sort.Slice(rels, func(i, j int) bool {
		di, dj := strings.Count(rels[i], "/"), strings.Count(rels[j], "/")
		if di != dj {
			return di > dj
		}
		return rels[i] < rels[j]
	})
	for _, rel := range rels {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		meta := x.dirs[rel]
		pfd, base, err := x.parentOf(rel)
		if err != nil {
			return fmt.Errorf("directory %q: %w", rel, err)
		}
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Fchmod(fd, meta.mode)
			unix.Close(fd)
		}
		if err == nil && !meta.mtime.IsZero() {
			err = setTimes(pfd, base, meta.mtime)
		}
		if err != nil {
			return fmt.Errorf("directory %q: %w", rel, err)
		}
	}
	x.dropCache()
	if err := unix.Fchmod(x.rootfd, x.rootMode); err != nil {
		return fmt.Errorf("workspace root: %w", err)
	}
	if x.chown {
		if err := x.chownErr(unix.Fchown(x.rootfd, x.uid, x.gid)); err != nil {
			return err
		}
	}
	if !x.rootTime.IsZero() {
		ts := unix.NsecToTimespec(x.rootTime.UnixNano())
		return unix.UtimesNanoAt(x.rootfd, ".", []unix.Timespec{ts, ts}, 0)
	}
	return nil
}

// renameExchange atomically swaps two paths; a test replaces it to exercise
// the fallback for filesystems without RENAME_EXCHANGE.
var renameExchange = func(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// rename is os.Rename; a test replaces it to fail the fallback half way.
var rename = os.Rename

// install puts the tree at staging in place as dest and returns where the
// previous tree now is ("" if there was none). On error dest is as it was.
func install(staging, dest string) (previous string, err error) {
	if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
		if err := renameNoReplace(staging, dest); err != nil {
			return "", fmt.Errorf("moving the new workspace into place: %w", err)
		}
		syncDir(filepath.Dir(dest))
		return "", nil
	}
	err = renameExchange(staging, dest)
	if err == nil {
		syncDir(filepath.Dir(dest))
		return staging, nil
	}
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EXDEV) {
		return "", fmt.Errorf("swapping the new workspace into place: %w (is %s a mount point? extract into a directory below it)", err, dest)
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return "", fmt.Errorf("swapping the new workspace into place: %w", err)
	}
	// No RENAME_EXCHANGE on this filesystem: move the old tree aside, the new
	// one in, and the old one back if the second step fails.
	old := dest + ".old-" + randomSuffix()
	if err := rename(dest, old); err != nil {
		return "", fmt.Errorf("moving the old workspace aside: %w", err)
	}
	if err := rename(staging, dest); err != nil {
		if rerr := rename(old, dest); rerr != nil {
			return "", fmt.Errorf("moving the new workspace into place: %w; moving the old one back also failed (%v): it is at %s, rename it to %s by hand", err, rerr, old, dest)
		}
		return "", fmt.Errorf("moving the new workspace into place: %w", err)
	}
	syncDir(filepath.Dir(dest))
	return old, nil
}

// renameNoReplace moves from to to and fails if to exists; on filesystems
// without RENAME_NOREPLACE it falls back to a plain rename.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		err = rename(from, to)
	}
	return err
}

// syncDir syncs dir, best effort: the tree itself was synced before the
// rename.
func syncDir(dir string) { _ = atomicfile.SyncDir(dir) }

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// removeTree removes path like os.RemoveAll, first making directories
// writable if a read-only one is in the way (only root ignores modes).
func removeTree(p string) error {
	err := os.RemoveAll(p)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}
