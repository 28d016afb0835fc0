package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The local-user boundary with the real binaries: another user cannot
// plant banger's runtime directory, a file in it, or a server at its
// socket, and two daemons never share one store.

// intruderUID stands in for another local user.
const intruderUID = 65533

func needRootE2E(t *testing.T, why string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to " + why)
	}
}

// nobodyWorld is a place where banger runs as nobody with no BANGER_HOME
// and no XDG_RUNTIME_DIR, so its runtime directory is the shared-temp
// fallback $TMPDIR/banger-65534; TMPDIR is a sticky, world-writable
// directory like /tmp, in which another user can create that name first.
type nobodyWorld struct {
	t          *testing.T
	bin, home  string
	tmp        string
	runtimeDir string
}

func newNobodyWorld(t *testing.T) *nobodyWorld {
	t.Helper()
	base, err := os.MkdirTemp("", "bglu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	w := &nobodyWorld{t: t, bin: filepath.Join(base, "bin"), home: filepath.Join(base, "home"), tmp: filepath.Join(base, "tmp")}
	w.runtimeDir = filepath.Join(w.tmp, fmt.Sprintf("banger-%d", nobodyUID))
	os.Mkdir(w.bin, 0o755)
	for _, b := range []string{"banger", "bangerd", "banger-agent"} {
		data, err := os.ReadFile(filepath.Join(binDir, b))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(w.bin, b), data, 0o755)
		os.Chmod(filepath.Join(w.bin, b), 0o755)
	}
	os.Mkdir(w.home, 0o755)
	os.Chown(w.home, nobodyUID, nobodyUID)
	os.Mkdir(w.tmp, 0o777)
	os.Chmod(w.tmp, 0o777|fs.ModeSticky)
	return w
}

func (w *nobodyWorld) run(args ...string) result {
	w.t.Helper()
	argv := append([]string{"--reuid", strconv.Itoa(nobodyUID), "--regid", strconv.Itoa(nobodyUID), "--clear-groups",
		filepath.Join(w.bin, "banger")}, args...)
	cmd := exec.Command("setpriv", argv...)
	cmd.Env = []string{"HOME=" + w.home, "TMPDIR=" + w.tmp, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatal(err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// killDaemonIn kills a daemon whose pid file is in dir (one a broken
// boundary let start).
func killDaemonIn(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "bangerd.pid"))
	if err != nil {
		return
	}
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// A runtime directory planted at the fallback path — a symbolic link (to
// another user's directory or to one of the user's own), a directory of
// another user's, a group-writable one — is refused by the CLI before it
// creates anything there or starts a daemon, with the path, the owner and
// the fix.
func TestPlantedRuntimeDirRefused(t *testing.T) {
	needRootE2E(t, "plant directories for another uid and run banger as nobody")
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	tests := []struct {
		name string
		// plant creates w.runtimeDir and returns a directory nothing may
		// be created in.
		plant func(t *testing.T, w *nobodyWorld) string
		want  []string
	}{
		{
			name: "symlink to another user's directory",
			plant: func(t *testing.T, w *nobodyWorld) string {
				trap := filepath.Join(w.tmp, "trap")
				os.Mkdir(trap, 0o777)
				os.Chmod(trap, 0o777)
				os.Chown(trap, intruderUID, intruderUID)
				os.Symlink(trap, w.runtimeDir)
				os.Lchown(w.runtimeDir, intruderUID, intruderUID)
				return trap
			},
			want: []string{"is a symbolic link", fmt.Sprintf("owned by uid %d", intruderUID), "rm "},
		},
		{
			name: "symlink to a directory of the user's",
			plant: func(t *testing.T, w *nobodyWorld) string {
				mine := filepath.Join(w.home, "run")
				os.Mkdir(mine, 0o700)
				os.Chown(mine, nobodyUID, nobodyUID)
				os.Symlink(mine, w.runtimeDir)
				os.Lchown(w.runtimeDir, intruderUID, intruderUID)
				return mine
			},
			want: []string{"is a symbolic link", fmt.Sprintf("owned by uid %d", nobodyUID), "rm "},
		},
		{
			name: "directory of another user's",
			plant: func(t *testing.T, w *nobodyWorld) string {
				os.Mkdir(w.runtimeDir, 0o777)
				os.Chmod(w.runtimeDir, 0o777)
				os.Chown(w.runtimeDir, intruderUID, intruderUID)
				return w.runtimeDir
			},
			want: []string{fmt.Sprintf("belongs to uid %d, not to you (uid %d)", intruderUID, nobodyUID), "XDG_RUNTIME_DIR"},
		},
		{
			name: "group-writable directory",
			plant: func(t *testing.T, w *nobodyWorld) string {
				os.Mkdir(w.runtimeDir, 0o770)
				os.Chmod(w.runtimeDir, 0o770)
				os.Chown(w.runtimeDir, nobodyUID, nobodyUID)
				return w.runtimeDir
			},
			want: []string{"is writable by other users (mode -rwxrwx---", "chmod 700"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newNobodyWorld(t)
			untouched := tt.plant(t, w)
			t.Cleanup(func() { killDaemonIn(untouched) })
			r := w.run("daemon", "status")
			t.Logf("banger said: %s", r.stderr)
			if r.code == 0 {
				t.Fatalf("banger used the planted runtime directory:\n%s%s", r.stdout, r.stderr)
			}
			for _, want := range append([]string{w.runtimeDir}, tt.want...) {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "failed to start") {
				t.Errorf("the CLI started a daemon instead of refusing the directory itself:\n%s", r.stderr)
			}
			if des, _ := os.ReadDir(untouched); len(des) != 0 {
				var names []string
				for _, de := range des {
					names = append(names, de.Name())
				}
				t.Errorf("banger created %v in the planted directory %s", names, untouched)
			}
		})
	}
}

// A pid-file symbolic link planted in the runtime directory is refused:
// the daemon does not write through it (the file it points to keeps its
// contents) and does not start.
func TestPlantedPIDFileRefused(t *testing.T) {
	e := newEnv(t)
	runDir := filepath.Join(e.home, "run")
	os.Mkdir(runDir, 0o700)
	victim := filepath.Join(e.home, "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o600)
	if err := os.Symlink(victim, e.pidFile()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killDaemonFromFile(victim) })
	r := e.run("daemon", "status")
	t.Logf("banger said: %s", r.stderr)
	if r.code == 0 {
		t.Fatalf("the daemon started with a planted pid file:\n%s", r.stdout)
	}
	for _, want := range []string{e.pidFile() + " is a symbolic link (to " + victim, "rm " + e.pidFile()} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the daemon wrote %q through the pid-file link", b)
	}
	if _, err := os.Stat(filepath.Join(runDir, "bangerd.sock")); err == nil {
		t.Errorf("a socket was left in %s", runDir)
	}
}

func killDaemonFromFile(path string) {
	b, _ := os.ReadFile(path)
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// A server run by another uid at the daemon's socket path — the socket
// file even belongs to the user, so only the kernel's peer credentials
// tell — is refused by the client before it sends a request.
func TestClientRefusesAnotherUsersServer(t *testing.T) {
	needRootE2E(t, "run a server as another uid")
	e := newEnv(t)
	runDir := filepath.Join(e.home, "run")
	os.Mkdir(runDir, 0o700)
	sockPath := filepath.Join(runDir, "bangerd.sock")

	srvDir, err := os.MkdirTemp("", "bgfs")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(srvDir)
	os.Chmod(srvDir, 0o755)
	srvBin := filepath.Join(srvDir, "foreignserver")
	build := exec.Command("go", "build", "-o", srvBin, "./internal/host/e2e/testdata/foreignserver")
	build.Dir = moduleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the stand-in server: %v\n%s", err, out)
	}
	os.Chmod(srvBin, 0o755)

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(fd), "sock")
	defer sock.Close()
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: sockPath}); err != nil {
		t.Fatal(err)
	}
	os.Chmod(sockPath, 0o600)
	srv := exec.Command(srvBin)
	srv.ExtraFiles = []*os.File{sock}
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("stand-in server: %q", lines.Text())
	}

	r := e.run("daemon", "status", "--json")
	t.Logf("banger said: %s", r.stderr)
	if r.code == 0 {
		t.Errorf("banger talked to another user's server:\n%s", r.stdout)
	}
	for _, want := range []string{"refusing the banger socket " + sockPath, fmt.Sprintf("runs as uid %d", nobodyUID), "nothing was sent"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
		}
	}
	srv.Process.Kill()
	var got []string
	for lines.Scan() {
		got = append(got, lines.Text())
	}
	srv.Wait()
	if len(got) != 0 {
		t.Errorf("the other user's server received %v", got)
	}
}

// Two real daemons against one state directory (one store), each with its
// own runtime directory and socket: the second refuses to start, naming
// the first's pid and socket; the first keeps serving and the second never
// opened the store (nor wrote the log beside it).
func TestSecondDaemonOnOneStateDir(t *testing.T) {
	e := newEnv(t)
	first, _ := daemonStatus(t, e)
	ops := e.mustRun("operation", "list", "--json").stdout

	run2 := filepath.Join(e.home, "run2")
	cfg2 := filepath.Join(e.home, "second.toml")
	if err := os.WriteFile(cfg2, []byte(fmt.Sprintf("runtime_dir = %q\n", run2)), 0o600); err != nil {
		t.Fatal(err)
	}
	second := exec.Command(filepath.Join(e.bin, "bangerd"), "--config", cfg2)
	second.Env = []string{"BANGER_HOME=" + e.home, "HOME=" + filepath.Join(e.home, "home"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var stderr strings.Builder
	second.Stderr = &stderr
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	// It either exits, or starts serving on its own socket (the failure).
	var err error
	for waiting := true; waiting; {
		select {
		case err = <-exited:
			waiting = false
		case <-time.After(20 * time.Millisecond):
			if c, derr := net.Dial("unix", filepath.Join(run2, "bangerd.sock")); derr == nil {
				c.Close()
				second.Process.Kill()
				<-exited
				t.Fatalf("the second bangerd serves on the first's store (stderr: %s)", stderr.String())
			}
		}
	}
	t.Logf("the second bangerd said: %s", stderr.String())
	if err == nil {
		t.Fatalf("the second bangerd exited 0: %s", stderr.String())
	}
	want := fmt.Sprintf("another bangerd is already running (pid %d, serving %s) with the state directory %s",
		first.PID, first.Socket, filepath.Join(e.home, "state"))
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("second bangerd said %q\nwant it to contain %q", stderr.String(), want)
	}
	if _, err := os.Stat(filepath.Join(run2, "bangerd.sock")); err == nil {
		t.Errorf("the second bangerd left a socket in %s", run2)
	}

	after, _ := daemonStatus(t, e)
	if after.PID != first.PID || after.StorePath != first.StorePath {
		t.Errorf("first daemon after the second's attempt: %+v, was %+v", after, first)
	}
	if got := e.mustRun("operation", "list", "--json").stdout; got != ops {
		t.Errorf("operations changed:\n%s\nwas\n%s", got, ops)
	}
	logs, _ := os.ReadFile(first.LogFile)
	var starts []int
	for _, line := range strings.Split(string(logs), "\n") {
		var rec struct {
			Msg string `json:"msg"`
			PID int    `json:"pid"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "bangerd starting" {
			starts = append(starts, rec.PID)
		}
	}
	if len(starts) != 1 || starts[0] != first.PID {
		t.Errorf("daemons that started on this state directory: %v, want only the first (pid %d)", starts, first.PID)
	}
}
