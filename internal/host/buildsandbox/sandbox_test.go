package buildsandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/buildsandbox"
	"github.com/bangerdev/banger/internal/host/buildsandbox/sandboxtest"
)

// The test binary is also the sandbox's init (Run re-executes it) and the
// probe the tests run inside the sandbox.
func TestMain(m *testing.M) {
	if buildsandbox.IsInit() {
		os.Exit(buildsandbox.Init())
	}
	sandboxtest.RunIfProbe()
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount, pivot_root and PID namespaces); run the tests as root to cover the sandbox")
	}
}

// probe runs the probe with question and args in a sandbox over root.
func probe(t *testing.T, root, question string, args ...string) string {
	t.Helper()
	out, err := run(t, context.Background(), root, question, args...)
	if err != nil {
		t.Fatalf("probe %s %v: %v\n%s", question, args, err, out)
	}
	return out
}

func run(t *testing.T, ctx context.Context, root, question string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := buildsandbox.Run(ctx, buildsandbox.Spec{
		Root:     root,
		Hostname: "test-image",
		Path:     sandboxtest.ProbePath,
		Args:     sandboxtest.Probe(question, args...),
		Env:      []string{"PATH=/bin"},
	}, &out, &out)
	return out.String(), err
}

// hostBlockDevice returns a block device node of the host, from /sys/block.
func hostBlockDevice(t *testing.T) (path, majMin string) {
	t.Helper()
	entries, _ := os.ReadDir("/sys/block")
	for _, e := range entries {
		dev, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "dev"))
		if err != nil {
			continue
		}
		if _, err := os.Stat("/dev/" + e.Name()); err == nil {
			return "/dev/" + e.Name(), strings.TrimSpace(string(dev))
		}
	}
	t.Skip("the host has no block device in /sys/block with a node in /dev")
	return "", ""
}

// marker writes a file with unique content at path for the test's duration.
func marker(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
}

func TestSandboxHidesTheHost(t *testing.T) {
	requireRoot(t)
	root := sandboxtest.MakeRoot(t)
	blockDev, majMin := hostBlockDevice(t)
	name := fmt.Sprintf("banger-sandbox-marker-%d", os.Getpid())
	marker(t, "/"+name)                                // the host's /
	marker(t, filepath.Join(filepath.Dir(root), name)) // beside the root
	hostName, _ := os.Hostname()
	keptHex := fmt.Sprintf("%016x", buildsandbox.KeptMask())

	tests := []struct {
		what     string
		question string
		args     []string
		want     string
		needs    string // a host path the check is about; skipped when the host lacks it
	}{
		{what: "the host's block device is absent", question: "stat", args: []string{blockDev}, want: "err ENOENT"},
		{what: "/dev holds only the minimal nodes", question: "ls", args: []string{"/dev"}, want: "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero"},
		{what: "/dev/ptmx is the private devpts'", question: "readlink", args: []string{"/dev/ptmx"}, want: "ok pts/ptmx"},
		{what: "/dev/null works", question: "read", args: []string{"/dev/null"}, want: "ok "},
		{what: "a host file outside the root is unreachable", question: "read", args: []string{"/" + name}, want: "err ENOENT"},
		{what: "... through ..", question: "read", args: []string{"/../../../../" + name}, want: "err ENOENT"},
		{what: "... through the chroot escape", question: "chroot-escape", args: []string{"/" + name}, want: "err ENOENT"},
		{what: "mknod of a character device fails", question: "mknod", args: []string{"/tmp/null"}, want: "err EPERM"},
		{what: "mknod of the host's block device fails", question: "mknod-block", args: []string{"/tmp/disk", majMin}, want: "err EPERM"},
		{what: "mounting fails", question: "mount", args: []string{"/tmp/m"}, want: "err EPERM"},
		{what: "/proc/sys stays read-only", question: "remount-proc-sys", want: "err EPERM"},
		{what: "sysctls are read-only", question: "open-write", args: []string{"/proc/sys/kernel/core_pattern"}, want: "err EROFS"},
		{what: "/sys is read-only", question: "open-write", args: []string{"/sys/class/net/lo/mtu"}, want: "err EROFS", needs: "/sys/class/net/lo/mtu"},
		{what: "a masked file reads empty", question: "read", args: []string{"/proc/timer_list"}, want: "ok ", needs: "/proc/timer_list"},
		{what: "a masked directory is empty", question: "ls", args: []string{"/sys/firmware"}, want: "", needs: "/sys/firmware"},
		{what: "unmounting a mask fails", question: "umount", args: []string{"/proc/timer_list"}, want: "err EPERM", needs: "/proc/timer_list"},
		{what: "kernel memory is masked", question: "read", args: []string{"/proc/kcore"}, want: "ok ", needs: "/proc/kcore"},
		{what: "SysRq is read-only", question: "open-write", args: []string{"/proc/sysrq-trigger"}, want: "err EROFS", needs: "/proc/sysrq-trigger"},
		{what: "unloading a module fails", question: "delete-module", args: []string{"banger_no_such_module"}, want: "err EPERM", needs: "/proc/modules"},
		{what: "a raw socket on the host's network fails", question: "raw-socket", want: "err EPERM"},
		{what: "the host's processes cannot be signalled", question: "kill", args: []string{strconv.Itoa(os.Getpid())}, want: "err ESRCH"},
		{what: "the init's binary (the host's) is out of reach", question: "readlink", args: []string{"/proc/1/exe"}, want: "err EACCES"},
		{what: "no user namespace (capabilities again inside it)", question: "userns", want: "err EPERM"},
		{what: "no keyrings (shared with the host's root)", question: "keyctl", want: "err EPERM"},
		{what: "clone3 answers ENOSYS so the C library falls back to clone", question: "clone3", want: "err ENOSYS"},
		{what: "no io_uring", question: "io-uring", want: "err ENOSYS"},
		{what: "the hostname is the image's", question: "hostname", want: "test-image"},
		{what: "changing the hostname fails", question: "sethostname", args: []string{"evil"}, want: "err EPERM"},
		{what: "capabilities are reduced to Kept, no_new_privs set", question: "status",
			want: "CapInh 0000000000000000\nCapPrm " + keptHex + "\nCapEff " + keptHex + "\nCapBnd " + keptHex + "\nCapAmb 0000000000000000\nNoNewPrivs 1"},
	}
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			if tt.needs != "" {
				if _, err := os.Lstat(tt.needs); err != nil {
					t.Skipf("the host has no %s (its kernel lacks the feature), so there is nothing to hide", tt.needs)
				}
			}
			if got := probe(t, root, tt.question, tt.args...); got != tt.want {
				t.Errorf("probe %s %v = %q, want %q", tt.question, tt.args, got, tt.want)
			}
		})
	}

	t.Run("only the sandbox's processes are visible", func(t *testing.T) {
		got := probe(t, root, "pids")
		pids, self, _ := strings.Cut(got, ":")
		// PID 1 is the sandbox's init, the other the probe itself.
		if want := "1 " + self; pids != want {
			t.Errorf("/proc lists pids %q, want %q", pids, want)
		}
	})
	t.Run("the host's hostname is unchanged", func(t *testing.T) {
		if now, _ := os.Hostname(); now != hostName {
			t.Errorf("host's hostname changed from %q to %q", hostName, now)
		}
	})
	t.Run("writes land in the image", func(t *testing.T) {
		probe(t, root, "write", "/etc/written", "by the build")
		if b, err := os.ReadFile(filepath.Join(root, "etc/written")); string(b) != "by the build" {
			t.Errorf("image's /etc/written = %q, %v", b, err)
		}
	})
	t.Run("nothing stays mounted on the host", func(t *testing.T) {
		info, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(info), root) {
			t.Errorf("host mount table mentions %s after the sandbox ended:\n%s", root, info)
		}
	})
}

// TestSandboxEndsWithItsCommand leaves a daemon behind in the sandbox and
// checks that it died with the command.
func TestSandboxEndsWithItsCommand(t *testing.T) {
	requireRoot(t)
	root := sandboxtest.MakeRoot(t)
	secs := strconv.Itoa(3000 + os.Getpid()%1000) // unique enough to find
	out := probe(t, root, "daemon", secs)
	if !strings.HasPrefix(out, "ok ") {
		t.Fatalf("daemon: %s", out)
	}
	if left := processesWithArgs(t, sandboxtest.ProbeArg0, "sleep", secs); len(left) > 0 {
		t.Errorf("processes left running after the sandbox ended: %v", left)
	}
}

func processesWithArgs(t *testing.T, args ...string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join(args, "\x00") + "\x00"
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && string(b) == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestSandboxErrors(t *testing.T) {
	requireRoot(t)
	root := sandboxtest.MakeRoot(t)

	t.Run("the command's exit status", func(t *testing.T) {
		_, err := run(t, context.Background(), root, "exit", "3")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("exit 3: error = %v, want exit status 3", err)
		}
	})
	t.Run("a missing program is a setup error naming it", func(t *testing.T) {
		err := buildsandbox.Run(context.Background(), buildsandbox.Spec{Root: root, Path: "/no/such/program", Args: []string{"x"}}, nil, nil)
		var se *buildsandbox.SetupError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "/no/such/program") {
			t.Errorf("error = %v, want a SetupError naming /no/such/program", err)
		}
	})
	t.Run("a missing root is a setup error naming it", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nothing")
		err := buildsandbox.Run(context.Background(), buildsandbox.Spec{Root: missing, Path: "/probe", Args: []string{"x"}}, nil, nil)
		var se *buildsandbox.SetupError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), missing) {
			t.Errorf("error = %v, want a SetupError naming %s", err, missing)
		}
	})
	t.Run("cancelling kills the build", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := run(t, ctx, root, "sleep", "600")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want context.DeadlineExceeded", err)
		}
		if left := processesWithArgs(t, sandboxtest.ProbeArg0, "sleep", "600"); len(left) > 0 {
			t.Errorf("processes left running: %v", left)
		}
	})
}
