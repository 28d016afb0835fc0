package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/creack/pty"
)

// echoScript is the orchestrator's partner in the guest: it answers each
// JSON line with {"echo":LINE} and, for a line containing "later", also
// {"late":LINE} three seconds on — output produced while nobody may be
// attached.
const echoScript = `#!/bin/sh
while IFS= read -r line; do
  printf '{"echo":%s}\n' "$line"
  case "$line" in *later*) (sleep 3; printf '{"late":%s}\n' "$line") & ;; esac
done
`

// hangGuard bounds waits that only end if the code under test works; it
// is a guard against hanging, not a speed assertion.
const hangGuard = 2 * time.Minute

// guestVM boots one VM for a group of tests and makes a checkout with the
// echo script for it.
func guestVM(t testing.TB) (*env, string) {
	e := vmEnv(t)
	e.must("vm", "create", "--name", "g", "--memory", "1GiB", "--disk", "2GiB")
	repo := makeRepo(t)
	e.must("vm", "workspace", "prepare", "g", repo)
	return e, repo
}

// makeRepo is a git checkout with a commit, an uncommitted change, an
// untracked file, an ignored file, an executable and a symlink.
func makeRepo(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(name, data string, mode os.FileMode) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q")
	write("tracked.txt", "one\n", 0o644)
	write("echo.sh", echoScript, 0o755)
	write(".gitignore", "ignored.log\n", 0o644)
	write("src/deep/file.go", "package deep\n", 0o644)
	git("add", "-A")
	git("commit", "-qm", "first")
	write("tracked.txt", "one\ntwo (uncommitted)\n", 0o644)
	write("untracked.txt", "new\n", 0o644)
	write("ignored.log", "junk\n", 0o644)
	if err := os.Symlink("tracked.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (e *env) mustInput(stdin string, args ...string) result {
	e.t.Helper()
	r := e.runInput(e.extra, stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("banger %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, tail(r.stderr, 40))
	}
	return r
}

// apiClient is a typed client of the env's daemon (started if needed).
func apiClient(t testing.TB, e *env) *client.Client {
	var st api.DaemonStatus
	if err := json.Unmarshal([]byte(e.must("daemon", "status", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	c := client.New(st.Socket)
	t.Cleanup(c.Close)
	return c
}

func TestGuestAccess(t *testing.T) {
	e, repo := guestVM(t)
	t.Run("exec", func(t *testing.T) { testExec(t, e) })
	t.Run("cp", func(t *testing.T) { testCopy(t, e) })
	t.Run("workspace", func(t *testing.T) { testWorkspace(t, e, repo) })
	t.Run("malicious-tar", func(t *testing.T) { testMaliciousTar(t, e) })
	t.Run("session-launch", func(t *testing.T) { testSessionLaunch(t, e) })
	t.Run("two-attachers-and-replay", func(t *testing.T) { testAttachers(t, e) })
	t.Run("tty-resize", func(t *testing.T) { testTTYSession(t, e) })
	t.Run("agent-restart", func(t *testing.T) { testAgentRestart(t, e) })
	t.Run("orchestrator-survives-daemon-kill", func(t *testing.T) { testOrchestrator(t, e) })
	t.Run("diff-and-pull", func(t *testing.T) { testDiffAndPull(t, e) })
	t.Run("published-port", func(t *testing.T) { testPublishedPort(t, e) })
	e.must("vm", "delete", "g")
	verifyClean(t, e)
}

func testExec(t *testing.T, e *env) {
	r := e.runWith(e.extra, "vm", "exec", "g", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("exec: code %d stdout %q stderr %q, want 3 \"out\\n\" \"err\\n\"", r.code, r.stdout, r.stderr)
	}
	if r := e.mustInput("hello\nworld\n", "vm", "exec", "g", "--", "tr", "a-z", "A-Z"); r.stdout != "HELLO\nWORLD\n" {
		t.Errorf("exec with stdin: %q", r.stdout)
	}
	if r := e.runWith(e.extra, "vm", "exec", "g", "--", "sh", "-c", "kill -TERM $$"); r.code != 128+int(syscall.SIGTERM) {
		t.Errorf("exec killed by SIGTERM: exit %d, want %d", r.code, 128+int(syscall.SIGTERM))
	}
	r = e.runWith(e.extra, "vm", "exec", "g", "--", "no-such-command")
	if r.code == 0 || !strings.Contains(r.stderr, "no-such-command") {
		t.Errorf("exec of a missing command: exit %d %q", r.code, r.stderr)
	}
	r = e.runWith(e.extra, "vm", "exec", "g", "-w", "/root/repo", "-e", "GREETING=hi", "--", "sh", "-c", `pwd; echo "$GREETING"`)
	if r.stdout != "/root/repo\nhi\n" {
		t.Errorf("exec -w -e: %q %s", r.stdout, r.stderr)
	}
	// The one-answer form a web page's exec box uses.
	res, err := apiClient(t, e).ExecWait(context.Background(), "g", api.ExecRequest{Argv: []string{"sh", "-c", "uname -n; echo err >&2; exit 4"}})
	if err != nil || res.Stdout != "g\n" || res.Stderr != "err\n" || res.ExitCode != 4 {
		t.Errorf("exec and wait: %+v %v", res, err)
	}
	// -t: the command gets a terminal (no local terminal here: no raw mode).
	r = e.runWith(e.extra, "vm", "exec", "g", "-t", "--", "sh", "-c", "test -t 0 && tty")
	if r.code != 0 || !strings.HasPrefix(strings.TrimSpace(r.stdout), "/dev/pts/") {
		t.Errorf("exec -t: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func testCopy(t *testing.T, e *env) {
	src := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha\n"), 0o640)
	os.WriteFile(filepath.Join(src, "sub", "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755)
	os.Symlink("../a.txt", filepath.Join(src, "sub", "link"))
	os.Symlink("/etc/hostname", filepath.Join(src, "outside"))

	e.must("vm", "cp", src, "g:/root/")
	got := e.must("vm", "exec", "g", "--", "sh", "-c",
		"cd /root/tree && stat -c '%n %a' a.txt sub/run.sh && readlink sub/link outside && sub/run.sh && cat sub/link").stdout
	want := "a.txt 640\nsub/run.sh 755\n../a.txt\n/etc/hostname\nran\nalpha\n"
	if got != want {
		t.Errorf("copied tree in the guest:\n%s\nwant:\n%s", got, want)
	}
	// A second copy onto the existing directory is refused, not merged.
	if r := e.runWith(e.extra, "vm", "cp", src, "g:/root/"); r.code == 0 || !strings.Contains(r.stderr, "exists and is a directory") {
		t.Errorf("copy onto an existing directory: exit %d %q", r.code, r.stderr)
	}
	// And back out: modes and links survive the round trip. A link out of
	// the copy (outside -> /etc/hostname) would point into the host: refused
	// unless asked for, leaving nothing behind.
	back := filepath.Join(t.TempDir(), "back")
	if r := e.runWith(e.extra, "vm", "cp", "g:/root/tree", back); r.code == 0 || !strings.Contains(r.stderr, "--outside-links") {
		t.Errorf("copy out of a tree with a link to /etc/hostname: exit %d %q", r.code, r.stderr)
	}
	if _, err := os.Lstat(back); err == nil {
		t.Errorf("a refused copy left %s behind", back)
	}
	e.must("vm", "cp", "--outside-links", "g:/root/tree", back)
	if fi, err := os.Stat(filepath.Join(back, "sub", "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("copied back run.sh: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(back, "outside")); err != nil || l != "/etc/hostname" {
		t.Errorf("copied back symlink: %q %v", l, err)
	}
	if b, _ := os.ReadFile(filepath.Join(back, "sub", "link")); string(b) != "alpha\n" {
		t.Errorf("copied back relative link reads %q", b)
	}
	if r := e.runWith(e.extra, "vm", "cp", "g:/no/such/file", back+"2"); r.code == 0 || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("copy of a missing guest file: exit %d %q", r.code, r.stderr)
	}
}

func testWorkspace(t *testing.T, e *env, repo string) {
	// guestVM prepared the repo in git mode.
	got := e.must("vm", "exec", "g", "-w", "/root/repo", "--", "sh", "-c",
		"ls -A | sort | tr '\\n' ' '; echo; cat tracked.txt; readlink link; stat -c %a echo.sh; git status --short | sort | tr '\\n' ' '; echo; git log --format=%s").stdout
	want := ".git .gitignore echo.sh link src tracked.txt untracked.txt \none\ntwo (uncommitted)\ntracked.txt\n755\n M tracked.txt ?? link ?? untracked.txt \nfirst\n"
	if got != want {
		t.Errorf("git-mode workspace:\n%s\nwant:\n%s", got, want)
	}

	// Re-running replaces the tree: a file deleted on the host is gone.
	os.Remove(filepath.Join(repo, "untracked.txt"))
	r := e.must("vm", "workspace", "prepare", "g", repo)
	if !regexp.MustCompile(`\d+ files, .* in .*/s`).MatchString(r.stderr) {
		t.Errorf("prepare does not report files, bytes and time: %q", r.stderr)
	}
	if r := e.runWith(e.extra, "vm", "exec", "g", "--", "test", "-e", "/root/repo/untracked.txt"); r.code == 0 {
		t.Error("a file removed on the host survived a second prepare")
	}

	// Submodules: refused in git mode (naming full_copy), copied in full_copy.
	sub := makeRepo(t)
	super := makeRepo(t)
	cmd := exec.Command("git", "-c", "protocol.file.allow=always", "-c", "user.email=t@example.com", "-c", "user.name=t", "submodule", "add", "-q", sub, "vendor/sub")
	cmd.Dir = super
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git submodule add: %v\n%s", err, out)
	}
	before := e.must("vm", "exec", "g", "--", "cat", "/root/repo/tracked.txt").stdout
	r = e.runWith(e.extra, "vm", "workspace", "prepare", "g", super)
	if r.code == 0 || !strings.Contains(r.stderr, "--mode full_copy") {
		t.Errorf("git mode with a submodule: exit %d %q", r.code, r.stderr)
	}
	if after := e.must("vm", "exec", "g", "--", "cat", "/root/repo/tracked.txt").stdout; after != before {
		t.Errorf("a refused prepare changed /root/repo: %q -> %q", before, after)
	}
	e.must("vm", "workspace", "prepare", "g", super, "--mode", "full_copy")
	if got := e.must("vm", "exec", "g", "--", "cat", "/root/repo/vendor/sub/tracked.txt", "/root/repo/ignored.log").stdout; got != "one\njunk\n" { // the submodule is a clone: its committed content
		t.Errorf("full_copy workspace: submodule and ignored file read %q", got)
	}
	// Put the echo checkout back for the session tests.
	e.must("vm", "workspace", "prepare", "g", repo)
}

// evilTar builds a tar stream from entries.
func evilTar(t *testing.T, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		h := h
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len("pwned\n"))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("pwned\n"))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func testMaliciousTar(t *testing.T, e *env) {
	c := apiClient(t, e)
	ctx := context.Background()
	cases := map[string][]tar.Header{
		"dot-dot":        {{Name: "../escaped", Typeflag: tar.TypeReg}},
		"absolute":       {{Name: "/root/escaped", Typeflag: tar.TypeReg}},
		"symlink-escape": {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/root"}, {Name: "l/escaped", Typeflag: tar.TypeReg}},
		"hardlink-out":   {{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}},
	}
	before := e.must("vm", "exec", "g", "--", "sh", "-c", "ls -A /root/repo | sort").stdout
	for name, entries := range cases {
		_, err := c.PrepareWorkspace(ctx, "g", api.PrepareWorkspaceRequest{}, bytes.NewReader(evilTar(t, entries...)))
		if !errors.Is(err, api.ErrInvalidArgument) || !strings.Contains(err.Error(), "unsafe") {
			t.Errorf("%s: the agent accepted or failed oddly: %v", name, err)
		}
		_, err = c.CopyIn(ctx, "g", "/root/repo", bytes.NewReader(evilTar(t, entries...)))
		if err == nil {
			t.Errorf("%s: copy accepted the stream", name)
		}
	}
	if r := e.runWith(e.extra, "vm", "exec", "g", "--", "sh", "-c", "test -e /root/escaped || test -e /escaped || test -e /root/repo/escaped"); r.code == 0 {
		t.Error("a malicious entry was written")
	}
	if after := e.must("vm", "exec", "g", "--", "sh", "-c", "ls -A /root/repo | sort").stdout; after != before {
		t.Errorf("refused streams changed /root/repo:\n%s\n->\n%s", before, after)
	}
}

func testSessionLaunch(t *testing.T, e *env) {
	r := e.runWith(e.extra, "vm", "session", "start", "g", "--cwd", "/no/such/dir", "--", "ls")
	if r.code == 0 || !strings.Contains(r.stderr, `cwd "/no/such/dir" does not exist`) {
		t.Errorf("missing cwd: exit %d %q", r.code, r.stderr)
	}
	r = e.runWith(e.extra, "vm", "session", "start", "g", "--", "no-such-command")
	if r.code == 0 || !strings.Contains(r.stderr, `"no-such-command" not found in PATH`) {
		t.Errorf("unknown command: exit %d %q", r.code, r.stderr)
	}
	var list []api.Session
	json.Unmarshal([]byte(e.must("vm", "session", "list", "g", "--json").stdout), &list)
	if len(list) != 0 {
		t.Errorf("refused starts left sessions: %+v", list)
	}
	r = e.runWith(e.extra, "vm", "session", "start", "g", "--name", "boom", "--", "sh", "-c", "echo kaboom >&2; exit 7")
	if r.code == 0 || !strings.Contains(r.stderr, "exited 7") || !strings.Contains(r.stderr, "kaboom") {
		t.Errorf("early exit: exit %d %q", r.code, r.stderr)
	}
	var ses api.Session
	json.Unmarshal([]byte(e.must("vm", "session", "show", "g", "boom", "--json").stdout), &ses)
	if ses.State != api.SessionFailed || ses.ExitCode == nil || *ses.ExitCode != 7 || len(ses.Diagnostics) == 0 {
		t.Errorf("early-exit session: %+v", ses)
	}
	if r := e.runWith(e.extra, "vm", "session", "logs", "g", "boom"); r.stderr != "kaboom\n" {
		t.Errorf("logs of boom: stdout %q stderr %q", r.stdout, r.stderr)
	}
	e.must("vm", "session", "rm", "g", "boom")
}

// attacher is `banger vm session attach` run as a subprocess, the way an
// orchestrator runs it.
type attacher struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *bytes.Buffer
	done   chan error
}

func startAttacher(t testing.TB, e *env, args ...string) *attacher {
	t.Helper()
	cmd := e.command(e.extra, append([]string{"vm", "session", "attach"}, args...)...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	a := &attacher{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 100), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = a.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
		a.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return a
}

func (a *attacher) send(line string) {
	a.t.Helper()
	if _, err := io.WriteString(a.stdin, line+"\n"); err != nil {
		a.t.Fatalf("writing to attach: %v", err)
	}
}

func (a *attacher) expect(want string) {
	a.t.Helper()
	select {
	case got, ok := <-a.lines:
		if !ok {
			a.t.Fatalf("attach ended while waiting for %s; stderr: %s", want, a.stderr)
		}
		if got != want {
			a.t.Fatalf("attach printed %s, want %s", got, want)
		}
	case <-time.After(hangGuard):
		a.t.Fatalf("no %s from attach; stderr: %s", want, a.stderr)
	}
}

// wait returns the exit code once the attacher ends.
func (a *attacher) wait() int {
	a.t.Helper()
	select {
	case <-a.done:
	case <-time.After(hangGuard):
		a.t.Fatalf("attach did not end; stderr: %s", a.stderr)
	}
	return a.cmd.ProcessState.ExitCode()
}

func sessionInfo(t testing.TB, e *env, name string) api.Session {
	t.Helper()
	var s api.Session
	if err := json.Unmarshal([]byte(e.must("vm", "session", "show", "g", name, "--json").stdout), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func testAttachers(t *testing.T, e *env) {
	e.must("vm", "session", "start", "g", "--name", "pair", "--", "./echo.sh")
	a := startAttacher(t, e, "g", "pair")
	b := startAttacher(t, e, "g", "pair", "--since", "all")
	// Both see what either writes.
	a.send(`{"from":"a"}`)
	a.expect(`{"echo":{"from":"a"}}`)
	b.expect(`{"echo":{"from":"a"}}`)
	b.send(`{"from":"b"}`)
	a.expect(`{"echo":{"from":"b"}}`)
	b.expect(`{"echo":{"from":"b"}}`)
	if n := sessionInfo(t, e, "pair").AttachCount; n != 2 {
		t.Errorf("attach_count = %d with two attachers", n)
	}

	// a detaches (Ctrl-C): the session runs on; b keeps talking to it.
	a.cmd.Process.Signal(syscall.SIGINT)
	if code := a.wait(); code != 0 || !strings.Contains(a.stderr.String(), "detached") {
		t.Errorf("detach: exit %d %q", code, a.stderr)
	}
	m := regexp.MustCompile(`at offset (\d+)`).FindStringSubmatch(a.stderr.String())
	if m == nil {
		t.Fatalf("detach did not say its offset: %q", a.stderr)
	}
	b.send(`{"from":"b","while":"a away"}`)
	b.expect(`{"echo":{"from":"b","while":"a away"}}`)

	// a comes back from its offset and gets what it missed, first.
	a2 := startAttacher(t, e, "g", "pair", "--since", m[1])
	a2.expect(`{"echo":{"from":"b","while":"a away"}}`)

	// stdin EOF with the default (keep) leaves the session's stdin open:
	// b can still talk to it.
	a2.stdin.Close()
	b.send(`{"after":"eof"}`)
	b.expect(`{"echo":{"after":"eof"}}`)
	a2.expect(`{"echo":{"after":"eof"}}`)
	// --stdin-eof detach detaches at the end of stdin, exit 0.
	d := startAttacher(t, e, "g", "pair", "--since", "now", "--stdin-eof", "detach")
	d.stdin.Close()
	if code := d.wait(); code != 0 || !strings.Contains(d.stderr.String(), "detached") {
		t.Errorf("--stdin-eof detach: exit %d %q", code, d.stderr)
	}
	b.send(`{"after":"detach"}`)
	b.expect(`{"echo":{"after":"detach"}}`)
	a2.expect(`{"echo":{"after":"detach"}}`)
	// --stdin-eof close closes the session's stdin: echo.sh ends, every
	// attacher sees the end and exits with the session's code.
	c := startAttacher(t, e, "g", "pair", "--since", "now", "--stdin-eof", "close")
	c.stdin.Close()
	for _, at := range []*attacher{a2, b, c} {
		if code := at.wait(); code != 0 || !strings.Contains(at.stderr.String(), "session pair exited (code 0)") {
			t.Errorf("attacher after stdin close: exit %d %q", code, at.stderr)
		}
	}
	if s := sessionInfo(t, e, "pair"); s.State != api.SessionExited {
		t.Errorf("session after its stdin closed: %s", s.State)
	}
	// A new session may take the name: attach starts it from its own
	// beginning (cursors are kept per session id).
	e.must("vm", "session", "rm", "g", "pair")
	e.must("vm", "session", "start", "g", "--name", "pair", "--", "./echo.sh")
	n := startAttacher(t, e, "g", "pair")
	n.send(`{"new":1}`)
	n.expect(`{"echo":{"new":1}}`)
	n.cmd.Process.Signal(syscall.SIGINT)
	n.wait()
	e.must("vm", "session", "kill", "g", "pair")
}

// safeBuffer collects a terminal's output.
type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *safeBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		ok := strings.Contains(s.buf.String(), want)
		s.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Fatalf("the terminal never showed %q:\n%q", want, s.buf.String())
}

func testTTYSession(t *testing.T, e *env) {
	e.must("vm", "session", "start", "g", "--tty", "--name", "term", "--", "sh", "-c", `while read l; do echo "size=$(stty size)"; done`)
	// attach on a real terminal: raw mode, the window size follows.
	cmd := e.command(e.extra, "vm", "session", "attach", "g", "term", "--since", "now")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer cmd.Process.Kill()
	out := &safeBuffer{}
	go io.Copy(out, ptmx)
	ptmx.Write([]byte("\r"))
	out.waitFor(t, "size=30 100")
	pty.Setsize(ptmx, &pty.Winsize{Rows: 41, Cols: 123})
	// The resize reaches the guest asynchronously: ask until it shows.
	deadline := time.Now().Add(hangGuard)
	for !strings.Contains(func() string { out.mu.Lock(); defer out.mu.Unlock(); return out.buf.String() }(), "size=41 123") && time.Now().Before(deadline) {
		ptmx.Write([]byte("\r"))
		time.Sleep(300 * time.Millisecond)
	}
	out.waitFor(t, "size=41 123")
	ptmx.Write([]byte{0x1d}) // Ctrl-] detaches
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("detach with Ctrl-]: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Ctrl-] did not detach")
	}
	if s := sessionInfo(t, e, "term"); s.State != api.SessionRunning || !s.TTY {
		t.Errorf("tty session after detach: %+v", s)
	}
	e.must("vm", "session", "kill", "g", "term")
}

// Restarting the guest agent (an upgrade, a crash) leaves its sessions
// running (KillMode=process); the new agent adopts them as orphans and
// bangerd reconnects on the next request.
func testAgentRestart(t *testing.T, e *env) {
	e.must("vm", "session", "start", "g", "--name", "survivor", "--", "sleep", "1000")
	pid := sessionInfo(t, e, "survivor").PID
	// The exec's own stream dies with the agent: its error is expected.
	e.runWith(e.extra, "vm", "exec", "g", "--", "systemctl", "restart", "banger-agent")
	deadline := time.Now().Add(hangGuard)
	for {
		r := e.runWith(e.extra, "vm", "exec", "g", "--", "true")
		if r.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not come back: %s", r.stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	s := sessionInfo(t, e, "survivor")
	if s.State != api.SessionRunning || s.PID != pid || !s.Orphaned {
		t.Errorf("session after an agent restart: %+v (pid was %d)", s, pid)
	}
	e.must("vm", "session", "kill", "g", "survivor")
}

// The orchestrator from the issue: it spawns attach, speaks JSON lines to
// a guest program, loses the daemon to SIGKILL, starts it again and
// re-attaches — and gets what the program wrote meanwhile, exactly once.
func testOrchestrator(t *testing.T, e *env) {
	e.must("vm", "session", "start", "g", "--name", "orch", "--", "./echo.sh")
	pid := sessionInfo(t, e, "orch").PID

	a := startAttacher(t, e, "g", "orch")
	a.send(`{"id":1}`)
	a.expect(`{"echo":{"id":1}}`)
	a.send(`{"id":2,"later":true}`)
	a.expect(`{"echo":{"id":2,"later":true}}`)

	var st api.DaemonStatus
	json.Unmarshal([]byte(e.must("daemon", "status", "--json").stdout), &st)
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := a.wait(); code != 1 || !strings.Contains(a.stderr.String(), "lost the attach stream") {
		t.Errorf("attach when bangerd died: exit %d %q", code, a.stderr)
	}
	// The guest writes {"late":...} three seconds after id 2, with no
	// daemon running.
	time.Sleep(4 * time.Second)

	// The next command starts a new daemon, which rebuilds the session
	// from the guest.
	var list []api.Session
	if err := json.Unmarshal([]byte(e.must("vm", "session", "list", "g", "--json").stdout), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range list {
		if s.Name == "orch" {
			found = true
			if s.State != api.SessionRunning || s.PID != pid {
				t.Errorf("rehydrated session: %+v (pid was %d)", s, pid)
			}
		}
	}
	if !found {
		t.Fatalf("the session is not listed after the daemon restart: %+v", list)
	}
	// Re-attach with the default (resume): the missed output comes first,
	// and nothing already seen is repeated.
	b := startAttacher(t, e, "g", "orch")
	b.expect(`{"late":{"id":2,"later":true}}`)
	b.send(`{"id":3}`)
	b.expect(`{"echo":{"id":3}}`)
	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.wait(); code != 0 {
		t.Errorf("detach with SIGTERM: exit %d %q", code, b.stderr)
	}
	out := e.must("vm", "session", "stop", "g", "orch").stdout
	if !strings.Contains(out, "session orch exited") && !strings.Contains(out, "SIGTERM") {
		t.Errorf("stop: %q", out)
	}
	if s := sessionInfo(t, e, "orch"); s.State == api.SessionRunning {
		t.Errorf("after stop: %+v", s)
	}
}

// vm run: a checkout to a booted VM with the repo at /root/repo and the
// next steps printed; a bad checkout is refused before anything is made.
func TestVMRun(t *testing.T) {
	e := vmEnv(t)
	notRepo := t.TempDir()
	r := e.runWith(e.extra, "vm", "run", notRepo, "--name", "r")
	if r.code == 0 || !strings.Contains(r.stderr, "--mode full_copy") {
		t.Errorf("vm run outside a git work tree: exit %d %q", r.code, r.stderr)
	}
	var l api.VMList
	json.Unmarshal([]byte(e.must("vm", "list", "--json").stdout), &l)
	if len(l.VMs) != 0 {
		t.Errorf("a refused vm run created VMs: %+v", l.VMs)
	}

	repo := makeRepo(t)
	r = e.must("vm", "run", repo, "--name", "r", "--memory", "1GiB", "--disk", "2GiB")
	for _, want := range []string{"vm r is running at", "banger vm exec r -w /root/repo -- git status", "banger vm session attach r work", "banger vm ssh r"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("vm run output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "workspace prepare") {
		t.Errorf("vm run suggests preparing a workspace it prepared:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "(git mode) → r:/root/repo") {
		t.Errorf("vm run did not report the workspace:\n%s", r.stderr)
	}
	if got := e.must("vm", "exec", "r", "-w", "/root/repo", "--", "cat", "tracked.txt").stdout; got != "one\ntwo (uncommitted)\n" {
		t.Errorf("/root/repo/tracked.txt = %q", got)
	}
	e.must("vm", "delete", "r")
	verifyClean(t, e)
}
