package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/bangerdev/banger/api"
)

// newNetns makes a network namespace for one test: every bridge, TAP, NAT
// rule and VM of the test lives in it, and it goes away at the end (with
// anything still running in it).
func newNetns(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "banger-test-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	exec.Command("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up").Run()
	t.Cleanup(func() {
		if out, _ := exec.Command("ip", "netns", "pids", name).Output(); len(out) > 0 {
			for _, f := range strings.Fields(string(out)) {
				var pid int
				fmt.Sscan(f, &pid)
				if pid > 0 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		exec.Command("ip", "netns", "del", name).Run()
	})
	return name
}

// vmEnv is a test user with a bootstrapped image (from the shared cache)
// whose daemon runs inside a fresh network namespace.
func vmEnv(t testing.TB) *env { return vmEnvCache(t, sharedCache()) }

// vmEnvCache is vmEnv with its own download cache directory.
func vmEnvCache(t testing.TB, cache string) *env {
	t.Helper()
	needImageHost(t)
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("ssh is not installed: apt-get install openssh-client")
	}
	e := newEnv(t)
	e.extra = []string{"BANGER_CACHE_DIR=" + cache}
	// The image is built in the host's namespace: a cold cache downloads
	// packages and the kernel from the Debian mirror, which a test
	// namespace cannot reach. That daemon creates no VMs, so it touches no
	// networking; it stops before the test moves into its namespace.
	if r := e.runWith(e.extra, "image", "bootstrap", "debian", "--name", "base"); r.code != 0 {
		t.Fatalf("bootstrap: exit %d\n%s", r.code, tail(r.stderr, 30))
	}
	e.must("daemon", "stop")
	e.netns = newNetns(t)
	t.Cleanup(func() {
		// Whatever a failed test left: delete VMs so QEMU and disks go.
		var l api.VMList
		if json.Unmarshal([]byte(e.runWith(e.extra, "vm", "list", "--json").stdout), &l) == nil {
			for _, v := range l.VMs {
				e.runWith(e.extra, "vm", "delete", v.Name)
			}
		}
	})
	return e
}

func (e *env) must(args ...string) result {
	e.t.Helper()
	r := e.runWith(e.extra, args...)
	if r.code != 0 {
		e.t.Fatalf("banger %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, tail(r.stderr, 40))
	}
	return r
}

func vmShow(t testing.TB, e *env, name string) api.VM {
	t.Helper()
	var v api.VM
	if err := json.Unmarshal([]byte(e.must("vm", "show", name, "--json").stdout), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func verifyClean(t testing.TB, e *env) {
	t.Helper()
	r := e.runWith(e.extra, "verify")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing leaked") {
		t.Errorf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// The vertical slice: create → agent healthy → ssh → stop → start → /root
// survived → delete → nothing leaked.
func TestVMLifecycle(t *testing.T) {
	e := vmEnv(t)
	// One of the default auth files exists on the "host": it must land in
	// the guest's /root with 0600; the others are skipped with a notice.
	cred := filepath.Join(e.home, "home", ".claude", ".credentials.json")
	os.MkdirAll(filepath.Dir(cred), 0o700)
	os.WriteFile(cred, []byte(`{"token":"t0"}`), 0o600)
	r := e.must("vm", "create", "--name", "demo", "--memory", "1GiB", "--disk", "2GiB")
	if !strings.Contains(r.stderr, "1 written, 3 missing") {
		t.Errorf("auth sync did not report 1 written, 3 missing:\n%s", r.stderr)
	}
	for _, stage := range []string{"allocate", "upper disk", "work disk", "sync auth files", "acquire tap", "launch qemu", "agent health"} {
		if !strings.Contains(r.stderr, "✓ "+stage) {
			t.Errorf("create stages lack %q:\n%s", stage, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "banger vm ssh demo") {
		t.Errorf("create did not print next steps:\n%s", r.stdout)
	}
	t.Logf("create:\n%s%s", r.stderr, r.stdout)
	v := vmShow(t, e, "demo")
	if v.State != api.VMRunning || v.IP == "" || v.TAP == "" || v.PID == 0 {
		t.Fatalf("vm = %+v", v)
	}

	out := e.must("vm", "ssh", "demo", "--", "uname", "-a").stdout
	if !strings.Contains(out, "Linux demo") {
		t.Errorf("uname over ssh: %q", out)
	}
	e.must("vm", "ssh", "demo", "--", "sh", "-c", "'echo kept > /root/keep.txt && sync'")
	if mount := e.must("vm", "ssh", "demo", "--", "findmnt", "-no", "SOURCE", "/root").stdout; !strings.Contains(mount, "/dev/vdb") {
		t.Errorf("/root is mounted from %q, want /dev/vdb", mount)
	}
	if got := e.runWith(e.extra, "vm", "ssh", "demo", "--", "stat", "-c", "'%a %U %s'", "/root/.claude/.credentials.json").stdout; strings.TrimSpace(got) != "600 root 14" {
		diag := e.runWith(e.extra, "vm", "ssh", "demo", "--", "sh", "-c", "'ls -la /run/banger/boot; findmnt /run; journalctl -b -u banger-agent --no-pager | tail -20'")
		t.Errorf("synced auth file: %q, want mode 600, owner root, 14 bytes; guest:\n%s%s", got, diag.stdout, diag.stderr)
	}
	checkBootPayload(t, e, v)
	if logs := e.must("vm", "logs", "demo").stdout; !strings.Contains(logs, "Linux version") {
		t.Errorf("vm logs does not show the console (%d bytes)", len(logs))
	}
	checkStats(t, e, "demo", 1024)

	// Auth files are synced on every start: a changed credential arrives.
	os.WriteFile(cred, []byte(`{"token":"t1"}`), 0o600)
	e.must("vm", "stop", "demo")
	if v := vmShow(t, e, "demo"); v.State != api.VMStopped || v.TAP != "" {
		t.Errorf("after stop: %+v", v)
	}
	checkStatsStopped(t, e, "demo")
	dir := filepath.Join(e.home, "state", "vms", v.ID)
	for _, f := range []string{"agent.key", "initrd.img"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("a stopped VM keeps its %s: %v", f, err)
		}
	}
	e.must("vm", "start", "demo")
	if got := e.must("vm", "ssh", "demo", "--", "cat", "/root/keep.txt").stdout; strings.TrimSpace(got) != "kept" {
		t.Errorf("/root/keep.txt after restart = %q", got)
	}
	if got := e.must("vm", "ssh", "demo", "--", "cat", "/root/.claude/.credentials.json").stdout; !strings.Contains(got, "t1") {
		t.Errorf("auth file after restart = %q, want the updated token", got)
	}

	bench := e.must("bench", "create", "--runs", "2", "--parallel", "2")
	t.Logf("bench create --runs 2 --parallel 2:\n%s", bench.stdout)
	if !regexp.MustCompile(`(?m)^host-side +4 `).MatchString(bench.stdout) {
		t.Errorf("bench create --runs 2 --parallel 2 has no host-side row over 4 creates:\n%s", bench.stdout)
	}

	e.must("vm", "delete", "demo")
	verifyClean(t, e)
}

// A SIGKILLed daemon does not take its VMs with it: the next daemon
// re-adopts the VM, which stays reachable and deletable.
func TestVMSurvivesDaemonKill(t *testing.T) {
	e := vmEnv(t)
	e.must("vm", "create", "--name", "keeper", "--memory", "1GiB", "--disk", "2GiB")
	before := vmShow(t, e, "keeper")
	st, _ := daemonStatus(t, e)
	syscall.Kill(st.PID, syscall.SIGKILL)
	waitGone(t, st.PID)

	after := vmShow(t, e, "keeper") // starts a new daemon, which reconciles
	if after.State != api.VMRunning || after.PID != before.PID {
		t.Fatalf("after daemon kill: state %s pid %d (was %d)", after.State, after.PID, before.PID)
	}
	if out := e.must("vm", "ssh", "keeper", "--", "hostname").stdout; strings.TrimSpace(out) != "keeper" {
		t.Errorf("ssh after re-adoption: %q", out)
	}
	e.must("vm", "delete", "keeper")
	verifyClean(t, e)
}

// Five VMs created concurrently, then deleted concurrently: no store
// errors, no leaks.
func TestVMsConcurrently(t *testing.T) {
	e := vmEnv(t)
	names := []string{"c1", "c2", "c3", "c4", "c5"}
	var wg sync.WaitGroup
	results := make([]result, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.runWith(e.extra, "vm", "create", "--name", n, "--memory", "512MiB", "--vcpus", "1", "--disk", "1GiB")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("create %s: exit %d\n%s", names[i], r.code, tail(r.stderr, 20))
		}
	}
	var l api.VMList
	json.Unmarshal([]byte(e.must("vm", "list", "--json").stdout), &l)
	ips := map[string]bool{}
	for _, v := range l.VMs {
		if v.State != api.VMRunning || ips[v.IP] {
			t.Errorf("vm %s: state %s ip %s", v.Name, v.State, v.IP)
		}
		ips[v.IP] = true
	}
	e.must(append([]string{"vm", "delete"}, names...)...)
	verifyClean(t, e)
}

// Bad input is refused with one clear line and nothing allocated.
func TestVMBadInput(t *testing.T) {
	e := vmEnv(t)
	e.must("vm", "create", "--name", "taken", "--memory", "512MiB", "--disk", "1GiB")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--image", "nope"}, `--image "nope" does not exist`},
		{[]string{"--memory", "64MiB"}, "--memory 64MiB is out of range"},
		{[]string{"--memory", "lots"}, `--memory "lots"`},
		{[]string{"--disk", "100MiB"}, "--disk 100MiB is out of range"},
		{[]string{"--disk", "1.5G"}, `--disk "1.5G"`},
		{[]string{"--vcpus", "500"}, "--vcpus 500 is out of range"},
		{[]string{"--name", "taken"}, `a vm named "taken" already exists`},
		{[]string{"--name", "Not_OK"}, `invalid --name "Not_OK"`},
		{[]string{"--hypervisor", "vmware"}, `--hypervisor "vmware"`},
	}
	for _, c := range cases {
		r := e.runWith(e.extra, append([]string{"vm", "create"}, c.args...)...)
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		if r.code == 0 || len(lines) != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("vm create %v: exit %d, stderr %q; want one line containing %q", c.args, r.code, r.stderr, c.want)
		}
	}
	var l api.VMList
	json.Unmarshal([]byte(e.must("vm", "list", "--json").stdout), &l)
	if len(l.VMs) != 1 {
		t.Errorf("bad input allocated VMs: %+v", l.VMs)
	}
	e.must("vm", "delete", "taken")
	verifyClean(t, e)
}

// checkBootPayload: the agent key reached the guest through the boot
// payload only (a tmpfs /run, root-only), the host keeps it in the VM's
// 0700 directory, and another local user cannot even reach the agent's
// socket.
func checkBootPayload(t *testing.T, e *env, v api.VM) {
	t.Helper()
	if got := e.must("vm", "ssh", v.Name, "--", "stat", "-c", "'%a %U'", "/run/banger/boot/key", "/run/banger/boot").stdout; got != "600 root\n700 root\n" {
		t.Errorf("guest key and its directory: %q, want 600 and 700, root", got)
	}
	if got := e.must("vm", "ssh", v.Name, "--", "findmnt", "-no", "FSTYPE", "/run").stdout; strings.TrimSpace(got) != "tmpfs" {
		t.Errorf("/run is %q, want tmpfs (the key must not reach a disk)", got)
	}
	if got := e.must("vm", "ssh", v.Name, "--", "cat", "/proc/cmdline").stdout; strings.Contains(got, "key") {
		t.Errorf("the kernel command line mentions a key: %q", got)
	}
	dir := filepath.Join(e.home, "state", "vms", v.ID)
	for _, f := range []string{"agent.key", "initrd.img"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s on the host: %v %v, want owner-only", f, fi, err)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("VM directory %s: %v %v, want no access for other users", dir, fi, err)
	}
	sock := filepath.Join(dir, "agent.sock")
	if _, err := os.Stat(sock); err != nil {
		t.Logf("no %s (the agent channel is vsock): skipping the other-user dial", sock)
		return
	}
	if out := dialAsNobody(t, sock); !strings.Contains(out, "permission denied") {
		t.Errorf("uid %d dialing the agent socket: %q, want permission denied", nobodyUID, out)
	}
}
