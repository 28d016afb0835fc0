package provision

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/buildsandbox"
	"github.com/google/go-cmp/cmp"
)

// These tests build real root filesystems: they need root, debootstrap and
// Debian's mirror (and for the agents preset the npm registry), and skip
// with the reason when the host lacks one of them.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount, chroot, debootstrap); run the tests as root to cover the real build")
	}
}

func requireReachable(t *testing.T, hostport string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		t.Skipf("%s is unreachable from this host (%v)", hostport, err)
	}
	conn.Close()
}

// debootstrapCache is shared between test runs so only the first pays for
// debootstrap.
func debootstrapCache() string {
	return filepath.Join(os.TempDir(), "banger-test-debootstrap-cache")
}

// rootDir returns a fresh directory for a root filesystem. Its removal
// first makes sure nothing is mounted below it: removing a tree with the
// host's /dev bound inside would delete the host's device nodes.
func rootDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "banger-test-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Cleanup(dir); err != nil {
			t.Errorf("Cleanup(%s): %v", dir, err)
		}
		if left := mountedUnder(t, dir); len(left) > 0 {
			t.Errorf("still mounted under %s, not removing it: %v", dir, left)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

func mountedUnder(t *testing.T, dir string) []string {
	t.Helper()
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir
	}
	return mountsUnder(parseMountinfo(info), real)
}

// bootstrapBase debootstraps DebianBase("bookworm") into a new directory,
// from the shared cache when it holds the tree.
func bootstrapBase(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	if _, err := os.Stat("/usr/sbin/debootstrap"); err != nil {
		t.Skip("debootstrap is not installed (apt-get install debootstrap)")
	}
	requireReachable(t, "deb.debian.org:80")
	root := rootDir(t)
	m := DebianBase("bookworm")
	cached := false
	if _, err := os.Stat(filepath.Join(debootstrapCache(), m.Digest()+cacheSuffix)); err == nil {
		cached = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	var lines int
	err := Debootstrap(ctx, m, root, debootstrapCache(), func(line string) {
		lines++
		if !strings.HasPrefix(line, "I: ") || strings.Contains(line, "Base system installed") {
			t.Log(line)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	size, _ := duMB(root)
	t.Logf("Debootstrap(bookworm) took %s (cached=%v, %d log lines, tree %s)", time.Since(start).Round(time.Millisecond), cached, lines, size)
	return root
}

func TestRealDebootstrapAndChroot(t *testing.T) {
	root := bootstrapBase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	t.Run("base tree", func(t *testing.T) {
		for _, p := range []string{"usr/sbin/sshd", "usr/bin/git", "usr/bin/curl", "lib/systemd/systemd", "etc/systemd/system/ssh.service.wants/banger-ssh-hostkeys.service"} {
			if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
				t.Errorf("base tree lacks %s: %v", p, err)
			}
		}
		if keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*")); len(keys) > 0 {
			t.Errorf("base tree carries SSH host keys: %v", keys)
		}
		if debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb")); len(debs) > 0 {
			t.Errorf("apt cache not emptied: %d .deb files", len(debs))
		}
		if id, err := os.ReadFile(filepath.Join(root, "etc/machine-id")); err != nil || len(id) != 0 {
			t.Errorf("/etc/machine-id = %q, %v; want an empty file", id, err)
		}
	})

	c, err := OpenChroot(root, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("run", func(t *testing.T) {
		out, err := c.Run(ctx, nil, "cat", "/etc/debian_version")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(out), "12.") {
			t.Errorf("/etc/debian_version = %q, want 12.x", out)
		}
		out, err = c.Run(ctx, nil, "sh", "-c", "test -e /proc/self/status && test -e /dev/null && test -d /dev/pts && cat /usr/sbin/policy-rc.d && cat /etc/resolv.conf")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "exit 101") || !strings.Contains(string(out), "nameserver") {
			t.Errorf("chroot lacks policy-rc.d or resolv.conf:\n%s", out)
		}
		if _, err := c.Run(ctx, nil, "false"); err == nil {
			t.Error("a failing command reported no error")
		}
		if _, err := c.Run(ctx, nil, "no-such-program"); err == nil || !strings.Contains(err.Error(), "not found in the image's PATH") {
			t.Errorf("missing program: error = %v", err)
		}
	})

	t.Run("packages", func(t *testing.T) {
		start := time.Now()
		var lines []string
		if err := (Packages{Names: []string{"hello"}}).Apply(ctx, c, func(s string) { lines = append(lines, s) }); err != nil {
			t.Fatal(err)
		}
		// apt still drops to its _apt user for downloads under the
		// sandbox's capabilities and no_new_privs.
		for _, l := range lines {
			if strings.Contains(l, "unsandboxed") {
				t.Errorf("apt could not drop to _apt: %s", l)
			}
		}
		t.Logf("Packages{hello} took %s", time.Since(start).Round(time.Millisecond))
		out, err := c.Run(ctx, nil, "hello")
		if err != nil || !strings.Contains(string(out), "Hello, world!") {
			t.Fatalf("hello: %q, %v", out, err)
		}
		if lists, _ := filepath.Glob(filepath.Join(root, "var/lib/apt/lists/*_Packages")); len(lists) > 0 {
			t.Errorf("package lists left in the image: %v", lists)
		}
		err = (Packages{Names: []string{"no-such-package-banger"}}).Apply(ctx, c, func(string) {})
		if err == nil || !strings.Contains(err.Error(), "apt-cache search") {
			t.Errorf("unknown package: error = %v", err)
		}
	})

	t.Run("script", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "setup.sh")
		os.WriteFile(script, []byte("set -e\necho hello from $(cat /etc/hostname)\necho scripted > /etc/banger-script-ran\n"), 0o644)
		var lines []string
		if err := (Script{Path: script}).Apply(ctx, c, func(s string) { lines = append(lines, s) }); err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(lines[len(lines)-1], "hello from localhost") {
			t.Errorf("script output %q", lines)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "etc/banger-script-ran")); string(b) != "scripted\n" {
			t.Errorf("script effect missing: %q", b)
		}
		left, _ := filepath.Glob(filepath.Join(root, "tmp/banger-script-*"))
		if len(left) > 0 {
			t.Errorf("script copy left in the image: %v", left)
		}
		bad := filepath.Join(t.TempDir(), "bad.sh")
		os.WriteFile(bad, []byte("echo about to fail\nexit 3\n"), 0o644)
		err := (Script{Path: bad}).Apply(ctx, c, func(string) {})
		if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "about to fail") {
			t.Errorf("failing script: error = %v", err)
		}
	})

	t.Run("a command cannot mount, and what it leaves running dies with it", func(t *testing.T) {
		out, err := c.Run(ctx, nil, "sh", "-c", "mkdir -p /mnt/x && mount -t tmpfs none /mnt/x")
		if err == nil || !strings.Contains(string(out), "permission denied") {
			t.Errorf("mount in the build: %v\n%s", err, out)
		}
		// A daemon that escaped the command's process group.
		if _, err := c.Run(ctx, nil, "sh", "-c", "setsid sleep 6543 </dev/null >/dev/null 2>&1 &"); err != nil {
			t.Fatal(err)
		}
		if left := processesNamed(t, "sleep\x006543\x00"); len(left) > 0 {
			t.Errorf("processes left running after their command: %v", left)
		}
	})

	t.Run("a Debian shell in the sandbox sees none of the host", func(t *testing.T) {
		c.Hostname = "banger-test-image"
		defer func() { c.Hostname = "" }()
		script := `set -e
echo "pids $(ls /proc | grep '^[0-9]' | tr '\n' ' ')"
echo "dev $(ls /dev | tr '\n' ' ')"
echo "hostname $(hostname)"
if mknod /tmp/n c 1 3 2>/dev/null; then echo mknod ok; else echo mknod denied; fi
grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status
`
		out, err := c.Run(ctx, nil, "sh", "-c", script)
		if err != nil {
			t.Fatal(err)
		}
		pids, rest, _ := strings.Cut(string(out), "\n")
		// The init (PID 1; its threads take the next few numbers), sh,
		// its command substitution and the pipeline: the host's processes
		// would be many more, numbered higher.
		if list := strings.Fields(strings.TrimPrefix(pids, "pids ")); len(list) > 8 || len(list) == 0 || list[0] != "1" {
			t.Errorf("the sandbox sees processes %v, want the init (1) and a few of the shell's", list)
		}
		for _, p := range strings.Fields(strings.TrimPrefix(pids, "pids ")) {
			if n, err := strconv.Atoi(p); err != nil || n > 64 {
				t.Errorf("the sandbox sees process %s: %s", p, pids)
			}
		}
		want := fmt.Sprintf("dev fd full null ptmx pts random shm stderr stdin stdout tty urandom zero \nhostname banger-test-image\nmknod denied\nCapBnd:\t%016x\nNoNewPrivs:\t1\n", buildsandbox.KeptMask())
		if diff := cmp.Diff(want, rest); diff != "" {
			t.Errorf("sandbox as the shell sees it (-want +got):\n%s", diff)
		}
	})

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if left := mountedUnder(t, root); len(left) > 0 {
		t.Fatalf("mounted after Close: %v", left)
	}
	for _, p := range []string{"usr/sbin/policy-rc.d", "etc/resolv.conf", "etc/resolv.conf" + absentSuffix} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s left in the image after Close", p)
		}
	}
	if pids := (procFS{dir: "/proc"}).pidsRootedIn(root); len(pids) > 0 {
		t.Errorf("processes left running in the chroot: %v", pids)
	}

	t.Run("cleanup after a crash", func(t *testing.T) {
		// Open again and "crash": drop the Chroot without Close.
		c2, err := OpenChroot(root, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c2
		if len(mountedUnder(t, root)) == 0 {
			t.Fatal("OpenChroot mounted nothing")
		}
		if err := Cleanup(root); err != nil {
			t.Fatal(err)
		}
		if left := mountedUnder(t, root); len(left) > 0 {
			t.Fatalf("mounted after Cleanup: %v", left)
		}
		if _, err := os.Lstat(filepath.Join(root, "usr/sbin/policy-rc.d")); err == nil {
			t.Error("Cleanup left policy-rc.d")
		}
		if err := Cleanup(root); err != nil {
			t.Errorf("second Cleanup: %v", err)
		}
	})
}

// TestRealAgentsPreset installs node, npm and the three agents into a
// bookworm base: it downloads about 200 MB the first time (later runs use
// the caches in $TMPDIR) and takes minutes, so -short skips it.
func TestRealAgentsPreset(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: downloads node and the agents (about 200 MB) and takes minutes")
	}
	requireRoot(t)
	requireReachable(t, "registry.npmjs.org:443")
	root := bootstrapBase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := OpenChroot(root, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var versions map[string]string
	preset := AgentsPreset{
		CacheDir:   filepath.Join(os.TempDir(), "banger-test-agents-cache"),
		HTTPClient: &http.Client{Timeout: 10 * time.Minute},
		Installed:  func(v map[string]string) { versions = v },
	}
	start := time.Now()
	if err := preset.Apply(ctx, c, func(s string) { t.Log(s) }); err != nil {
		t.Fatal(err)
	}
	t.Logf("agents preset took %s; versions %v", time.Since(start).Round(time.Second), versions)

	for _, bin := range []string{"node", "npm", "npx", "opencode", "claude", "pi"} {
		if _, err := os.Stat(filepath.Join(root, "usr/local/bin", bin)); err != nil {
			t.Errorf("/usr/local/bin/%s: %v", bin, err)
		}
	}
	if !strings.HasPrefix(versions["node"], "v24.") {
		t.Errorf("node version %q, want v24.x", versions["node"])
	}
	link, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/opencode.service"))
	if err != nil || link != "/etc/systemd/system/opencode.service" {
		t.Errorf("opencode.service not enabled: %q, %v", link, err)
	}
	unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/opencode.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/opencode serve --port 4096 --hostname 0.0.0.0") {
		t.Errorf("opencode.service:\n%s", unit)
	}
	if diff := cmp.Diff([]Probe{{Name: "opencode", Kind: "tcp", Port: 4096}}, preset.Probes()); diff != "" {
		t.Errorf("Probes (-want +got):\n%s", diff)
	}
	// Nothing of the install (npm's cache, what postinstall scripts and
	// --version runs write to HOME or TMPDIR) lands in the image.
	for _, dir := range []string{"root", "tmp"} {
		entries, _ := os.ReadDir(filepath.Join(root, dir))
		for _, e := range entries {
			switch e.Name() {
			case ".bashrc", ".profile", ".ssh":
			default:
				t.Errorf("/%s/%s left in the image", dir, e.Name())
			}
		}
	}
	// The postinstall scripts ran: opencode and claude are native binaries,
	// not the node wrappers the packages ship.
	for _, p := range []string{"usr/local/lib/node_modules/opencode-ai/bin/opencode.exe", "usr/local/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe"} {
		b := make([]byte, 4)
		f, err := os.Open(filepath.Join(root, p))
		if err != nil {
			t.Error(err)
			continue
		}
		f.Read(b)
		f.Close()
		if string(b) != "\x7fELF" {
			t.Errorf("%s is not the native binary (postinstall did not run?): starts with %q", p, b)
		}
	}

	// Idempotent: a second run succeeds, and is faster thanks to the caches.
	start = time.Now()
	if err := preset.Apply(ctx, c, func(string) {}); err != nil {
		t.Fatalf("second run: %v", err)
	}
	t.Logf("second agents preset run took %s", time.Since(start).Round(time.Second))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if left := mountedUnder(t, root); len(left) > 0 {
		t.Fatalf("mounted after Close: %v", left)
	}
	if out, err := duMB(root); err == nil {
		t.Logf("rootfs with agents: %s", out)
	}
}

// processesNamed returns the host's processes whose /proc/PID/cmdline is
// cmdline.
func processesNamed(t *testing.T, cmdline string) []int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && string(b) == cmdline {
			pid, _ := strconv.Atoi(e.Name())
			pids = append(pids, pid)
		}
	}
	return pids
}

// duMB reports the disk usage of dir in megabytes.
func duMB(dir string) (string, error) {
	out, err := exec.Command("du", "-sm", "--one-file-system", dir).Output()
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "", fmt.Errorf("du printed nothing")
	}
	return f[0] + " MB", nil
}
