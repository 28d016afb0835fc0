package workimport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/bangerdev/banger/internal/host/termsafe"
)

// ErrNoGit is returned when git is not on PATH.
var ErrNoGit = errors.New("git not found")

// gitError is a failed git command with what it printed on stderr. The
// stderr of a command that read the guest's objects may hold the guest's
// path names: Error escapes it for a terminal.
type gitError struct {
	args   []string
	dir    string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	var shown []string // the command without its -c settings
	for i := 0; i < len(e.args); i++ {
		if e.args[i] == "-c" {
			i++
			continue
		}
		shown = append(shown, e.args[i])
	}
	msg := fmt.Sprintf("git %s in %s: %v", strings.Join(shown, " "), e.dir, e.err)
	if e.stderr != "" {
		msg += ": " + termsafe.Text(e.stderr)
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

// repoEnv names the environment variables that point git at a repository,
// index or object store other than the one -C selects (a caller running
// inside a git hook has them), or that change what git prints.
var repoEnv = map[string]bool{
	"GIT_DIR": true, "GIT_WORK_TREE": true, "GIT_INDEX_FILE": true, "GIT_COMMON_DIR": true,
	"GIT_OBJECT_DIRECTORY": true, "GIT_ALTERNATE_OBJECT_DIRECTORIES": true,
	"GIT_NAMESPACE": true, "GIT_PREFIX": true, "GIT_QUARANTINE_PATH": true,
	"GIT_CEILING_DIRECTORIES": true, "GIT_DISCOVERY_ACROSS_FILESYSTEM": true,
	"GIT_EXTERNAL_DIFF": true, "GIT_DIFF_OPTS": true, "GIT_FLUSH": true,
	"GIT_AUTHOR_NAME": true, "GIT_AUTHOR_EMAIL": true, "GIT_AUTHOR_DATE": true,
	"GIT_COMMITTER_NAME": true, "GIT_COMMITTER_EMAIL": true, "GIT_COMMITTER_DATE": true,
	"LC_ALL": true, "GIT_PAGER": true, "PAGER": true, "GIT_TERMINAL_PROMPT": true, "GIT_OPTIONAL_LOCKS": true,
}

// gitRun is one git command: where it runs, what it adds to the
// environment, and where its input and output go.
type gitRun struct {
	dir    string
	args   []string
	env    []string  // extra KEY=value, after the sanitized environment
	stdin  io.Reader // nil: no input
	stdout io.Writer // nil: collected and returned
}

// git runs git directly (no shell) in dir with a C locale, no pager, no
// prompt, optional locks off and the caller's repository-selecting
// variables removed, and returns its stdout.
func git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return gitRun{dir: dir, args: args}.run(ctx)
}

func (g gitRun) run(ctx context.Context) ([]byte, error) {
	if g.dir == "" {
		// git -C "" would run in the current directory's repository.
		return nil, fmt.Errorf("git %s: no directory to run in", strings.Join(g.args, " "))
	}
	cmd := g.command(ctx)
	var stdout, stderr bytes.Buffer
	if g.stdout != nil {
		cmd.Stdout = g.stdout
	} else {
		cmd.Stdout = &stdout
	}
	cmd.Stderr = &limitedBuffer{max: 64 << 10, buf: &stderr}
	err := g.wait(ctx, cmd.Run(), &stderr)
	return stdout.Bytes(), err
}

func (g gitRun) command(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", append([]string{"--no-pager", "-C", g.dir}, g.args...)...)
	env := []string{"LC_ALL=C", "GIT_PAGER=cat", "PAGER=cat", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !repoEnv[k] {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, g.env...)
	cmd.Stdin = g.stdin
	return cmd
}

// wait turns the result of running cmd into an error that says what ran.
func (g gitRun) wait(ctx context.Context, err error, stderr *bytes.Buffer) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("%w: git mode needs git on PATH: install git: %v", ErrNoGit, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &gitError{args: g.args, dir: g.dir, stderr: strings.TrimSpace(stderr.String()), err: err}
}

// limitedBuffer keeps the first max bytes written to it and drops the
// rest, so a chatty command cannot grow memory without bound.
type limitedBuffer struct {
	max int
	buf *bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// stderrOf returns the stderr of a failed git command, or "".
func stderrOf(err error) string {
	var ge *gitError
	if errors.As(err, &ge) {
		return ge.stderr
	}
	return ""
}

// isHexID reports whether s looks like a full object id (SHA-1 or
// SHA-256), lower-case hex.
func isHexID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// oneLine trims git's one-line answer.
func oneLine(b []byte) string { return strings.TrimSpace(string(b)) }
