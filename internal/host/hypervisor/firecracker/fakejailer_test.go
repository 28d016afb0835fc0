package firecracker

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeJailerName is the name under which this test binary plays the
// jailer (see runIfFakeJailer).
const fakeJailerName = "jailer"

// fakeJailer returns a stand-in jailer: this test binary under the name
// "jailer". It does what docs/jailer.md says the jailer does, but for
// cgroups (it checks their syntax only): it makes
// <base>/<exec name>/<id>/root, copies the exec file (and the fctest
// configuration beside it) there, enters a new mount namespace, chroots
// there (with the host's /lib, /lib64 and /usr bound read-only, because
// this test binary is linked dynamically, unlike a Firecracker release),
// gives the chroot to uid:gid, drops to them and execs the Firecracker in
// place, keeping its PID.
func fakeJailer(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), fakeJailerName)
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// runIfFakeJailer plays the jailer and never returns, when this process
// was started as fakeJailer.
func runIfFakeJailer() {
	if filepath.Base(os.Args[0]) != fakeJailerName {
		return
	}
	err := fakeJail(os.Args[1:])
	fmt.Fprintf(os.Stderr, "fake jailer: %v\n", err)
	os.Exit(1)
}

func fakeJail(args []string) error {
	var id, execFile string
	base := DefaultChrootBase
	uid, gid := -1, -1
	var fcArgs []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			fcArgs = args[i+1:]
			break
		}
		if i+1 >= len(args) {
			return fmt.Errorf("%s needs a value", a)
		}
		i++
		v := args[i]
		switch a {
		case "--id":
			id = v
		case "--exec-file":
			execFile = v
		case "--uid":
			uid, _ = strconv.Atoi(v)
		case "--gid":
			gid, _ = strconv.Atoi(v)
		case "--chroot-base-dir":
			base = v
		case "--cgroup-version":
			if v != "1" && v != "2" {
				return fmt.Errorf("--cgroup-version %s", v)
			}
		case "--cgroup":
			if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
				return fmt.Errorf("--cgroup %q is not file=value", v)
			}
		case "--parent-cgroup", "--netns":
		default:
			return fmt.Errorf("unexpected argument %s", a)
		}
	}
	if id == "" || execFile == "" || uid < 0 || gid < 0 {
		return fmt.Errorf("--id, --exec-file, --uid and --gid are required: %q", args)
	}
	name := filepath.Base(execFile)
	if !strings.Contains(name, "firecracker") {
		return fmt.Errorf("the exec file's name must include firecracker: %s", name)
	}
	root := filepath.Join(base, name, id, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(execFile)
	if err != nil {
		return err
	}
	if err := copyTo(filepath.Join(root, name), real, 0o755); err != nil {
		return err
	}
	// The fake Firecracker's configuration, read by the jailed user.
	cfg := filepath.Join(root, "fctest.json")
	if err := copyTo(cfg, filepath.Join(filepath.Dir(execFile), "fctest.json"), 0o600); err != nil {
		return err
	}
	if err := os.Chown(cfg, uid, gid); err != nil {
		return err
	}

	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	for _, d := range []string{"/lib", "/lib64", "/usr"} {
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			continue // a merged-/usr symlink follows /usr
		}
		dst := filepath.Join(root, d)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(d, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("binding %s: %w", d, err)
		}
		unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	for _, d := range []string{"/lib", "/lib64"} {
		if target, err := os.Readlink(d); err == nil {
			os.Symlink(target, filepath.Join(root, d))
		}
	}
	if err := os.Chown(root, uid, gid); err != nil {
		return err
	}
	if err := unix.Chroot(root); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := unix.Setgid(gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := unix.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	argv := append([]string{"/" + name, "--id=" + id}, fcArgs...)
	return unix.Exec("/"+name, argv, []string{"PATH=/usr/bin:/bin"})
}

func copyTo(dst, src string, mode os.FileMode) error {
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
