package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/bangerdev/banger/internal/host/buildsandbox"
)

// Chroot is a root filesystem prepared for running commands inside it:
// OpenChroot applies ChrootPlan (a /run tmpfs, resolver configuration,
// policy-rc.d) and Close undoes it. Each command runs in its own build
// sandbox (internal/host/buildsandbox): fresh mount, PID, IPC, UTS and cgroup
// namespaces, pivot_rooted into Root, with a minimal /dev of its own, a
// /proc showing only its processes and most capabilities dropped, so
// nothing it runs as root reaches the host's devices, files, processes or
// kernel settings. A Chroot whose Root is set but which was not opened
// still serves Path and WriteFile, and runs commands without the /run
// tmpfs and files of the plan.
type Chroot struct {
	Root string // absolute host path of the root directory
	// Hostname is the commands' hostname (each sandbox has its own UTS
	// namespace): the image's name; buildsandbox.DefaultHostname when
	// empty.
	Hostname string

	mu     sync.Mutex
	log    func(string)
	mounts *mountExec
	pt     mountTable
	files  []TempFile // placed by OpenChroot, in order
	open   bool
}

// OpenChroot prepares root for commands: it first cleans up whatever a
// crashed run left there (see Cleanup), then mounts a tmpfs on /run,
// copies the host's /etc/resolv.conf in and installs a policy-rc.d that
// keeps package scripts from starting services. Every change is undone by
// Close, which callers defer right away: it runs after a failure or a
// panic too. log receives notices such as lazy unmounts; it may be nil.
func OpenChroot(root string, log func(string)) (*Chroot, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("preparing a chroot in %s: %w", root, ErrNotRoot)
	}
	log = orNop(log)
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		log(fmt.Sprintf("no host /etc/resolv.conf (%v): commands in the chroot will have no DNS", err))
	}
	return openChroot(root, ChrootPlan(resolv), sysMounter{}, procFS{dir: "/proc"}, log)
}

func openChroot(root string, plan Plan, m mounter, pt mountTable, log func(string)) (*Chroot, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if abs == "/" {
		return nil, errors.New("refusing to use / as a chroot: give the directory holding the image's root filesystem")
	}
	if fi, err := os.Stat(filepath.Join(abs, "bin/sh")); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("%s does not look like a root filesystem (no /bin/sh): debootstrap it first", abs)
	}
	if err := cleanup(m, pt, abs, log); err != nil {
		return nil, fmt.Errorf("cleaning up a previous run in %s: %w", abs, err)
	}
	c := &Chroot{Root: abs, log: log, pt: pt, mounts: &mountExec{m: m, root: abs, log: log}, open: true}
	if err := c.mounts.apply(plan.Mounts); err != nil {
		c.open = false
		return nil, err
	}
	for _, f := range plan.Files {
		if err := placeFile(abs, f); err != nil {
			return nil, errors.Join(fmt.Errorf("placing %s in %s: %w", f.Path, abs, err), c.Close())
		}
		c.files = append(c.files, f)
	}
	return c, nil
}

// Close kills processes still running inside the root, restores the files
// OpenChroot replaced, unmounts everything (lazily where busy), including
// mounts that commands made inside the root. It is safe to call more than
// once.
func (c *Chroot) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.open {
		return nil
	}
	c.open = false
	killRooted(c.pt, c.Root, c.log)
	var errs []error
	for i := len(c.files) - 1; i >= 0; i-- {
		if err := restoreFile(c.Root, c.files[i].Path); err != nil {
			errs = append(errs, err)
		}
	}
	c.files = nil
	if err := c.mounts.undo(); err != nil {
		errs = append(errs, err)
	}
	if err := cleanup(c.mounts.m, c.pt, c.Root, c.log); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing the chroot in %s: %w", c.Root, err)
	}
	return nil
}

// withMounts applies ms for the duration of fn and undoes them after.
func (c *Chroot) withMounts(ms []Mount, fn func() error) error {
	if c.mounts == nil {
		return fmt.Errorf("mounting in %s: the chroot is not open: use OpenChroot", c.Root)
	}
	c.mu.Lock()
	n := len(c.mounts.applied)
	err := c.mounts.apply(ms)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	fnErr := fn()
	c.mu.Lock()
	undoErr := c.mounts.undoTo(n)
	c.mu.Unlock()
	return errors.Join(fnErr, undoErr)
}

// Path returns the host path of guestPath, with symbolic links resolved as
// the guest would resolve them (never leaving the root).
func (c *Chroot) Path(guestPath string) (string, error) {
	return resolveInRoot(c.Root, guestPath)
}

// WriteFile writes content to guestPath inside the root, atomically,
// creating parent directories (0755). An existing file, or symbolic link,
// at guestPath is replaced, not written through.
func (c *Chroot) WriteFile(guestPath string, content []byte, mode fs.FileMode) error {
	p, err := resolveParentInRoot(c.Root, guestPath)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", guestPath, err)
	}
	if err := writeFileAtomic(p, content, mode); err != nil {
		return fmt.Errorf("writing %s: %w", guestPath, err)
	}
	return nil
}

// DefaultEnv is the environment of commands run in a chroot; Run's env
// entries override it by name.
func DefaultEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"USER=root",
		"LOGNAME=root",
		"LANG=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive",
	}
}

// RunError is a command in the chroot that failed; Output holds its last
// lines of output.
type RunError struct {
	Argv   []string
	Root   string
	Err    error
	Output string
}

func (e *RunError) Error() string {
	msg := fmt.Sprintf("running %q in %s: %v", strings.Join(e.Argv, " "), e.Root, e.Err)
	if e.Output != "" {
		msg += "; last output:\n" + e.Output
	}
	return msg
}

func (e *RunError) Unwrap() error { return e.Err }

// Run runs argv in a build sandbox over the root (argv[0] is looked up in
// the guest's PATH) with DefaultEnv overridden by env, and returns its
// combined output. Nothing the command starts outlives it.
func (c *Chroot) Run(ctx context.Context, env []string, argv ...string) ([]byte, error) {
	var out bytes.Buffer
	err := c.run(ctx, env, &out, argv)
	if err != nil {
		var re *RunError
		if errors.As(err, &re) {
			re.Output = lastLines(out.String(), 30)
		}
	}
	return out.Bytes(), err
}

// Stream runs argv like Run but sends each line of output to log as it
// comes; on failure the error carries the last lines.
func (c *Chroot) Stream(ctx context.Context, env []string, log func(string), argv ...string) error {
	w := newLineWriter(orNop(log), 30)
	err := c.run(ctx, env, w, argv)
	w.flush()
	if err != nil {
		var re *RunError
		if errors.As(err, &re) {
			re.Output = w.Tail()
		}
	}
	return err
}

func (c *Chroot) run(ctx context.Context, env []string, out io.Writer, argv []string) error {
	if len(argv) == 0 {
		return errors.New("running a command in the chroot: no command given")
	}
	fullEnv := mergeEnv(DefaultEnv(), env)
	bin, err := c.lookPath(argv[0], envValue(fullEnv, "PATH"))
	if err != nil {
		return &RunError{Argv: argv, Root: c.Root, Err: err}
	}
	err = buildsandbox.Run(ctx, buildsandbox.Spec{
		Root:     c.Root,
		Hostname: c.Hostname,
		Path:     bin,
		Args:     argv,
		Env:      fullEnv,
		Dir:      "/",
	}, out, out)
	if err != nil {
		return &RunError{Argv: argv, Root: c.Root, Err: err}
	}
	return nil
}

// lookPath finds name in the guest's PATH and returns its guest path.
func (c *Chroot) lookPath(name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		return path.Join("/", name), nil
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if !path.IsAbs(dir) {
			continue
		}
		guest := path.Join(dir, name)
		host, err := resolveInRoot(c.Root, guest)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(host); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return guest, nil
		}
	}
	return "", fmt.Errorf("%s: not found in the image's PATH (%s): install the package that provides it", name, pathEnv)
}

// mergeEnv returns base with the entries of over replacing those of the
// same name, and the others appended.
func mergeEnv(base, over []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				out[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
