package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/buildsandbox"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker/fctest"
)

// binDir holds banger, bangerd and banger-agent built for this run with
// build id "e2e-a".
var binDir string

func TestMain(m *testing.M) {
	// The test binary doubles as a stand-in firecracker (fctest.FakeBinary)
	// and as the build sandbox's init for the provision.Chroot it opens.
	if buildsandbox.IsInit() {
		os.Exit(buildsandbox.Init())
	}
	fctest.RunIfFake()
	if sock := os.Getenv(dialEnv); sock != "" {
		dialAndReport(sock)
	}
	dir, err := os.MkdirTemp("", "banger-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if err := build(binDir, "e2e-a", "banger", "bangerd", "banger-agent"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// build compiles the named commands into dir with the given build id.
func build(dir, buildID string, cmds ...string) error {
	for _, c := range cmds {
		args := []string{"build", "-o", filepath.Join(dir, c),
			"-ldflags", "-X github.com/bangerdev/banger/internal/shared/buildinfo.version=e2e -X github.com/bangerdev/banger/internal/shared/buildinfo.buildID=" + buildID,
			"./cmd/" + c}
		cmd := exec.Command("go", args...)
		cmd.Dir = moduleRoot()
		cmd.Env = os.Environ()
		if c == "banger-agent" {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", c, err, out)
		}
	}
	return nil
}

// env is one user's world: a BANGER_HOME and a bin dir of binaries.
type env struct {
	t     testing.TB
	home  string
	bin   string
	extra []string // extra environment for runWith callers
	netns string   // when set, banger runs inside this network namespace
}

func newEnv(t testing.TB) *env {
	t.Helper()
	home, err := os.MkdirTemp("", "bge")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, home: home, bin: binDir}
	t.Cleanup(func() {
		if t.Failed() {
			e.logDaemonFiles()
		}
		e.stopDaemon()
		os.RemoveAll(home)
	})
	return e
}

// logDaemonFiles puts the tail of the daemon's log and start-up output
// into a failed test's log, before the home goes.
func (e *env) logDaemonFiles() {
	for _, name := range []string{"bangerd.log.1", "bangerd.log", "bangerd.out"} {
		if b, err := os.ReadFile(filepath.Join(e.home, "state", name)); err == nil {
			e.t.Logf("%s (last lines):\n%s", name, tail(string(b), 60))
		}
	}
}

// privateBin gives the env its own copy of the binaries, so a test can
// replace one (a rebuild) without touching other tests.
func (e *env) privateBin() {
	dir := filepath.Join(e.home, "bin")
	os.MkdirAll(dir, 0o755)
	for _, b := range []string{"banger", "bangerd", "banger-agent"} {
		data, err := os.ReadFile(filepath.Join(binDir, b))
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, b), data, 0o755); err != nil {
			e.t.Fatal(err)
		}
	}
	e.bin = dir
}

type result struct {
	stdout, stderr string
	code           int
}

// run executes banger with args in this env.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runWith(nil, args...)
}

func (e *env) runWith(extraEnv []string, args ...string) result {
	e.t.Helper()
	return e.runInput(extraEnv, "", args...)
}

// command is banger with args in this env (and its namespace), not
// started.
func (e *env) command(extraEnv []string, args ...string) *exec.Cmd {
	argv := append([]string{filepath.Join(e.bin, "banger")}, args...)
	if e.netns != "" {
		argv = append([]string{"ip", "netns", "exec", e.netns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"BANGER_HOME=" + e.home, "HOME=" + filepath.Join(e.home, "home"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, extraEnv...)
	return cmd
}

// runInput runs banger with stdin.
func (e *env) runInput(extraEnv []string, stdin string, args ...string) result {
	e.t.Helper()
	cmd := e.command(extraEnv, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running banger %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("banger %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func (e *env) pidFile() string { return filepath.Join(e.home, "run", "bangerd.pid") }

// stopDaemon kills any daemon left by a failed test.
func (e *env) stopDaemon() {
	b, err := os.ReadFile(e.pidFile())
	if err != nil {
		return
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	if pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialEnv makes the test binary dial a Unix socket, print the outcome and
// exit: dialAsNobody runs it as another user.
const dialEnv = "BANGER_E2E_DIAL"

func dialAndReport(sock string) {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		fmt.Println(err)
		os.Exit(0)
	}
	c.Close()
	fmt.Println("connected")
	os.Exit(0)
}

// dialAsNobody dials sock as uid 65534 from a copy of this test binary
// that nobody may run, and returns what it printed.
func dialAsNobody(t *testing.T, sock string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bgdial")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	exe := filepath.Join(dir, "e2e.test")
	if b, err := os.ReadFile(os.Args[0]); err != nil || os.WriteFile(exe, b, 0o755) != nil {
		t.Fatalf("copying the test binary: %v", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{dialEnv + "=" + sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dialing as nobody: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}
