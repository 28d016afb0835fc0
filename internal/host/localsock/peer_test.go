package localsock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary doubles as helper programs that run under another uid,
// chosen by this variable.
const helperEnv = "LOCALSOCK_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "serve":
		os.Exit(serveInheritedSocket())
	case "dial":
		os.Exit(dialFromEnv())
	case "ensure":
		if err := EnsurePrivateDir(os.Getenv("LOCALSOCK_DIR")); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveInheritedSocket listens on the bound socket passed as fd 3, accepts
// one connection, and prints how many bytes the client sent before it hung
// up: a client that refused the server sends nothing.
func serveInheritedSocket() int {
	if err := syscall.Listen(3, 1); err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	l, err := net.FileListener(os.NewFile(3, "inherited"))
	if err != nil {
		fmt.Println("listener:", err)
		return 1
	}
	fmt.Println("listening")
	c, err := l.Accept()
	if err != nil {
		fmt.Println("accept:", err)
		return 1
	}
	n, _ := io.Copy(io.Discard, c)
	fmt.Printf("received %d bytes\n", n)
	return 0
}

func dialFromEnv() int {
	c, err := Dial(context.Background(), os.Getenv("LOCALSOCK_SOCKET"))
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	c.Close()
	fmt.Println("accepted")
	return 0
}

// helperBin copies the test binary where another uid can run it.
func helperBin(t *testing.T) string {
	t.Helper()
	dir := shortDir(t)
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(bin, 0o755)
	return bin
}

// The client's rule for who may serve the socket: the user, or root.
func TestTrustedServer(t *testing.T) {
	tests := []struct {
		server, user int
		want         bool
	}{
		{1000, 1000, true},
		{0, 1000, true}, // root can read the user's files anyway
		{0, 0, true},
		{65534, 1000, false},
		{1000, 0, false}, // root's client does not talk to a user's daemon
		{1001, 1000, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("server %d user %d", tt.server, tt.user), func(t *testing.T) {
			if got := TrustedServer(tt.server, tt.user); got != tt.want {
				t.Errorf("TrustedServer(%d, %d) = %v, want %v", tt.server, tt.user, got, tt.want)
			}
		})
	}
}

// A socket at the daemon's path, in the user's own directory and owned by
// the user, but served by a process of another uid (the kernel's
// SO_PEERCRED says so) is refused before a byte is sent.
func TestDialRefusesAnotherUsersServer(t *testing.T) {
	needRoot(t, "run a listener as another uid")
	path := filepath.Join(shortDir(t), "bangerd.sock")
	// The user (this test) binds the socket, so the file is the user's and
	// a look at the file alone finds nothing wrong; uid 65534 listens on it.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(fd), "sock")
	defer sock.Close()
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helperBin(t), "-test.run=^$")
	cmd.Env = []string{helperEnv + "=serve"}
	cmd.ExtraFiles = []*os.File{sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other, Gid: other}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("helper: %q", lines.Text())
	}

	_, err = Dial(context.Background(), path)
	var ue *UntrustedServerError
	if !errors.As(err, &ue) || ue.ServerUID != other || ue.UID != os.Getuid() {
		t.Fatalf("Dial: %v, want an UntrustedServerError for uid %d", err, other)
	}
	for _, w := range []string{"refusing the banger socket " + path, "runs as uid 65534", "nothing was sent", "rm " + path} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
	if !lines.Scan() || lines.Text() != "received 0 bytes" {
		t.Errorf("the other user's server got %q, want nothing", lines.Text())
	}
	cmd.Wait()
}

// A non-root user's client accepts a root process serving its socket:
// root is trusted (see TrustedServer).
func TestDialAcceptsRootServer(t *testing.T) {
	needRoot(t, "run a client as another uid")
	dir := shortDir(t)
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "bangerd.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The file is the client's, as in its own runtime directory.
	os.Chown(path, other, other)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	cmd := exec.Command(helperBin(t), "-test.run=^$")
	cmd.Env = []string{helperEnv + "=dial", "LOCALSOCK_SOCKET=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other, Gid: other}}
	got, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "accepted" {
		t.Fatalf("client as uid %d: %v: %s", other, err, got)
	}
}
