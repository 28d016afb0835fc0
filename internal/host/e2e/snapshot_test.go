package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
)

// apiClient talks to the env's daemon directly, as a host orchestrator
// does.
func (e *env) apiClient() *client.Client {
	return client.New(filepath.Join(e.home, "run", "bangerd.sock"))
}

// runOp begins an operation and follows it to its end; a failed one fails
// the test.
func runOp(t *testing.T, e *env, begin func(ctx context.Context, c *client.Client) (api.Operation, error)) api.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := e.apiClient()
	defer c.Close()
	op, err := begin(ctx, c)
	if err != nil {
		t.Fatalf("beginning the operation: %v", err)
	}
	op, err = c.WatchOperation(ctx, op.ID, func(api.OperationEvent) error { return nil })
	if err != nil {
		t.Fatalf("following %s: %v", op.Kind, err)
	}
	if op.State != api.OperationSucceeded {
		t.Fatalf("%s %s: %s: %+v", op.Kind, op.Target, op.State, op.Error)
	}
	return op
}

// stageNames lists an operation's stages.
func stageNames(op api.Operation) []string {
	var out []string
	for _, s := range op.Stages {
		out = append(out, s.Name)
	}
	return out
}

// opTime is how long an operation took.
func opTime(op api.Operation) time.Duration {
	return op.FinishedAt.Sub(op.CreatedAt).Round(time.Millisecond)
}

// guestIdentity is what must differ between two VMs made from one saved
// state.
type guestIdentity struct {
	MachineID, BootID, MAC, IP, HostKeys string
}

func identityOf(t *testing.T, e *env, name string) guestIdentity {
	t.Helper()
	out := e.must("vm", "exec", name, "--", "sh", "-c",
		"cat /etc/machine-id /proc/sys/kernel/random/boot_id /sys/class/net/eth0/address; ip -4 -o addr show dev eth0 | awk '{print $4}'").stdout
	f := strings.Fields(out)
	if len(f) != 4 {
		t.Fatalf("%s: identity: %q", name, out)
	}
	v := vmShow(t, e, name)
	kh, err := os.ReadFile(filepath.Join(v.Dir, "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	if f[2] != v.MAC || !strings.HasPrefix(f[3], v.IP+"/") {
		t.Errorf("%s: the guest has MAC %s and address %s, the daemon recorded %s and %s", name, f[2], f[3], v.MAC, v.IP)
	}
	// known_hosts lines are "IP type key": compare the keys.
	var keys []string
	for _, l := range strings.Split(strings.TrimSpace(string(kh)), "\n") {
		if p := strings.Fields(l); len(p) == 3 {
			keys = append(keys, p[2])
		}
	}
	return guestIdentity{MachineID: f[0], BootID: f[1], MAC: f[2], IP: f[3], HostKeys: strings.Join(keys, ",")}
}

// differ fails the test when two VMs share any part of their identity.
func differ(t *testing.T, a, b string, x, y guestIdentity) {
	t.Helper()
	for _, c := range []struct{ what, x, y string }{
		{"machine-id", x.MachineID, y.MachineID}, {"boot_id", x.BootID, y.BootID}, {"MAC", x.MAC, y.MAC},
		{"address", x.IP, y.IP}, {"SSH host keys", x.HostKeys, y.HostKeys},
	} {
		if c.x == c.y || c.x == "" {
			t.Errorf("%s and %s share their %s: %q", a, b, c.what, c.x)
		}
	}
}

// counted reads the counter lines an attacher printed until n arrived or
// its stream ended.
func counted(t *testing.T, a *attacher, until int) []int {
	t.Helper()
	var got []int
	deadline := time.After(hangGuard)
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				return got
			}
			n, err := strconv.Atoi(strings.TrimSpace(l))
			if err != nil {
				t.Fatalf("counter printed %q", l)
			}
			got = append(got, n)
			if until >= 0 && n >= until {
				return got
			}
		case <-deadline:
			t.Fatalf("counter stuck after %v; stderr: %s", got, a.stderr)
		}
	}
}

// contiguous fails unless the numbers follow each other with nothing lost
// or repeated.
func contiguous(t *testing.T, what string, ns []int) {
	t.Helper()
	for i := 1; i < len(ns); i++ {
		if ns[i] != ns[i-1]+1 {
			t.Fatalf("%s: %d follows %d (all: %v)", what, ns[i], ns[i-1], ns)
		}
	}
}

// Pause to disk and resume, fork, warm create, on real QEMU VMs: a
// counting session keeps counting across pause/resume (and a daemon
// restart while paused) with no output lost; a fork sees its source's
// files and diverges after; two warm-created VMs and a fork never share
// machine-id, boot ID, MAC, address or SSH host keys, and answer exec and
// ssh; verify is clean.
func TestSnapshots(t *testing.T) {
	e := vmEnv(t)
	// The configured default shape (1 GiB), so that the image's warm
	// snapshot serves bench create too.
	var shape []string
	start := time.Now()
	e.must(append([]string{"vm", "create", "--name", "sa"}, shape...)...)
	cold := time.Since(start)

	e.must("vm", "session", "start", "sa", "--name", "count", "--", "sh", "-c", "i=0; while :; do echo $i; i=$((i+1)); sleep 0.1; done")
	e.must("vm", "exec", "sa", "--", "sh", "-c", "echo before-fork > /root/mark && sync")
	a := startAttacher(t, e, "sa", "count", "--since", "all")
	seen := counted(t, a, 20)

	pause := runOp(t, e, func(ctx context.Context, c *client.Client) (api.Operation, error) { return c.BeginPauseVM(ctx, "sa") })
	v := vmShow(t, e, "sa")
	if v.State != api.VMPaused || v.StateBytes <= 0 || v.PID != 0 {
		t.Fatalf("after pause: state %s, state_bytes %d, pid %d", v.State, v.StateBytes, v.PID)
	}
	t.Logf("pause (1 GiB VM): %v, state %d MiB; stages %v", opTime(pause), v.StateBytes>>20, stageNames(pause))
	seen = append(seen, counted(t, a, -1)...)
	contiguous(t, "before pause", seen)
	a.wait()
	m := regexp.MustCompile(`at offset (\d+)`).FindStringSubmatch(a.stderr.String())
	if m == nil {
		t.Fatalf("the attacher of a paused VM's session did not say its offset: %q", a.stderr)
	}

	// A paused VM survives a daemon restart.
	e.must("daemon", "stop")
	if v := vmShow(t, e, "sa"); v.State != api.VMPaused {
		t.Fatalf("after a daemon restart the paused VM is %s", v.State)
	}
	resume := runOp(t, e, func(ctx context.Context, c *client.Client) (api.Operation, error) { return c.BeginResumeVM(ctx, "sa") })
	t.Logf("resume: %v; stages %v", opTime(resume), stageNames(resume))
	if v := vmShow(t, e, "sa"); v.State != api.VMRunning || v.StateBytes != 0 {
		t.Fatalf("after resume: %s, state_bytes %d", v.State, v.StateBytes)
	}
	b := startAttacher(t, e, "sa", "count", "--since", m[1])
	more := counted(t, b, seen[len(seen)-1]+20)
	contiguous(t, "across pause and resume", append(seen, more...))
	b.cmd.Process.Signal(os.Interrupt)
	b.wait()
	// The guest's clock was set to the host's at resume.
	if out := e.must("vm", "exec", "sa", "--", "date", "+%s").stdout; true {
		g, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if d := time.Since(time.Unix(g, 0)); d > time.Minute || d < -time.Minute {
			t.Errorf("the resumed guest's clock is %v off the host's", d)
		}
	}

	fork := runOp(t, e, func(ctx context.Context, c *client.Client) (api.Operation, error) {
		return c.BeginForkVM(ctx, "sa", api.ForkVMRequest{Name: "sb"})
	})
	t.Logf("fork: %v; stages %v", opTime(fork), stageNames(fork))
	if out := strings.TrimSpace(e.must("vm", "exec", "sb", "--", "cat", "/root/mark").stdout); out != "before-fork" {
		t.Errorf("the fork reads %q from its source's file", out)
	}
	e.must("vm", "exec", "sb", "--", "sh", "-c", "echo fork > /root/mark; touch /root/only-fork")
	if out := strings.TrimSpace(e.must("vm", "exec", "sa", "--", "cat", "/root/mark").stdout); out != "before-fork" {
		t.Errorf("the fork's write reached its source: %q", out)
	}
	if r := e.runWith(e.extra, "vm", "exec", "sa", "--", "test", "-e", "/root/only-fork"); r.code == 0 {
		t.Error("the source sees a file only its fork made")
	}
	var sessions []api.Session
	if err := json.Unmarshal([]byte(e.must("vm", "session", "list", "sb", "--json").stdout), &sessions); err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].ForkedFrom != "sa" || sessions[0].State != api.SessionRunning {
		t.Errorf("the fork's sessions: %+v; want count, running, forked from sa", sessions)
	}
	if sv := vmShow(t, e, "sb"); sv.ForkedFrom != "sa" {
		t.Errorf("vm show sb: forked_from %q", sv.ForkedFrom)
	}
	differ(t, "sa", "sb", identityOf(t, e, "sa"), identityOf(t, e, "sb"))

	warm := runOp(t, e, func(ctx context.Context, c *client.Client) (api.Operation, error) {
		return c.BeginWarmImage(ctx, "base", api.WarmImageRequest{})
	})
	t.Logf("image warm: %v", opTime(warm))
	for _, s := range warm.Stages {
		t.Logf("  %s %v %s", s.Name, s.Duration.D(), s.Detail)
	}
	var created []time.Duration
	for _, name := range []string{"wa", "wb"} {
		start := time.Now()
		r := e.must(append([]string{"vm", "create", "--name", name}, shape...)...)
		created = append(created, time.Since(start))
		if !strings.Contains(r.stderr, "restore") || strings.Contains(r.stderr, "agent health") {
			t.Errorf("create %s from a warm image did not restore:\n%s", name, r.stderr)
		}
		if v := vmShow(t, e, name); !v.Warm {
			t.Errorf("vm show %s: warm is false", name)
		}
		t.Logf("warm create %s:\n%s", name, r.stderr)
	}
	t.Logf("create: cold %v, warm %v", cold.Round(time.Millisecond), created)
	if b, err := os.ReadFile(filepath.Join(e.home, "state", "bangerd.log")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "took its identity") {
				t.Logf("daemon log: %s", l)
			}
		}
	}
	// A new daemon reaches the clones with their own agent keys (the
	// identity call gave them; the key in the saved memory is refused).
	e.must("daemon", "stop")
	wa, wb := identityOf(t, e, "wa"), identityOf(t, e, "wb")
	differ(t, "wa", "wb", wa, wb)
	ids := map[string]guestIdentity{"wa": wa, "wb": wb, "sb": identityOf(t, e, "sb")}
	for _, name := range []string{"wa", "wb", "sb"} {
		// Through sshd too (another process tree than the agent's).
		out := strings.Fields(e.must("vm", "ssh", name, "--", "sh", "-c", "'hostname; cat /proc/sys/kernel/random/boot_id /etc/machine-id'").stdout)
		if len(out) != 3 || out[0] != name || out[1] != ids[name].BootID || out[2] != ids[name].MachineID {
			t.Errorf("vm ssh %s: hostname, boot_id, machine-id %q; want %s, %s, %s", name, out, name, ids[name].BootID, ids[name].MachineID)
		}
	}
	for _, name := range []string{"sa", "sb", "wa", "wb"} {
		e.must("vm", "delete", name)
	}
	// The figure the README quotes: cold and warm creates side by side.
	t.Logf("bench create --compare:\n%s", e.must("bench", "create", "--compare", "--runs", "1", "--image", "base").stdout)
	verifyClean(t, e)
}
