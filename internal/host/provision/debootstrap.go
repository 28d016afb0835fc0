package provision

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// Errors callers can tell apart with errors.Is; the wrapped messages name
// the fix.
var (
	// ErrNotRoot: building a root filesystem needs root (mounts, chroot, chown).
	ErrNotRoot = errors.New("building a guest root filesystem needs root (mount, chroot and file ownership): run bangerd as root")
	// ErrDebootstrapMissing: the debootstrap program is not installed.
	ErrDebootstrapMissing = errors.New("debootstrap is not installed: apt-get install debootstrap")
	// ErrTarMissing: GNU tar, which packs and unpacks the base cache, is not installed.
	ErrTarMissing = errors.New("GNU tar is not installed: apt-get install tar")
)

// tarFlags keep what a root filesystem needs: numeric ownership, modes,
// device nodes, hard links, and file capabilities (security.capability).
func tarFlags() []string {
	return []string{"--numeric-owner", "--xattrs", "--xattrs-include=security.capability"}
}

// cacheSuffix names base cache files: <digest>.tar.zst. zstd because the
// tree (about 400 MB) packs to about a third, unpacking costs less than
// reading the difference from disk, and the compressor is a Go library,
// so no zstd program is needed. GNU tar, which every Debian host has,
// keeps ownership, device nodes, hard links and capabilities exactly.
const cacheSuffix = ".tar.zst"

// host is what Debootstrap needs from the machine; tests replace it.
type host struct {
	geteuid  func() int
	lookPath func(string) (string, error)
}

func realHost() host { return host{geteuid: os.Geteuid, lookPath: exec.LookPath} }

// Debootstrap fills dest, which must be missing or empty, with the root
// filesystem m describes. When cacheDir holds <m.Digest()>.tar.zst it is
// unpacked instead of running debootstrap (seconds instead of a minute);
// otherwise debootstrap runs, its progress lines go to log, apt's caches
// are emptied, per-machine identity is removed (see below), and the tree
// is packed into the cache (written to a temporary file and renamed) for
// the next call. cacheDir "" disables the cache.
//
// The tree carries nothing of the build host or of one machine: no
// /etc/resolv.conf or host name from the host, an empty /etc/machine-id
// (systemd makes one on first boot), and no SSH host keys
// (banger-ssh-hostkeys.service makes them on first boot).
//
// A failed run leaves dest empty, so calling again is safe.
func Debootstrap(ctx context.Context, m Manifest, dest, cacheDir string, log func(string)) error {
	return realHost().debootstrap(ctx, m, dest, cacheDir, orNop(log))
}

func (h host) debootstrap(ctx context.Context, m Manifest, dest, cacheDir string, log func(string)) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if h.geteuid() != 0 {
		return fmt.Errorf("debootstrap of %s: %w", m.Suite, ErrNotRoot)
	}
	if _, err := h.lookPath("tar"); err != nil {
		return ErrTarMissing
	}
	if err := emptyDir(dest); err != nil {
		return err
	}
	digest := m.Digest()
	cache := ""
	if cacheDir != "" {
		cache = filepath.Join(cacheDir, digest+cacheSuffix)
		if _, err := os.Stat(cache); err == nil {
			start := time.Now()
			log(fmt.Sprintf("unpacking cached %s %s base %s", m.Distro, m.Suite, filepath.Base(cache)))
			err := unpackTar(ctx, cache, dest)
			if err == nil {
				log(fmt.Sprintf("unpacked cached base in %s", time.Since(start).Round(time.Millisecond)))
				return openRoot(dest)
			}
			if ctx.Err() != nil {
				clearDir(dest)
				return fmt.Errorf("unpacking %s: %w", cache, ctx.Err())
			}
			log(fmt.Sprintf("cached base %s is unusable (%v); removing it and running debootstrap", cache, err))
			if err := clearDir(dest); err != nil {
				return err
			}
			os.Remove(cache)
		}
	}
	if _, err := h.lookPath("debootstrap"); err != nil {
		return ErrDebootstrapMissing
	}
	if err := runDebootstrap(ctx, m, dest, log); err != nil {
		if cerr := clearDir(dest); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return err
	}
	if err := finishBase(dest); err != nil {
		clearDir(dest)
		return fmt.Errorf("finishing the %s base in %s: %w", m.Suite, dest, err)
	}
	if cache != "" {
		start := time.Now()
		if err := packTar(ctx, dest, cache); err != nil {
			// The tree is fine; only the next run will be slower.
			log(fmt.Sprintf("could not cache the base in %s: %v", cacheDir, err))
		} else if fi, err := os.Stat(cache); err == nil {
			log(fmt.Sprintf("cached the base as %s (%d MB) in %s", cache, fi.Size()>>20, time.Since(start).Round(time.Millisecond)))
		}
	}
	return nil
}

func debootstrapArgs(m Manifest, dest string) []string {
	c := m.canonical()
	args := []string{"--variant=" + c.Variant, "--arch=" + c.Arch}
	if len(c.Packages) > 0 {
		args = append(args, "--include="+strings.Join(c.Packages, ","))
	}
	return append(args, c.Suite, dest, c.Mirror)
}

func runDebootstrap(ctx context.Context, m Manifest, dest string, log func(string)) error {
	args := debootstrapArgs(m, dest)
	log("running debootstrap " + strings.Join(args, " "))
	start := time.Now()
	out := newLineWriter(log, 30)
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"}
	// Its own process group, so cancelling stops the dpkg and wget it runs too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	out.flush()
	// debootstrap mounts /proc and /sys in the target while it runs and may
	// leave them behind when it fails or is killed.
	cerr := Cleanup(dest)
	if err != nil {
		hint := "read the lines above for the failing step"
		if tail := out.Tail(); strings.Contains(tail, "Failed getting release file") || strings.Contains(tail, "Couldn't download") || strings.Contains(tail, "Failure trying to run") && strings.Contains(tail, "download") {
			hint = "check network access to " + m.canonical().Mirror + " and the suite name"
		} else if strings.Contains(tail, "Couldn't find these debs") {
			hint = "a package in the manifest does not exist in " + m.Suite + ": fix the manifest"
		}
		return errors.Join(fmt.Errorf("debootstrap of %s into %s failed after %s: %w: %s\n%s",
			m.Suite, dest, time.Since(start).Round(time.Second), err, hint, out.Tail()), cerr)
	}
	log(fmt.Sprintf("debootstrap finished in %s", time.Since(start).Round(time.Second)))
	return cerr
}

// finishBase empties apt's caches and removes what belongs to the build
// host or to a single machine.
func finishBase(root string) error {
	if err := openRoot(root); err != nil {
		return err
	}
	if err := cleanApt(root); err != nil {
		return err
	}
	return resetIdentity(root)
}

// openRoot gives the tree's root directory mode 0755, whatever the mode of
// the directory it was made in (a 0700 temporary directory, say, which a
// cached tree also records): otherwise no user but root can reach any path
// of the image, and apt cannot drop to its _apt user to download.
func openRoot(root string) error {
	if err := os.Chmod(root, 0o755); err != nil {
		return fmt.Errorf("making %s the image's / (mode 0755): %w", root, err)
	}
	return nil
}

// cleanApt removes downloaded packages and package lists; a Packages step
// runs apt-get update first. It runs on the host after build commands, so
// the directories are resolved inside root (a build that replaced
// /var/lib/apt/lists with a link to / must not make the host delete its
// own files) and what they hold is removed without following links.
func cleanApt(root string) error {
	for _, c := range []struct{ dir, pattern string }{
		{"/var/cache/apt/archives", "*.deb"},
		{"/var/cache/apt", "*.bin"},
		{"/var/lib/apt/lists", "*"},
	} {
		dir, err := resolveInRoot(root, c.dir)
		if err != nil {
			return err
		}
		matches, err := filepath.Glob(filepath.Join(dir, c.pattern))
		if err != nil {
			return err
		}
		for _, p := range matches {
			switch filepath.Base(p) {
			case "lock", "partial", "auxfiles":
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// sshHostKeysUnit makes missing SSH host keys before sshd starts, so every
// machine made from an image has its own.
const sshHostKeysUnit = `[Unit]
Description=Generate SSH host keys (banger)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=ssh.service multi-user.target
`

// resetIdentity removes what debootstrap copied from the build host
// (resolv.conf, hostname) and what identifies one machine (machine-id, SSH
// host keys), and installs the unit that recreates the host keys.
func resetIdentity(root string) error {
	if err := os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("localhost\n"), 0o644); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(root, "etc/resolv.conf")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/machine-id")); err == nil {
		if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), nil, 0o444); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(root, "var/lib/dbus/machine-id")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/sshd")); err == nil {
		svc := Service{UnitName: "banger-ssh-hostkeys.service", Unit: sshHostKeysUnit, Enable: true}
		if err := svc.install(root); err != nil {
			return err
		}
	}
	return nil
}

// emptyDir makes sure dir exists and holds nothing.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: give an empty or new directory (or remove it first)", dir)
	}
	return nil
}

// clearDir removes everything in dir, after making sure nothing is
// mounted below it: removing a tree with the host's /dev bound inside
// would delete the host's device nodes.
func clearDir(dir string) error {
	if err := Cleanup(dir); err != nil {
		return fmt.Errorf("not clearing %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("not clearing %s: reading the mount table: %w", dir, err)
	}
	if left := mountsUnder(parseMountinfo(info), abs); len(left) > 0 {
		return fmt.Errorf("not clearing %s: still mounted below it: %s: unmount them (umount -l) and remove the directory by hand", dir, strings.Join(left, ", "))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// unpackTar unpacks the zstd-compressed tar at src into dest with GNU tar.
func unpackTar(ctx context.Context, src, dest string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	dec, err := zstd.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return err
	}
	defer dec.Close()
	args := append([]string{"-x", "-p", "-f", "-", "-C", dest}, tarFlags()...)
	cmd := exec.CommandContext(ctx, "tar", args...)
	cmd.Stdin = dec
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tar -x: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// packTar packs src into a zstd-compressed tar at dest, atomically.
func packTar(ctx context.Context, src, dest string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	tmp, err := atomicfile.Create(dest, 0o600, 0)
	if err != nil {
		return err
	}
	defer tmp.Abort() // a no-op after Commit
	bw := bufio.NewWriterSize(tmp, 1<<20)
	enc, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	args := append([]string{"-c", "-f", "-", "-C", src, "--one-file-system"}, tarFlags()...)
	args = append(args, ".")
	cmd := exec.CommandContext(ctx, "tar", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	_, copyErr := io.Copy(enc, stdout)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("tar -c: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if copyErr != nil {
		return copyErr
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return tmp.Commit()
}
