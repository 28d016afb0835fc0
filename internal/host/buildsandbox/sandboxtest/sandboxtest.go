// Package sandboxtest makes tiny root filesystems for tests of the build
// sandbox and provides the probe program those tests run inside it: the
// test binary itself, copied into the root as ProbePath (with its shared
// libraries when it has any), which answers one question per run about
// what the sandbox lets it see and do.
//
// A test binary using it calls RunIfProbe first thing in TestMain.
package sandboxtest

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ProbeArg0 is the argv[0] under which the test binary acts as the probe.
const ProbeArg0 = "banger-sandbox-probe"

// ProbePath is where MakeRoot puts the probe inside the root (in PATH).
const ProbePath = "/bin/" + ProbeArg0

// MakeRoot makes a root filesystem holding only the probe (and the shared
// libraries it needs), an empty /tmp and a placeholder /bin/sh, in a new
// directory under $TMPDIR (on the host's own filesystem), removed when the
// test ends.
func MakeRoot(t testing.TB) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "banger-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	root := filepath.Join(parent, "root")
	for _, d := range []string{"", "tmp", "bin", "etc", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFile(exe, filepath.Join(root, ProbePath), 0o755); err != nil {
		t.Fatal(err)
	}
	libs, err := sharedLibraries(exe)
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range libs {
		if err := copyFile(lib, filepath.Join(root, lib), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin/sh"), []byte("#!"+ProbePath+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// sharedLibraries lists the files the dynamic loader maps for exe (none for
// a static binary), as ldd reports them.
func sharedLibraries(exe string) ([]string, error) {
	f, err := elf.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dynamic := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			dynamic = true
		}
	}
	if !dynamic {
		return nil, nil
	}
	out, err := exec.Command("ldd", exe).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w: install libc-bin", exe, err)
	}
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
			}
		}
	}
	return libs, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// RunIfProbe acts as the probe, and exits, when the process was started as
// one; otherwise it returns at once.
func RunIfProbe() {
	if len(os.Args) == 0 || filepath.Base(os.Args[0]) != ProbeArg0 {
		return
	}
	if len(os.Args) < 2 {
		fmt.Println("usage: probe QUESTION [ARG...]")
		os.Exit(2)
	}
	q, ok := questions[os.Args[1]]
	if !ok {
		fmt.Printf("unknown question %q\n", os.Args[1])
		os.Exit(2)
	}
	fmt.Print(q(os.Args[2:]))
	os.Exit(0)
}

// Probe returns the argv that asks the probe question with args.
func Probe(question string, args ...string) []string {
	return append([]string{ProbeArg0, question}, args...)
}

// result renders a syscall's outcome: "ok", or "err " and the errno's name
// (EPERM), or the error's text when it is not an errno.
func result(err error) string {
	if err == nil {
		return "ok"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		if errno == 0 {
			return "ok"
		}
		return "err " + unix.ErrnoName(errno)
	}
	return "err " + err.Error()
}

// questions are what the probe answers, each printing one result.
var questions = map[string]func(args []string) string{
	// pids: the numeric entries of /proc, sorted, space-separated, then
	// this process's pid after a colon.
	"pids": func([]string) string {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return result(err)
		}
		var pids []int
		for _, e := range entries {
			if n, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, n)
			}
		}
		sort.Ints(pids)
		var s []string
		for _, p := range pids {
			s = append(s, strconv.Itoa(p))
		}
		return strings.Join(s, " ") + ":" + strconv.Itoa(os.Getpid())
	},
	// ls DIR: the names in DIR, sorted, space-separated.
	"ls": func(a []string) string {
		entries, err := os.ReadDir(a[0])
		if err != nil {
			return result(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return strings.Join(names, " ")
	},
	// write PATH TEXT: create PATH holding TEXT.
	"write": func(a []string) string {
		return result(os.WriteFile(a[0], []byte(a[1]), 0o644))
	},
	// stat PATH: does PATH exist?
	"stat": func(a []string) string {
		_, err := os.Lstat(a[0])
		return result(err)
	},
	// read PATH: the file's content, or the error.
	"read": func(a []string) string {
		b, err := os.ReadFile(a[0])
		if err != nil {
			return result(err)
		}
		return "ok " + string(b)
	},
	// open-write PATH: can PATH be opened for writing?
	"open-write": func(a []string) string {
		f, err := os.OpenFile(a[0], os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		return result(err)
	},
	// mknod PATH: make a character device 1:3 (like /dev/null) at PATH.
	"mknod": func(a []string) string {
		return result(unix.Mknod(a[0], unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	},
	// mknod-block PATH MAJOR:MINOR: make a block device at PATH.
	"mknod-block": func(a []string) string {
		var maj, min uint32
		fmt.Sscanf(a[1], "%d:%d", &maj, &min)
		return result(unix.Mknod(a[0], unix.S_IFBLK|0o600, int(unix.Mkdev(maj, min))))
	},
	// mount DIR: mount a tmpfs on DIR (made if missing).
	"mount": func(a []string) string {
		os.MkdirAll(a[0], 0o755)
		return result(unix.Mount("tmpfs", a[0], "tmpfs", 0, ""))
	},
	// remount-proc-sys: make /proc/sys writable again.
	"remount-proc-sys": func([]string) string {
		return result(unix.Mount("/proc/sys", "/proc/sys", "", unix.MS_BIND|unix.MS_REMOUNT, ""))
	},
	// umount PATH: unmount PATH (a mask, say).
	"umount": func(a []string) string {
		return result(unix.Unmount(a[0], unix.MNT_DETACH))
	},
	// delete-module NAME: unload a kernel module (EPERM without
	// CAP_SYS_MODULE, ENOENT with it when no such module is loaded).
	"delete-module": func(a []string) string {
		return result(unix.DeleteModule(a[0], unix.O_NONBLOCK))
	},
	// hostname: the UTS namespace's hostname.
	"hostname": func([]string) string {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return result(err)
		}
		return unix.ByteSliceToString(u.Nodename[:])
	},
	// sethostname NAME: change the hostname.
	"sethostname": func(a []string) string {
		return result(unix.Sethostname([]byte(a[0])))
	},
	// chroot-escape PATH: the classic escape of a chroot by root (chroot
	// into a subdirectory while keeping the working directory outside it,
	// then walk up), then read PATH.
	"chroot-escape": func(a []string) string {
		if err := os.MkdirAll("/tmp/escape", 0o755); err != nil {
			return result(err)
		}
		if err := unix.Chroot("/tmp/escape"); err != nil {
			return "chroot: " + result(err)
		}
		for i := 0; i < 64; i++ {
			unix.Chdir("..")
		}
		if err := unix.Chroot("."); err != nil {
			return "chroot .: " + result(err)
		}
		b, err := os.ReadFile(a[0])
		if err != nil {
			return result(err)
		}
		return "ok " + string(b)
	},
	// userns: start a process in a new user namespace (where it would
	// have every capability again). unshare(CLONE_NEWUSER) cannot be
	// asked from a Go process, which has several threads; clone can.
	"userns": func([]string) string {
		cmd := exec.Command(ProbePath, "exit", "0")
		cmd.Args[0] = ProbeArg0
		cmd.SysProcAttr = &unix.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}
		err := cmd.Run()
		var errno unix.Errno
		if errors.As(err, &errno) {
			return result(errno)
		}
		return result(err)
	},
	// clone3: call clone3 with no arguments (EFAULT or EINVAL from the
	// kernel; ENOSYS from the filter).
	"clone3": func([]string) string {
		_, _, errno := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
		return result(errno)
	},
	// keyctl: look up the user keyring (shared with the host's root).
	"keyctl": func([]string) string {
		_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_USER_KEYRING, 0, 0, 0)
		return result(err)
	},
	// io-uring: set up an io_uring.
	"io-uring": func([]string) string {
		params := make([]byte, 120)
		fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
		if errno == 0 {
			unix.Close(int(fd))
		}
		return result(errno)
	},
	// kill PID: may this process signal PID (signal 0)?
	"kill": func(a []string) string {
		pid, _ := strconv.Atoi(a[0])
		return result(unix.Kill(pid, 0))
	},
	// raw-socket: open a packet socket (sniffing the host's network).
	"raw-socket": func([]string) string {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err == nil {
			unix.Close(fd)
		}
		return result(err)
	},
	// status: CapBnd, CapEff, CapPrm, CapAmb and NoNewPrivs from
	// /proc/self/status, one "Key value" per line.
	"status": func([]string) string {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return result(err)
		}
		var out []string
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "CapBnd", "CapEff", "CapPrm", "CapAmb", "CapInh", "NoNewPrivs":
				out = append(out, k+" "+strings.TrimSpace(v))
			}
		}
		return strings.Join(out, "\n")
	},
	// readlink PATH: where the symbolic link PATH points.
	"readlink": func(a []string) string {
		s, err := os.Readlink(a[0])
		if err != nil {
			return result(err)
		}
		return "ok " + s
	},
	// daemon SECONDS: leave a process of a new session running SECONDS
	// after this one exits (a daemon a package script forgot).
	"daemon": func(a []string) string {
		cmd := exec.Command(ProbePath, "sleep", a[0])
		cmd.Args[0] = ProbeArg0
		cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return result(err)
		}
		return "ok " + strconv.Itoa(cmd.Process.Pid)
	},
	// sleep SECONDS.
	"sleep": func(a []string) string {
		n, _ := strconv.Atoi(a[0])
		time.Sleep(time.Duration(n) * time.Second)
		return "ok"
	},
	// exit N: exit with status N.
	"exit": func(a []string) string {
		n, _ := strconv.Atoi(a[0])
		os.Exit(n)
		return ""
	},
}
