package provision

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// A Mount is one mount a chroot needs, as data. Target is a path inside the
// root; the executor resolves it there (symbolic links are followed inside
// the root, never out of it) and creates it when missing.
type Mount struct {
	Source string  // "proc", "sysfs", "devpts", "tmpfs", or a host path for a bind mount
	Target string  // absolute path inside the root, e.g. "/proc"
	FSType string  // "" for a bind mount
	Flags  uintptr // unix.MS_* flags
	Data   string  // filesystem options
}

func (m Mount) String() string {
	if m.FSType == "" {
		return fmt.Sprintf("bind %s on %s", m.Source, m.Target)
	}
	return fmt.Sprintf("%s on %s", m.FSType, m.Target)
}

// A TempFile is a file placed in the root for the chroot's lifetime. The
// file it replaces (or its absence) is kept beside it, under a marker
// name, until it is restored, so a crashed run is undone by Cleanup.
type TempFile struct {
	Path    string // absolute path inside the root
	Content []byte
	Mode    fs.FileMode
}

// Plan is everything OpenChroot changes on the host, in the order it is
// applied; it is undone in reverse.
type Plan struct {
	Mounts []Mount
	Files  []TempFile
}

// policyRCD stops package maintainer scripts from starting services inside
// the chroot (invoke-rc.d and deb-systemd-invoke consult it).
const policyRCD = "#!/bin/sh\n# Written by banger while provisioning; removed afterwards.\nexit 101\n"

// ChrootPlan returns what a provisioning chroot changes in the image for
// its lifetime: a tmpfs on /run (so nothing written there ends in the
// image; the agents preset keeps its scratch homes and npm's cache there),
// the host's resolver configuration for network access, and a policy-rc.d
// that keeps package scripts from starting services. The kernel
// filesystems (/proc, /sys, /dev, devpts, /dev/shm) are not in it: each
// command's sandbox mounts its own (buildsandbox.Plan), and the host's
// /dev never enters the image.
func ChrootPlan(resolvConf []byte) Plan {
	return Plan{
		Mounts: []Mount{
			{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
		},
		Files: []TempFile{
			{Path: "/etc/resolv.conf", Content: resolvConf, Mode: 0o644},
			{Path: "/usr/sbin/policy-rc.d", Content: []byte(policyRCD), Mode: 0o755},
		},
	}
}

// mounter is the part of the host's mount table the executor uses.
type mounter interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
}

// sysMounter is the real mount table.
type sysMounter struct{}

func (sysMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

func (sysMounter) Unmount(target string, flags int) error { return unix.Unmount(target, flags) }

// appliedMount is a mount the executor made: where, and whether it created
// the mount point (then undo removes it again).
type appliedMount struct {
	m       Mount
	target  string // host path
	created bool
}

// mountExec applies mounts in order and undoes them in reverse. It is the
// only code in the package that mounts.
type mountExec struct {
	m       mounter
	root    string
	log     func(string)
	applied []appliedMount
}

// apply mounts ms in order. When one fails, those already made in this
// call are undone in reverse and the error says which mount failed.
func (e *mountExec) apply(ms []Mount) error {
	start := len(e.applied)
	for _, m := range ms {
		if err := e.mountOne(m); err != nil {
			undoErr := e.undoTo(start)
			return errors.Join(fmt.Errorf("mounting %s in %s: %w", m, e.root, err), undoErr)
		}
	}
	return nil
}

func (e *mountExec) mountOne(m Mount) error {
	target, err := resolveInRoot(e.root, m.Target)
	if err != nil {
		return err
	}
	if target == filepath.Clean(e.root) {
		return fmt.Errorf("%s resolves to the root itself; refusing to mount over it", m.Target)
	}
	created := false
	if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(target, 0o755); err != nil {
			return fmt.Errorf("creating mount point: %w", err)
		}
		created = true
	} else if err != nil {
		return err
	}
	if err := e.m.Mount(m.Source, target, m.FSType, m.Flags, m.Data); err != nil {
		if created {
			os.Remove(target)
		}
		return err
	}
	e.applied = append(e.applied, appliedMount{m: m, target: target, created: created})
	return nil
}

// undo unmounts everything apply mounted, in reverse order.
func (e *mountExec) undo() error { return e.undoTo(0) }

func (e *mountExec) undoTo(n int) error {
	var errs []error
	for i := len(e.applied) - 1; i >= n; i-- {
		a := e.applied[i]
		if err := unmount(e.m, a.target, e.log); err != nil {
			errs = append(errs, err)
			continue
		}
		if a.created {
			if err := os.Remove(a.target); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing mount point %s: %w", a.target, err))
			}
		}
	}
	e.applied = e.applied[:n]
	return errors.Join(errs...)
}

// unmount unmounts target; a busy mount is detached lazily (it disappears
// from the tree now and is freed when its last user goes), and a target
// that is no longer mounted counts as done.
func unmount(m mounter, target string, log func(string)) error {
	err := m.Unmount(target, 0)
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		if log != nil {
			log(fmt.Sprintf("%s is busy; detaching it lazily", target))
		}
		if err := m.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmounting %s lazily: %w: run `umount -l %s` by hand", target, err, target)
		}
		return nil
	}
	return fmt.Errorf("unmounting %s: %w: run `umount -l %s` by hand", target, err, target)
}

// Cleanup undoes whatever a provisioning chroot on root left behind after
// a crash: it kills processes still running inside root, unmounts every
// mount below root (deepest first, lazily when busy; root itself stays
// mounted), and restores the files ChrootPlan replaces. It is idempotent
// and cheap when there is nothing to do, so the daemon can call it on
// every start for each build directory it finds.
func Cleanup(root string) error {
	return cleanup(sysMounter{}, procFS{dir: "/proc"}, root, nil)
}

// procFS reads the process table and the mount table.
type procFS struct{ dir string }

func (p procFS) mountinfo() ([]byte, error) {
	return os.ReadFile(filepath.Join(p.dir, "self", "mountinfo"))
}

func (procFS) kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// pidsRootedIn returns the processes whose root directory is root.
func (p procFS) pidsRootedIn(root string) []int {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		link, err := os.Readlink(filepath.Join(p.dir, e.Name(), "root"))
		if err == nil && (link == root || strings.HasPrefix(link, root+"/")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountTable is what cleanup reads from the host, and how it stops
// processes left in a root.
type mountTable interface {
	mountinfo() ([]byte, error)
	pidsRootedIn(root string) []int
	kill(pid int) error
}

func cleanup(m mounter, pt mountTable, root string, log func(string)) error {
	if root == "" || root == "/" {
		return fmt.Errorf("cleanup of %q refused: give the root directory of a build", root)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	} else if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if abs == "/" {
		return fmt.Errorf("cleanup of %q refused: it resolves to /", root)
	}
	killRooted(pt, abs, log)
	var errs []error
	// Several passes: stacked mounts on one path show up one at a time.
	for pass := 0; ; pass++ {
		info, err := pt.mountinfo()
		if err != nil {
			return fmt.Errorf("reading the mount table: %w", err)
		}
		under := mountsUnder(parseMountinfo(info), abs)
		if len(under) == 0 {
			break
		}
		if pass == 8 {
			errs = append(errs, fmt.Errorf("still mounted under %s after %d passes: %s: unmount them by hand (umount -l)", abs, pass, strings.Join(under, ", ")))
			break
		}
		for _, target := range under {
			if err := unmount(m, target, log); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, f := range ChrootPlan(nil).Files {
		if err := restoreFile(abs, f.Path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killRooted kills the processes whose root directory is root and waits
// a moment for them to let go of its mounts.
func killRooted(pt mountTable, root string, log func(string)) {
	pids := pt.pidsRootedIn(root)
	if len(pids) == 0 {
		return
	}
	for _, pid := range pids {
		if log != nil {
			log(fmt.Sprintf("killing process %d left running in %s", pid, root))
		}
		pt.kill(pid)
	}
	for i := 0; i < 20 && len(pt.pidsRootedIn(root)) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// parseMountinfo returns the mount points listed in /proc/self/mountinfo,
// in the table's order, with octal escapes (\040 for a space) decoded.
func parseMountinfo(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		out = append(out, unescapeMountinfo(fields[4]))
	}
	return out
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsUnder returns the mount points strictly below root, deepest first
// and, at equal depth, latest mounted first.
func mountsUnder(points []string, root string) []string {
	type entry struct {
		p     string
		order int
	}
	var es []entry
	seen := map[string]bool{}
	for i, p := range points {
		if strings.HasPrefix(p, root+"/") && !seen[p] {
			seen[p] = true
			es = append(es, entry{p, i})
		}
	}
	sort.SliceStable(es, func(i, j int) bool {
		di, dj := strings.Count(es[i].p, "/"), strings.Count(es[j].p, "/")
		if di != dj {
			return di > dj
		}
		return es[i].order > es[j].order
	})
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.p
	}
	return out
}

// resolveInRoot returns the host path of p inside root with every
// symbolic link followed as the chroot would see it: absolute links and
// ".." stay inside root. Components that do not exist are kept as given.
func resolveInRoot(root, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%q is not an absolute path inside the image", p)
	}
	resolved := "/"
	remaining := p
	links := 0
	for remaining != "" {
		var part string
		part, remaining, _ = strings.Cut(remaining, "/")
		switch part {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if errors.Is(err, fs.ErrNotExist) {
			resolved = next
			continue
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("resolving %s in %s: too many symbolic links", p, root)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			resolved = "/"
		}
		remaining = target + "/" + remaining
	}
	return filepath.Join(root, filepath.FromSlash(resolved)), nil
}

// resolveParentInRoot resolves p's directory inside root and keeps its
// last component as is, so the file itself (a symbolic link, say) can be
// replaced rather than written through.
func resolveParentInRoot(root, p string) (string, error) {
	clean := path.Clean(p)
	if !path.IsAbs(clean) || clean == "/" {
		return "", fmt.Errorf("%q is not an absolute file path inside the image", p)
	}
	dir, err := resolveInRoot(root, path.Dir(clean))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, path.Base(clean)), nil
}

// Marker suffixes keeping what a TempFile replaced.
const (
	savedSuffix  = ".banger-saved"
	absentSuffix = ".banger-absent"
)

// placeFile writes f into root, first keeping what it replaces: the
// original is renamed to <path>.banger-saved, or an empty
// <path>.banger-absent records that there was none. A marker already
// there (from a crashed run) is kept, since it holds the real original.
func placeFile(root string, f TempFile) error {
	p, err := resolveParentInRoot(root, f.Path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	_, savedErr := os.Lstat(p + savedSuffix)
	_, absentErr := os.Lstat(p + absentSuffix)
	if savedErr != nil && absentErr != nil {
		switch _, err := os.Lstat(p); {
		case err == nil:
			if err := os.Rename(p, p+savedSuffix); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrNotExist):
			if err := os.WriteFile(p+absentSuffix, nil, 0o600); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return writeFileAtomic(p, f.Content, f.Mode)
}

// restoreFile undoes placeFile for the file at guestPath in root; without
// a marker there is nothing to undo.
func restoreFile(root, guestPath string) error {
	p, err := resolveParentInRoot(root, guestPath)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(p + savedSuffix); err == nil {
		if err := os.Rename(p+savedSuffix, p); err != nil {
			return fmt.Errorf("restoring %s: %w", p, err)
		}
		return nil
	}
	if _, err := os.Lstat(p + absentSuffix); err == nil {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing temporary %s: %w", p, err)
		}
		return os.Remove(p + absentSuffix)
	}
	return nil
}

// writeFileAtomic writes content to p through a temporary file in the same
// directory and a rename, so readers see the old file or the new one.
func writeFileAtomic(p string, content []byte, mode fs.FileMode) error {
	return atomicfile.Write(p, content, mode, 0)
}
