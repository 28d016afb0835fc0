package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/crashpoint"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker/fctest"
)

// kvmBootsCache is a download cache of the test's own whose KVM probe
// record says KVM boots guests (so banger picks Firecracker); the
// downloads are shared with sharedCache by hard links.
func kvmBootsCache(t testing.TB) string {
	t.Helper()
	cache := t.TempDir()
	for _, sub := range []string{"debootstrap", "kernels"} {
		if _, err := os.Stat(filepath.Join(sharedCache(), sub)); err == nil {
			exec.Command("cp", "-al", filepath.Join(sharedCache(), sub), filepath.Join(cache, sub)).Run()
		}
	}
	bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	probe, _ := json.Marshal(map[string]any{
		"boot_id": strings.TrimSpace(string(bootID)),
		"record":  map[string]any{"status": "booted", "elapsed_ms": 800, "at": "2026-11-29T00:00:00Z"},
	})
	os.WriteFile(filepath.Join(cache, "kvm-probe.json"), probe, 0o600)
	return cache
}

// crashEnv is a vmEnv whose bangerd is built with crash points
// (-tags crashpoints) and whose VMs run under fctest's stand-in
// Firecracker, which plays the guest's agent: every stage of a VM's
// lifecycle runs in the real daemon, against real TAPs and nftables in
// the test's namespace, without a guest to boot.
func crashEnv(t *testing.T) *env {
	t.Helper()
	e := vmEnvCache(t, kvmBootsCache(t))
	useCrashBangerd(t, e)
	fake := fctest.FakeBinary(t, fctest.Config{OpenPorts: []int{22}})
	writeConfig(t, e, fmt.Sprintf("firecracker_bin = %q\nhypervisor = \"firecracker\"\njailer = false\n", fake))
	return e
}

// useCrashBangerd gives e a bangerd built with crash points (the same
// build id, so the CLI and the agent match it).
func useCrashBangerd(t *testing.T, e *env) {
	t.Helper()
	e.privateBin()
	cmd := exec.Command("go", "build", "-tags", "crashpoints", "-o", filepath.Join(e.bin, "bangerd"),
		"-ldflags", "-X github.com/bangerdev/banger/internal/shared/buildinfo.version=e2e -X github.com/bangerdev/banger/internal/shared/buildinfo.buildID=e2e-a",
		"./cmd/bangerd")
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building bangerd with crash points: %v\n%s", err, out)
	}
}

// daemonPID is the running daemon's pid, or 0.
func (e *env) daemonPID() int {
	b, err := os.ReadFile(e.pidFile())
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	if pid > 0 && processAlive(pid) {
		return pid
	}
	return 0
}

// withDaemonEnv runs banger args with a daemon started for it with the
// extra environment (the running daemon, if any, is stopped first).
func (e *env) withDaemonEnv(extra []string, args ...string) result {
	e.t.Helper()
	if e.daemonPID() != 0 {
		e.must("daemon", "stop")
	}
	return e.runWith(append(append([]string{}, e.extra...), extra...), args...)
}

// crashOp is an operation the crash test kills at each of its points.
type crashOp struct {
	kind   string
	points []string         // the points to kill it at; nil: every point it passes
	setup  func(e *env)     // brings the world to where the operation starts
	args   []string         // the banger command that runs it
	check  func(e *env) int // after the crash and a daemon start: how many problems it found
}

// TestCrashAtEveryPoint kills bangerd with SIGKILL at the start, middle
// and end of every stage of vm create, start, stop and delete and image
// register and build (the points are what a crashpoints bangerd reports passing,
// not a list kept here), then starts a daemon again and checks that it
// left nothing behind: `banger verify` finds no leak (processes, sockets,
// TAPs outside the pool, nftables rules, VM and image directories without
// a record, staging directories, the store's integrity), no VM is in a
// transient state, a VM that ran before still runs, and a VM that existed
// before still exists (delete aside) with its disks.
func TestCrashAtEveryPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("kills bangerd at ~50 points (several minutes)")
	}
	e := crashEnv(t)
	var base api.Image
	if err := json.Unmarshal([]byte(e.must("image", "show", "base", "--json").stdout), &base); err != nil {
		t.Fatal(err)
	}
	artifact := func(kind string) string {
		for _, a := range base.Artifacts {
			if a.Kind == kind {
				return a.Path
			}
		}
		t.Fatalf("image base has no %s: %+v", kind, base.Artifacts)
		return ""
	}
	script := filepath.Join(e.home, "provision.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho built > /etc/banger-built\n"), 0o755)
	ops := append(vmCrashOps(), []crashOp{
		{kind: "image.register", args: []string{"image", "register", "--name", "reg", "--kernel", artifact("vmlinuz"),
			"--initrd", artifact("initrd"), "--rootfs", artifact("rootfs")},
			check: func(e *env) int { return imageWhole(e, "reg") }},
		{kind: "image.build", args: []string{"image", "build", "--from", "base", "--name", "built", "--script", script},
			check: func(e *env) int { return imageWhole(e, "built") }},
	}...)
	t.Logf("%d crashes injected; after each, the next daemon left nothing behind", crashAtPoints(t, e, ops))
}

// TestCrashDuringSnapshots is TestCrashAtEveryPoint for vm pause, resume
// and fork, image warm and a create from a warm snapshot (under the
// stand-in Firecracker, which saves and restores its guest).
func TestCrashDuringSnapshots(t *testing.T) {
	if testing.Short() {
		t.Skip("kills bangerd at every point of the snapshot operations (several minutes)")
	}
	e := crashEnv(t)
	t.Logf("%d crashes injected; after each, the next daemon left nothing behind and every VM usable", crashAtPoints(t, e, snapshotCrashOps()))
}

// TestCrashDuringQEMUBoot is TestCrashAtEveryPoint's boot stages under
// real QEMU: bangerd killed right after it launched QEMU (before the
// handle is recorded) and while the guest boots, in a create and in a
// start. The next daemon must kill the QEMU no record explains (or that
// a stopped VM must not have) and leave nothing behind.
func TestCrashDuringQEMUBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest (about a minute under software emulation)")
	}
	e := vmEnv(t)
	useCrashBangerd(t, e)
	var ops []crashOp
	for _, op := range vmCrashOps() {
		switch op.kind {
		case "vm.create":
			op.points = []string{"vm.create/launch qemu/middle", "vm.create/agent health/start"}
		case "vm.start":
			op.points = []string{"vm.start/launch qemu/middle"}
		default:
			continue
		}
		ops = append(ops, op)
	}
	// A pause killed after QEMU saved the state (its disks handed over)
	// and after the VM was recorded paused; a resume killed after QEMU
	// loaded the state and after the guest ran.
	for _, op := range snapshotCrashOps() {
		switch op.kind {
		case "vm.pause":
			op.points = []string{"vm.pause/save state/middle", "vm.pause/save state/middle-2"}
		case "vm.resume":
			op.points = []string{"vm.resume/restore qemu/middle", "vm.resume/restore qemu/middle-2"}
		default:
			continue
		}
		ops = append(ops, op)
	}
	t.Logf("%d crashes injected during QEMU boots, saves and restores; after each, the next daemon left nothing behind", crashAtPoints(t, e, ops))
}

// TestCrashDuringImageBootstrap kills bangerd at every point of an image
// bootstrap (from the warm download cache, inside the test's namespace):
// the next daemon leaves no staging directory, no half-made image and
// nothing else behind.
func TestCrashDuringImageBootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("bootstraps a Debian image at each of its points (several minutes)")
	}
	e := crashEnv(t)
	ops := []crashOp{{kind: "image.bootstrap", args: []string{"image", "bootstrap", "debian", "--name", "built"},
		check: func(e *env) int { return imageWhole(e, "built") }}}
	t.Logf("%d crashes injected; after each, the next daemon left nothing behind", crashAtPoints(t, e, ops))
}

// imageWhole: after a crash the image is either absent or whole (ready).
func imageWhole(e *env, name string) int {
	r := e.runWith(e.extra, "image", "show", name, "--json")
	if r.code != 0 {
		return 0
	}
	var img api.Image
	json.Unmarshal([]byte(r.stdout), &img)
	if img.State != api.ImageReady {
		e.t.Errorf("image %s is %q after the crash, want absent or %s", name, img.State, api.ImageReady)
		return 1
	}
	return 0
}

// vmCrashOps are vm create, start, stop and delete of one VM, cx, and
// what each may leave after a crash and the next daemon start.
func vmCrashOps() []crashOp {
	create := func(e *env) { e.must(append([]string{"vm", "create", "--name", "cx"}, vmArgs...)...) }
	// wantState: the VM exists in one of the states ("": it does not).
	wantState := func(e *env, name string, states ...string) int {
		var l api.VMList
		json.Unmarshal([]byte(e.must("vm", "list", "--json").stdout), &l)
		got := ""
		for _, v := range l.VMs {
			if v.Name == name {
				got = v.State
			}
		}
		for _, s := range states {
			if got == s {
				return 0
			}
		}
		e.t.Errorf("vm %s is %q after the crash and a daemon start, want one of %q", name, got, states)
		return 1
	}
	return []crashOp{
		{kind: "vm.create", args: append([]string{"vm", "create", "--name", "cx"}, vmArgs...),
			check: func(e *env) int { return wantState(e, "cx", "", api.VMRunning) }},
		{kind: "vm.start", setup: func(e *env) { create(e); e.must("vm", "stop", "cx") }, args: []string{"vm", "start", "cx"},
			check: func(e *env) int { return wantState(e, "cx", api.VMStopped, api.VMRunning) }},
		{kind: "vm.stop", setup: create, args: []string{"vm", "stop", "cx"},
			check: func(e *env) int { return wantState(e, "cx", api.VMStopped, api.VMRunning) }},
		// A delete killed before it recorded the VM deleting leaves it
		// as it was; once recorded, the next daemon finishes it.
		{kind: "vm.delete", setup: create, args: []string{"vm", "delete", "cx"},
			check: func(e *env) int { return wantState(e, "cx", "", api.VMRunning) }},
	}
}

// snapshotCrashOps are pause, resume, fork, warm and a warm create: a
// crash anywhere in them leaves every VM usable — running, or paused with
// a state it resumes from, or (a resume whose guest may have run) stopped
// — and nothing behind.
func snapshotCrashOps() []crashOp {
	create := func(e *env) { e.must(append([]string{"vm", "create", "--name", "cx"}, vmArgs...)...) }
	state := func(e *env, name string) string {
		var l api.VMList
		json.Unmarshal([]byte(e.must("vm", "list", "--json").stdout), &l)
		for _, v := range l.VMs {
			if v.Name == name {
				return v.State
			}
		}
		return ""
	}
	// usable: the VM is in one of states, and a paused one resumes.
	usable := func(e *env, name string, states ...string) int {
		got := state(e, name)
		if !slices.Contains(states, got) {
			e.t.Errorf("vm %s is %q after the crash and a daemon start, want one of %q", name, got, states)
			return 1
		}
		if got == api.VMPaused {
			if r := e.runWith(e.extra, "vm", "resume", name); r.code != 0 {
				e.t.Errorf("vm %s is paused after the crash but does not resume: exit %d\n%s", name, r.code, r.stderr)
				return 1
			}
		}
		return 0
	}
	warm := func(e *env) { e.must(append([]string{"image", "warm", "base"}, vmArgs...)...) }
	return []crashOp{
		{kind: "vm.pause", setup: create, args: []string{"vm", "pause", "cx"},
			check: func(e *env) int { return usable(e, "cx", api.VMRunning, api.VMPaused) }},
		{kind: "vm.resume", setup: func(e *env) { create(e); e.must("vm", "pause", "cx") }, args: []string{"vm", "resume", "cx"},
			check: func(e *env) int { return usable(e, "cx", api.VMPaused, api.VMRunning, api.VMStopped) }},
		{kind: "vm.fork", setup: create, args: []string{"vm", "fork", "cx", "cy"},
			// A fork pauses its source to disk: killed then, the source
			// stays paused and resumes.
			check: func(e *env) int {
				return usable(e, "cx", api.VMRunning, api.VMPaused) + usable(e, "cy", "", api.VMRunning)
			}},
		{kind: "image.warm", args: append([]string{"image", "warm", "base"}, vmArgs...),
			check: func(e *env) int {
				var l api.VMList
				json.Unmarshal([]byte(e.must("vm", "list", "--json").stdout), &l)
				if len(l.VMs) != 0 {
					e.t.Errorf("a crashed image warm left its template VM: %+v", l.VMs)
					return 1
				}
				return 0
			}},
		{kind: "vm.create", setup: warm, args: append([]string{"vm", "create", "--name", "cx"}, vmArgs...),
			check: func(e *env) int { return usable(e, "cx", "", api.VMRunning) }},
	}
}

// vmArgs is the shape of the crash tests' VMs.
var vmArgs = []string{"--memory", "512MiB", "--disk", "1GiB"}

// resetCrashEnv deletes every VM and the images the crash tests make,
// and the base image's warm snapshots.
func resetCrashEnv(e *env) {
	e.runWith(e.extra, "image", "warm", "--rm", "base")
	var l api.VMList
	json.Unmarshal([]byte(e.must("vm", "list", "--json").stdout), &l)
	for _, v := range l.VMs {
		e.must("vm", "delete", v.Name)
	}
	for _, img := range []string{"reg", "built"} {
		if r := e.runWith(e.extra, "image", "show", img); r.code == 0 {
			e.must("image", "rm", img)
		}
	}
}

// crashAtPoints kills the daemon at each point of each op, checks what
// the next daemon left, and returns how many kills it injected. An op's
// points are op.points when given, or else learnt by running it once with
// the crash list on.
func crashAtPoints(t *testing.T, e *env, ops []crashOp) int {
	t.Helper()
	kills := 0
	for _, op := range ops {
		points := op.points
		if points == nil {
			list := filepath.Join(e.home, "points-"+op.kind)
			if op.setup != nil {
				op.setup(e)
			}
			if r := e.withDaemonEnv([]string{crashpoint.ListEnv + "=" + list}, op.args...); r.code != 0 {
				t.Fatalf("%s without a crash: exit %d\n%s", op.kind, r.code, r.stderr)
			}
			e.must("daemon", "stop")
			resetCrashEnv(e)
			points = pointsOf(t, list, op.kind)
			if len(points) == 0 {
				t.Fatalf("%s passed no crash point", op.kind)
			}
		}
		t.Logf("%s: %d points", op.kind, len(points))
		for _, point := range points {
			if op.setup != nil {
				op.setup(e)
			}
			log := filepath.Join(e.home, "crash.log")
			os.Remove(log)
			r := e.withDaemonEnv([]string{crashpoint.AtEnv + "=" + point, crashpoint.ListEnv + "=" + log}, op.args...)
			if b, _ := os.ReadFile(log); !strings.Contains(string(b), crashpoint.KilledPrefix+point+"\n") {
				if r.code == 0 && oncePerImage(point) {
					t.Logf("%s: not reached again (an image heals once)", point)
				} else {
					t.Errorf("%s: the daemon was not killed there (exit %d)\n%s", point, r.code, r.stderr)
				}
				resetCrashEnv(e)
				continue
			}
			kills++
			// The command's client may have started a daemon (still armed,
			// past the point): the one after the crash, which reconciled.
			// The checks run on an unarmed one, started again.
			if e.daemonPID() != 0 {
				e.must("daemon", "stop")
			}
			problems := op.check(e)
			v := e.runWith(e.extra, "verify")
			if v.code != 0 || !strings.Contains(v.stdout, "nothing leaked") {
				t.Errorf("%s: verify after the crash: exit %d\n%s%s", point, v.code, v.stdout, v.stderr)
				problems++
			}
			if problems > 0 {
				e.logDaemonFiles()
			}
			resetCrashEnv(e)
		}
	}
	return kills
}

// oncePerImage: points of the stage that heals an image, which runs at
// the first create from an image and not again.
func oncePerImage(point string) bool { return strings.Contains(point, "/heal image/") }

// pointsOf reads the crash points an operation passed, in order, once
// each, keeping those of kind (a create also passes no other kind's).
func pointsOf(t *testing.T, list, kind string) []string {
	t.Helper()
	b, err := os.ReadFile(list)
	if err != nil {
		t.Fatalf("no crash points recorded: %v", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(p, kind+"/") && !seen[p] { // "killed " lines do not match
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
