package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
)

// nobody is the unprivileged user the rootless test runs banger as.
const nobodyUID = 65534

// TestRootlessVM runs an unprivileged bangerd (as nobody) in a namespace:
// without a TAP pool, create fails with the fix and allocates nothing;
// after `sudo banger host setup --user nobody` the same create boots a VM
// whose TAP belongs to nobody, on its image's shared base (an overlay root
// over the read-only rootfs, the VM's changes on its own upper disk).
func TestRootlessVM(t *testing.T) {
	root := vmEnv(t) // bootstraps an image as root in its own namespace
	base := imageShow(t, root, "base")

	// nobody's world: a home, the binaries and the image files it may read.
	dir, err := os.MkdirTemp("", "bgnobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	for _, b := range []string{"banger", "bangerd", "banger-agent"} {
		data, _ := os.ReadFile(filepath.Join(binDir, b))
		os.WriteFile(filepath.Join(dir, b), data, 0o755)
		os.Chmod(filepath.Join(dir, b), 0o755)
	}
	files := map[string]string{}
	// With its kernel's modules (and no initramfs of its own) the image is
	// one banger can make a shared base of: the first create does.
	for _, kind := range []string{"vmlinuz", "modules", "rootfs", "work-seed"} {
		dst := filepath.Join(dir, kind)
		if out, err := exec.Command("cp", "-r", "--sparse=always", artifact(t, base, kind), dst).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		if out, err := exec.Command("chmod", "-R", "a+rX", dst).CombinedOutput(); err != nil {
			t.Fatalf("chmod: %v %s", err, out)
		}
		files[kind] = dst
	}
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o755)
	os.Chown(home, nobodyUID, nobodyUID)

	run := func(args ...string) result {
		t.Helper()
		argv := append([]string{"netns", "exec", root.netns, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
			filepath.Join(dir, "banger")}, args...)
		cmd := exec.Command("ip", argv...)
		cmd.Env = []string{"BANGER_HOME=" + filepath.Join(home, "banger"), "HOME=" + home, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{stdout: out.String(), stderr: errb.String(), code: code}
	}
	t.Cleanup(func() {
		var l api.VMList
		if json.Unmarshal([]byte(run("vm", "list", "--json").stdout), &l) == nil {
			for _, v := range l.VMs {
				run("vm", "delete", v.Name)
			}
		}
		run("daemon", "stop")
	})

	if r := run("image", "register", "--name", "base", "--kernel", files["vmlinuz"], "--modules", files["modules"],
		"--rootfs", files["rootfs"], "--work-seed", files["work-seed"]); r.code != 0 {
		t.Fatalf("register as nobody: exit %d\n%s", r.code, tail(r.stderr, 20))
	}
	if st := run("daemon", "status", "--json"); !strings.Contains(st.stdout, `"uid": 65534`) {
		t.Fatalf("daemon does not run as nobody: %s %s", st.stdout, st.stderr)
	}

	// No pool yet: a clear error naming the fix, nothing allocated.
	r := run("vm", "create", "--name", "lonely", "--memory", "512MiB", "--disk", "1GiB")
	if r.code == 0 || !strings.Contains(r.stderr, "TAP pool exhausted") || !strings.Contains(r.stderr, "sudo banger host setup") {
		t.Fatalf("create without a pool: exit %d\n%s", r.code, r.stderr)
	}
	if l := run("vm", "list", "--json"); !strings.Contains(l.stdout, `"vms": []`) {
		t.Errorf("failed create left a vm: %s", l.stdout)
	}
	if v := run("verify"); v.code != 0 {
		t.Errorf("verify after the failed create: %s%s", v.stdout, v.stderr)
	}

	// The one-time privileged setup, for nobody, in the same namespace.
	setup := exec.Command("ip", "netns", "exec", root.netns, filepath.Join(binDir, "banger"), "host", "setup", "--user", "nobody", "--taps", "2")
	setup.Env = []string{"BANGER_HOME=" + filepath.Join(home, "banger"), "HOME=" + home, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("host setup: %v\n%s", err, out)
	}
	r = run("vm", "create", "--name", "rootless", "--memory", "512MiB", "--disk", "1GiB")
	if r.code != 0 {
		t.Fatalf("rootless create: exit %d\n%s", r.code, tail(r.stderr, 30))
	}
	var v api.VM
	json.Unmarshal([]byte(run("vm", "show", "rootless", "--json").stdout), &v)
	if v.State != api.VMRunning || v.TAP == "" {
		t.Fatalf("rootless vm = %+v", v)
	}
	owner, _ := os.ReadFile("/proc/" + strconv.Itoa(v.PID) + "/status")
	if !strings.Contains(string(owner), "Uid:\t65534") {
		t.Errorf("qemu does not run as nobody")
	}
	if out := run("vm", "ssh", "rootless", "--", "hostname"); strings.TrimSpace(out.stdout) != "rootless" {
		t.Errorf("ssh into the rootless vm: %q %s", out.stdout, out.stderr)
	}
	checkRootlessOverlay(t, run, r.stderr, v)
	if d := run("vm", "delete", "rootless"); d.code != 0 {
		t.Errorf("delete: %s", d.stderr)
	}
}

// checkRootlessOverlay checks that nobody's VM booted on its image's
// shared base: create made an upper disk and copied no rootfs, the guest's
// / is an overlay, the VM's directory holds upper.ext4 and no rootfs.ext4,
// and its QEMU (nobody's) holds the image's rootfs open.
func checkRootlessOverlay(t *testing.T, run func(args ...string) result, createOut string, v api.VM) {
	t.Helper()
	if !strings.Contains(createOut, "✓ upper disk") || strings.Contains(createOut, "clone rootfs") {
		t.Errorf("rootless create did not make an upper disk instead of a rootfs clone:\n%s", createOut)
	}
	mounts := run("vm", "exec", v.Name, "--", "cat", "/proc/mounts")
	if root := procMountsRoot(mounts.stdout); root != "overlay" {
		t.Errorf("the rootless guest's / is %q, want overlay; /proc/mounts:\n%s%s", root, mounts.stdout, mounts.stderr)
	}
	if _, err := os.Stat(filepath.Join(v.Dir, "upper.ext4")); err != nil {
		t.Errorf("the rootless VM has no upper disk: %v", err)
	}
	if _, err := os.Stat(filepath.Join(v.Dir, "rootfs.ext4")); !os.IsNotExist(err) {
		t.Errorf("the rootless VM has its own rootfs copy (%v)", err)
	}
	var img api.Image
	if err := json.Unmarshal([]byte(run("image", "show", "base", "--json").stdout), &img); err != nil {
		t.Fatal(err)
	}
	if rootfs := artifact(t, img, "rootfs"); !qemuOpens(t, v.PID)[rootfs] {
		t.Errorf("the rootless VM's qemu does not hold the shared base %s open", rootfs)
	}
}
