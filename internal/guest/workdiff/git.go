package workdiff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// repo is one workspace as git sees it for one answer: its git directory,
// its working tree, and a private scratch directory (temporary index,
// object directory and HOME) removed by close.
type repo struct {
	gitDir   string // the repository's (or banger's own) git directory
	workTree string
	tmp      string // scratch: index, objects, home
	// objects is the git directory's object store; set once quarantined,
	// new objects go to tmp/objects and these are borrowed.
	objects     string
	quarantined bool
	index       string            // GIT_INDEX_FILE ("" the git directory's own)
	config      map[string]string // configuration overrides, on top of safeConfig
}

// safeConfig is set on every git command: nothing the repository
// configures may run a program, sign, collect garbage or page.
var safeConfig = [][2]string{
	{"core.hooksPath", "/dev/null"},
	{"core.fsmonitor", "false"},
	{"core.splitIndex", "false"},
	{"core.untrackedCache", "false"},
	{"core.pager", "cat"},
	{"commit.gpgSign", "false"},
	{"log.showSignature", "false"},
	{"gc.auto", "0"},
	{"maintenance.auto", "false"},
	{"color.ui", "false"},
	{"advice.addEmbeddedRepo", "false"},
	{"protocol.allow", "never"},
}

func newRepo(gitDir, workTree string) (*repo, error) {
	tmp, err := os.MkdirTemp("", "banger-workdiff-")
	if err != nil {
		return nil, fmt.Errorf("creating a scratch directory in %s: %w", os.TempDir(), err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "home"), 0o700); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &repo{gitDir: gitDir, workTree: workTree, tmp: tmp, config: map[string]string{}}, nil
}

func (r *repo) close() { os.RemoveAll(r.tmp) }

// environ is git's whole environment: nothing of the agent's but PATH.
func (r *repo) environ() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{
		"PATH=" + path,
		"HOME=" + filepath.Join(r.tmp, "home"),
		"LC_ALL=C",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_OPTIONAL_LOCKS=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_PAGER=cat",
		"GIT_DIR=" + r.gitDir,
		"GIT_AUTHOR_NAME=banger", "GIT_AUTHOR_EMAIL=banger@localhost",
		"GIT_COMMITTER_NAME=banger", "GIT_COMMITTER_EMAIL=banger@localhost",
	}
	if r.workTree != "" {
		env = append(env, "GIT_WORK_TREE="+r.workTree)
	}
	if r.index != "" {
		env = append(env, "GIT_INDEX_FILE="+r.index)
	}
	if r.quarantined {
		env = append(env, "GIT_OBJECT_DIRECTORY="+filepath.Join(r.tmp, "objects"),
			"GIT_ALTERNATE_OBJECT_DIRECTORIES="+alternate(r.objects))
	}
	// GIT_CONFIG_COUNT carries keys verbatim, whatever a filter driver's
	// name holds (`-c` would split it at "=").
	n := 0
	add := func(k, v string) {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", n, k), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", n, v))
		n++
	}
	for _, kv := range safeConfig {
		add(kv[0], kv[1])
	}
	for k, v := range r.config {
		add(k, v)
	}
	env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(n))
	return env
}

// alternate is path as one entry of GIT_ALTERNATE_OBJECT_DIRECTORIES,
// which git splits at ":": C-quoted when it holds one.
func alternate(path string) string {
	if !strings.ContainsAny(path, ":\"") {
		return path
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(path) + `"`
}

// gitError is a failed git command with what it said.
type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	msg := fmt.Sprintf("git %s: %v", strings.Join(e.args, " "), e.err)
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

// exitCode is a failed git's exit status, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// command is git with args, in the working tree (or the git directory).
func (r *repo) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", append([]string{"--no-pager"}, args...)...)
	cmd.Env = r.environ()
	cmd.Dir = r.workTree
	if cmd.Dir == "" {
		cmd.Dir = r.gitDir
	}
	return cmd
}

// run runs git with stdin and stdout as given.
func (r *repo) run(ctx context.Context, stdin io.Reader, stdout io.Writer, args ...string) error {
	cmd := r.command(ctx, args...)
	cmd.Stdin, cmd.Stdout = stdin, stdout
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{b: &stderr, left: 4096}
	return r.wait(ctx, cmd.Run(), args, &stderr)
}

// wait turns how a git command ended into an error.
func (r *repo) wait(ctx context.Context, err error, args []string, stderr *bytes.Buffer) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("%w: install git in the guest image", ErrNoGit)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &gitError{args: args, stderr: strings.TrimSpace(stderr.String()), err: err}
}

// output runs git and returns its stdout.
func (r *repo) output(ctx context.Context, args ...string) ([]byte, error) {
	var out bytes.Buffer
	err := r.run(ctx, nil, &out, args...)
	return out.Bytes(), err
}

// line runs git and returns its stdout's first line.
func (r *repo) line(ctx context.Context, args ...string) (string, error) {
	out, err := r.output(ctx, args...)
	s, _, _ := strings.Cut(string(out), "\n")
	return s, err
}

// limitedBuffer keeps the first left bytes written and drops the rest.
type limitedBuffer struct {
	b    *bytes.Buffer
	left int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.left > 0 {
		n := min(len(p), l.left)
		l.b.Write(p[:n])
		l.left -= n
	}
	return len(p), nil
}

// disarmFilters empties every filter driver the repository's
// configuration names, so `git add` runs none of them.
func (r *repo) disarmFilters(ctx context.Context) error {
	out, err := r.output(ctx, "config", "--null", "--name-only", "--get-regexp", `^filter\.`)
	if err != nil && exitCode(err) != 1 { // 1: none
		return fmt.Errorf("reading the repository's filter drivers: %w", err)
	}
	for _, key := range strings.Split(string(out), "\x00") {
		i, j := strings.IndexByte(key, '.'), strings.LastIndexByte(key, '.')
		if i < 0 || j <= i {
			continue
		}
		name := key[i+1 : j]
		for _, v := range []string{"clean", "smudge", "process"} {
			r.config["filter."+name+"."+v] = ""
		}
		r.config["filter."+name+".required"] = "false"
	}
	return nil
}

// quarantine sends new objects to a scratch object directory that
// borrows the repository's, and gives git a scratch index: a copy of the
// repository's own when it has one (its stat data spares rehashing
// unchanged files), else HEAD's tree (or empty).
func (r *repo) quarantine(ctx context.Context, head string) error {
	objects, err := r.line(ctx, "rev-parse", "--git-path", "objects")
	if err != nil {
		return fmt.Errorf("locating the object store: %w", err)
	}
	index, err := r.line(ctx, "rev-parse", "--git-path", "index")
	if err != nil {
		return fmt.Errorf("locating the index: %w", err)
	}
	if !filepath.IsAbs(objects) {
		objects = filepath.Join(r.workTree, objects)
	}
	if !filepath.IsAbs(index) {
		index = filepath.Join(r.workTree, index)
	}
	if err := os.MkdirAll(filepath.Join(r.tmp, "objects", "pack"), 0o700); err != nil {
		return err
	}
	r.objects, r.quarantined = objects, true
	// Scratch objects live only for this answer (a bundle recompresses
	// what it sends): writing them uncompressed spares the emulated
	// guest's CPU.
	r.config["core.looseCompression"] = "0"
	r.index = filepath.Join(r.tmp, "index")
	copied, err := copyFile(index, r.index)
	if err != nil {
		return fmt.Errorf("copying the index %s: %w", index, err)
	}
	if !copied && head != "" {
		if err := r.run(ctx, nil, nil, "read-tree", head); err != nil {
			return fmt.Errorf("reading HEAD's tree into a scratch index: %w", err)
		}
	}
	return nil
}

// copyFile copies the regular file src to dst; a missing src is no copy.
func copyFile(src, dst string) (bool, error) {
	// O_NONBLOCK: a fifo planted as the index must not hang the agent.
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	in := os.NewFile(uintptr(fd), src)
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false, nil
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err == nil, err
}
