package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/diskclone"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/host/provision"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// sharedCache is where the e2e tests keep downloads (debootstrap tree,
// kernel package, npm tarballs) between tests and runs, keyed by content.
func sharedCache() string { return filepath.Join(os.TempDir(), "banger-test-cache") }

func needImageHost(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("bootstraps a Debian image (about 2 minutes cold)")
	}
	if os.Getuid() != 0 {
		t.Skip("image bootstrap needs root (debootstrap, chroot)")
	}
	for _, b := range []string{"debootstrap", "qemu-system-x86_64", "mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s is not installed: run scripts/install-deps.sh", b)
		}
	}
}

func imageShow(t *testing.T, e *env, name string) api.Image {
	t.Helper()
	var img api.Image
	if err := json.Unmarshal([]byte(e.mustRun("image", "show", name, "--json").stdout), &img); err != nil {
		t.Fatal(err)
	}
	return img
}

func artifact(t *testing.T, img api.Image, kind string) string {
	t.Helper()
	for _, a := range img.Artifacts {
		if a.Kind == kind {
			return a.Path
		}
	}
	t.Fatalf("image %s has no %s", img.Name, kind)
	return ""
}

// TestImageBootstrapBootAndBuild is the images capability end to end:
// bootstrap a Debian image through the CLI, boot it under QEMU and get the
// agent's health over the virtio-serial port with /root on the work disk,
// then build the agents preset on top and run each agent in the result.
func TestImageBootstrapBootAndBuild(t *testing.T) {
	needImageHost(t)
	e := newEnv(t)
	e.extra = []string{"BANGER_CACHE_DIR=" + sharedCache()}

	start := time.Now()
	r := e.runWith(e.extra, "image", "bootstrap", "debian", "--name", "base")
	if r.code != 0 {
		t.Fatalf("bootstrap: exit %d\n%s\n%s", r.code, tail(r.stderr, 40), r.stdout)
	}
	t.Logf("bootstrap took %s", time.Since(start).Round(time.Second))
	for _, stage := range []string{"debootstrap", "kernel", "agent", "ssh access", "rootfs image", "work-seed", "fingerprint", "register"} {
		if !strings.Contains(r.stderr, "✓ "+stage) {
			t.Errorf("bootstrap stages lack %q", stage)
		}
	}
	img := imageShow(t, e, "base")
	if img.State != api.ImageReady || img.Kernel.Release == "" || !img.Kernel.QEMU || len(img.Kernel.Modules) == 0 {
		t.Fatalf("image = %+v", img)
	}
	t.Logf("kernel %s: firecracker=%v (%s), qemu=%v", img.Kernel.Release, img.Kernel.Firecracker, img.Kernel.FirecrackerReason, img.Kernel.QEMU)

	// A bad name is refused at once, with the fix.
	bad := e.runWith(e.extra, "image", "bootstrap", "debian", "--name", "Bad_Name")
	if bad.code == 0 || !strings.Contains(bad.stderr, `invalid --name "Bad_Name"`) || strings.Count(bad.stderr, "\n") != 1 {
		t.Errorf("bad name: exit %d, %q", bad.code, bad.stderr)
	}

	t.Run("boot", func(t *testing.T) { bootAndCheckHealth(t, img) })
	t.Run("agents-preset", func(t *testing.T) { buildAgents(t, e) })
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// bootAndCheckHealth boots the image's kernel, initramfs, rootfs and
// work-seed under QEMU (software emulation: q35, virtio-pci) and asks the
// agent for its health from the host over the virtio-serial port.
func bootAndCheckHealth(t *testing.T, img api.Image) {
	dir, err := os.MkdirTemp("", "bgboot")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	rootfs, work := filepath.Join(dir, "rootfs.ext4"), filepath.Join(dir, "work.ext4")
	if _, err := diskclone.Clone(rootfs, artifact(t, img, "rootfs")); err != nil {
		t.Fatal(err)
	}
	if _, err := diskclone.Clone(work, artifact(t, img, "work-seed")); err != nil {
		t.Fatal(err)
	}
	sock, console := filepath.Join(dir, "agent.sock"), filepath.Join(dir, "console.log")
	// The boot payload: the agent serves only a host with the key it
	// finds in the initramfs, as bangerd hands it at each boot.
	key := []byte("the agent key of bootAndCheckHealth")[:32]
	initrd := filepath.Join(dir, "initrd")
	if err := hvtest.WithBootKey(initrd, artifact(t, img, "initrd"), key); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-machine", "q35,accel=tcg", "-cpu", "max", "-m", "1024", "-smp", "2",
		"-nographic", "-no-reboot", "-nodefaults", "-display", "none",
		"-kernel", artifact(t, img, "vmlinuz"), "-initrd", initrd,
		"-append", "console=ttyS0 root=/dev/vda rw panic=-1",
		"-drive", "file=" + rootfs + ",if=none,id=root,format=raw", "-device", "virtio-blk-pci,drive=root",
		"-drive", "file=" + work + ",if=none,id=work,format=raw", "-device", "virtio-blk-pci,drive=work",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=agent,path=" + sock + ",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=" + agentproto.SerialPortName,
		"-serial", "file:" + console,
	}
	qemu := exec.Command("qemu-system-x86_64", args...)
	qemu.Stderr = os.Stderr
	start := time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		qemu.Process.Kill()
		qemu.Wait()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	var conn net.Conn
	for conn == nil {
		c, err := net.Dial("unix", sock)
		if err == nil {
			conn = c
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("QEMU never opened the agent socket: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close()
	var (
		sess  *agentmux.Session
		h     agentproto.Health
		first time.Duration
	)
	for {
		// A timed-out upgrade leaves conn usable: the next attempt
		// retries on it (what reaches the port before the agent opened
		// it is lost).
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		var err error
		if sess == nil {
			sess, err = agentmux.Upgrade(attempt, conn, key)
		}
		var got agentproto.Health
		if err == nil {
			got, err = sess.Health(attempt)
		}
		cancelAttempt()
		if err == nil {
			if first == 0 {
				first = time.Since(start)
			}
			h = got
			// /root is mounted by systemd a little after the agent starts.
			if h.RootMount != "" {
				break
			}
		}
		if ctx.Err() != nil {
			con, _ := os.ReadFile(console)
			t.Fatalf("no healthy agent with /root mounted within 180s (last %+v, %v)\nconsole:\n%s", h, err, tail(string(con), 40))
		}
	}
	t.Logf("agent answered %s after QEMU start; /root mounted by %s", first.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	if h.Protocol != agentmux.Protocol || h.Kernel != img.Kernel.Release || h.Root != "ext4" {
		t.Errorf("health = %+v", h)
	}
	if h.RootMount != "/dev/vdb" {
		t.Errorf("/root is mounted from %q, want the work disk /dev/vdb", h.RootMount)
	}
	if !strings.HasSuffix(img.AgentVersion, "+"+h.BuildID) {
		t.Errorf("agent build %s, image records %s", h.BuildID, img.AgentVersion)
	}
}

// buildAgents derives an image with the agents preset and runs each
// agent's --version inside the built rootfs.
func buildAgents(t *testing.T, e *env) {
	start := time.Now()
	r := e.runWith(e.extra, "image", "build", "--from", "base", "--name", "agents", "--preset", "agents")
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, tail(r.stderr, 60))
	}
	t.Logf("agents preset build took %s", time.Since(start).Round(time.Second))
	img := imageShow(t, e, "agents")
	if img.Parent != "base" || len(img.Probes) != 1 || img.Probes[0].Port != 4096 {
		t.Errorf("built image = %+v", img)
	}
	mnt, err := os.MkdirTemp("", "bgmnt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(mnt)
	rootfs := artifact(t, img, "rootfs")
	if out, err := exec.Command("mount", "-o", "loop", rootfs, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	}()
	// Run them the way the guest would: with /proc, /dev and /sys there.
	chroot, err := provision.OpenChroot(mnt, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	defer chroot.Close()
	for _, prog := range []string{"node", "opencode", "claude", "pi"} {
		out, err := chroot.Run(context.Background(), provision.DefaultEnv(), prog, "--version")
		if err != nil {
			t.Errorf("%s --version in the built rootfs: %v\n%s", prog, err, out)
			continue
		}
		t.Logf("%s --version: %s", prog, strings.TrimSpace(string(out)))
	}
	if _, err := os.Lstat(filepath.Join(mnt, "etc/systemd/system/multi-user.target.wants/opencode.service")); err != nil {
		t.Errorf("opencode.service not enabled: %v", err)
	}
}
