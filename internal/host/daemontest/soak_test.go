package daemontest_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/eventhub"
	_ "modernc.org/sqlite"
)

// The soak's size: cycles create/show/exec/delete cycles, parallel at a
// time, after the warm-up cycles that fill the event ring (see
// TestFakeSoak).
const (
	soakCycles   = 200
	soakParallel = 10
	// soakBudget bounds the whole soak phase: a daemon that wedges fails
	// the test instead of hanging it.
	soakBudget = 5 * time.Minute
	// soakRSSSlack is how far above its baseline the daemon's settled RSS
	// may end: 10 %.
	soakRSSSlack = 0.10
)

// soakDaemonEnv makes TestSoakDaemonProcess run a fake daemon rooted at
// its value; TestFakeSoak starts the test binary with it.
const soakDaemonEnv = "BANGER_SOAK_DAEMON_ROOT"

// soakHeapEnv, when set to a directory, makes TestFakeSoak write the
// daemon's heap profiles there — base.pprof at the baseline, after.pprof
// at the end — sampled finely, to find what a growth is made of:
//
//	go tool pprof -top -inuse_space -diff_base base.pprof after.pprof
const soakHeapEnv = "BANGER_SOAK_HEAP"

// soakLine prefixes what the daemon process tells TestFakeSoak on its
// stdout (the test framework prints there too).
const soakLine = "SOAK "

// daemonStats is what the daemon process reports about itself.
type daemonStats struct {
	PID         int    `json:"pid"`
	Socket      string `json:"socket"`
	RSSKiB      int64  `json:"rss_kib"`
	HWMKiB      int64  `json:"hwm_kib"`
	AnonKiB     int64  `json:"anon_kib"`
	HeapInuse   uint64 `json:"heap_inuse"`
	HeapSys     uint64 `json:"heap_sys"`
	Goroutines  int    `json:"goroutines"`
	FakeRunning int    `json:"fake_running"`
	TAPsHeld    int    `json:"taps_held"`
	TAPsTaken   int    `json:"taps_acquired"`
	TAPsGiven   int    `json:"taps_released"`
	// GoKiB is what the Go runtime holds from the OS and has not
	// returned (MemStats Sys - HeapReleased): at most that much of
	// AnonKiB is Go's; the rest is memory the Go runtime does not
	// manage, above all SQLite's page caches (modernc.org/sqlite
	// allocates with its own mmap-based allocator).
	GoKiB int64 `json:"go_kib"`
	// Where GoKiB is: the heap's spans in use, goroutine stacks, and the
	// runtime's own (GC metadata, span structures, other).
	StackKiB   int64 `json:"stack_kib"`
	IdleKiB    int64 `json:"idle_kib"` // heap idle, not returned to the OS
	RuntimeKiB int64 `json:"runtime_kib"`
	FakeForgot int   `json:"fake_forgot"` // stopped VMs the Fake forgot at the last settle
}

// TestSoakDaemonProcess is not a test: it is the daemon process of
// TestFakeSoak (a real bangerd with the fake hypervisor and network,
// daemontest's fake mode), in a process of its own so that its RSS is
// the daemon's alone. It serves until its stdin ends, answering each line
// "stats" with its figures and "settle" with them after a garbage
// collection that returns freed memory to the OS (runtime.GC and
// debug.FreeOSMemory: what the Go runtime would do by itself, later),
// once the fake hypervisor has forgotten its stopped VMs
// (hvtest.Fake.ForgetStopped: a real daemon's hypervisors are processes
// of their own).
func TestSoakDaemonProcess(t *testing.T) {
	root := os.Getenv(soakDaemonEnv)
	if root == "" {
		t.Skip("the daemon process of TestFakeSoak: runs only when that test starts it")
	}
	if os.Getenv(soakHeapEnv) != "" {
		runtime.MemProfileRate = 4096 // fine enough to attribute kilobytes
	}
	d := daemontest.Start(t, daemontest.Options{Fake: true, Root: root})
	forgot := 0
	report := func() {
		st := daemonStats{FakeForgot: forgot, PID: os.Getpid(), Socket: d.Config.Paths.Socket(), FakeRunning: len(d.Fake.Running()), TAPsHeld: len(d.Network.Held()), Goroutines: runtime.NumGoroutine()}
		st.TAPsTaken, st.TAPsGiven = d.Network.Counts()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st.HeapInuse, st.HeapSys = ms.HeapInuse, ms.HeapSys
		st.GoKiB = int64(ms.Sys-ms.HeapReleased) >> 10
		st.StackKiB = int64(ms.StackSys) >> 10
		st.IdleKiB = int64(ms.HeapIdle-ms.HeapReleased) >> 10
		st.RuntimeKiB = int64(ms.GCSys+ms.MSpanSys+ms.MCacheSys+ms.BuckHashSys+ms.OtherSys) >> 10
		mem, err := readProcStatus(os.Getpid())
		if err != nil {
			t.Error(err)
		}
		st.RSSKiB, st.HWMKiB, st.AnonKiB = mem["VmRSS"], mem["VmHWM"], mem["RssAnon"]
		b, _ := json.Marshal(st)
		fmt.Printf("%s%s\n", soakLine, b)
	}
	report()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "heap":
			// A heap profile, after a collection, for a failed test.
			runtime.GC()
			f, err := os.Create(arg)
			if err == nil {
				err = pprof.WriteHeapProfile(f)
				f.Close()
			}
			if err != nil {
				t.Error(err)
			}
			report()
		case "settle":
			// The Fake keeps every VM it launched (its specs, its
			// calls): that memory stands for the hypervisors' own,
			// outside a real daemon, so it is dropped before measuring.
			forgot = d.Fake.ForgetStopped()
			runtime.GC()
			debug.FreeOSMemory()
			report()
		case "stats":
			report()
		default:
			t.Errorf("unknown command %q", sc.Text())
		}
	}
}

// readProcStatus returns the kB fields of /proc/<pid>/status (VmRSS,
// VmHWM, RssAnon, ...).
func readProcStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// soakDaemon is TestFakeSoak's handle on the daemon process.
type soakDaemon struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan daemonStats
	out   *bytes.Buffer // its other output, for a failed test
	mu    sync.Mutex

	stopOnce sync.Once
	stopErr  error
}

// stop ends the daemon process (its stdin closes: the daemon stops
// gracefully) and returns how it ended; a process that does not end
// within a minute is killed.
func (s *soakDaemon) stop() error {
	s.stopOnce.Do(func() {
		s.in.Close()
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case s.stopErr = <-done:
		case <-time.After(time.Minute):
			s.cmd.Process.Kill()
			<-done
			s.stopErr = errors.New("the daemon process did not end within a minute of its stdin closing")
		}
		if s.stopErr != nil {
			s.stopErr = fmt.Errorf("daemon process: %w\n%s", s.stopErr, s.output())
		}
	})
	return s.stopErr
}

func startSoakDaemon(t *testing.T, root string) (*soakDaemon, daemonStats) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSoakDaemonProcess$", "-test.count=1", "-test.timeout=20m")
	cmd.Env = append(os.Environ(), soakDaemonEnv+"="+root)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &soakDaemon{cmd: cmd, in: in, lines: make(chan daemonStats), out: &bytes.Buffer{}}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), soakLine)
			if !ok {
				s.mu.Lock()
				fmt.Fprintln(s.out, sc.Text())
				s.mu.Unlock()
				continue
			}
			var st daemonStats
			if err := json.Unmarshal([]byte(line), &st); err != nil {
				t.Errorf("daemon process: %q: %v", line, err)
				continue
			}
			s.lines <- st
		}
	}()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Error(err)
		}
	})
	st := s.next(t, 2*time.Minute)
	return s, st
}

func (s *soakDaemon) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *soakDaemon) next(t *testing.T, within time.Duration) daemonStats {
	t.Helper()
	select {
	case st, ok := <-s.lines:
		if !ok {
			t.Fatalf("the daemon process ended:\n%s", s.output())
		}
		return st
	case <-time.After(within):
		t.Fatalf("the daemon process said nothing within %s:\n%s", within, s.output())
	}
	return daemonStats{}
}

// ask sends a command ("stats", "settle") and returns the answer.
func (s *soakDaemon) ask(t *testing.T, cmd string) daemonStats {
	t.Helper()
	if _, err := io.WriteString(s.in, cmd+"\n"); err != nil {
		t.Fatalf("daemon process: %v", err)
	}
	return s.next(t, time.Minute)
}

// settle asks the daemon process to settle until the Go runtime holds
// less than 1 MiB of free heap it has not returned to the OS (a
// collection that ran after the last return leaves some), at most ten
// times a moment apart, and returns the report with the lowest RSS.
func (s *soakDaemon) settle(t *testing.T) daemonStats {
	t.Helper()
	best := s.ask(t, "settle")
	for i := 0; i < 10 && best.IdleKiB >= 1024; i++ {
		time.Sleep(200 * time.Millisecond)
		if st := s.ask(t, "settle"); st.held() < best.held() {
			best = st
		}
	}
	return best
}

// held is the daemon's RSS less the free heap the Go runtime holds but has
// not returned to the OS yet (its scavenger returns it over time; how much
// is left after a FreeOSMemory varies by several MiB from run to run):
// the memory the daemon keeps for what it holds.
func (st daemonStats) held() int64 { return st.RSSKiB - st.IdleKiB }

// heapInUse is the heap's spans in use, in KiB.
func (st daemonStats) heapInUse() int64 { return int64(st.HeapInuse >> 10) }

// soakLedger counts every call of the soak and keeps every error that
// was not an expected answer.
type soakLedger struct {
	mu       sync.Mutex
	calls    map[string]int
	expected map[string]int    // expected refusals by call and code
	example  map[string]string // the first message of each
	errs     []string
	storeErr int
}

func newLedger() *soakLedger {
	return &soakLedger{calls: map[string]int{}, expected: map[string]int{}, example: map[string]string{}}
}

// storeTrouble reports whether an error is the store's: busy, locked, or
// any SQLite error that reached an answer.
func storeTrouble(s string) bool {
	s = strings.ToLower(s)
	for _, w := range []string{"sqlite", "database is locked", "database table is locked", "busy"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// note records one call: err nil, one of the allowed API errors
// (counted as expected), or a failure.
func (l *soakLedger) note(call string, err error, allowed ...*api.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[call]++
	if err == nil {
		return
	}
	if storeTrouble(err.Error()) {
		l.storeErr++
	}
	for _, a := range allowed {
		if errors.Is(err, a) {
			k := call + " " + string(a.Code)
			if l.expected[k]++; l.expected[k] == 1 {
				l.example[k] = err.Error()
			}
			return
		}
	}
	l.errs = append(l.errs, call+": "+err.Error())
}

func (l *soakLedger) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

// liveSet is the VMs a worker has created and not yet begun to delete.
type liveSet struct {
	mu    sync.Mutex
	names []string
}

func (s *liveSet) add(n string) { s.mu.Lock(); s.names = append(s.names, n); s.mu.Unlock() }
func (s *liveSet) remove(n string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.names, n); i >= 0 {
		s.names = slices.Delete(s.names, i, i+1)
	}
}
func (s *liveSet) pick() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.names) == 0 {
		return "", false
	}
	return s.names[rand.IntN(len(s.names))], true
}

// soakCycle is one VM's life: create (following the operation), show,
// exec, delete, show again.
func soakCycle(ctx context.Context, c *client.Client, led *soakLedger, live *liveSet, name string) {
	op, err := c.BeginCreateVM(ctx, api.CreateVMRequest{Name: name})
	led.note("create", err)
	if err != nil {
		return
	}
	final, err := c.WatchOperation(ctx, op.ID, nil)
	led.note("watch", err)
	if err != nil {
		return
	}
	if final.State != api.OperationSucceeded {
		led.fail("create %s: %s: %v", name, final.State, final.Error)
		return
	}
	live.add(name)
	v, err := c.VM(ctx, name)
	led.note("show", err)
	if err == nil && v.State != api.VMRunning {
		led.fail("show %s after its create: state %s", name, v.State)
	}
	res, err := c.ExecWait(ctx, name, api.ExecRequest{Argv: []string{"echo", name}})
	led.note("exec", err)
	if err == nil && (res.ExitCode != 0 || res.Stdout != name+"\n") {
		led.fail("exec echo in %s: exit %d, stdout %q, stderr %q", name, res.ExitCode, res.Stdout, res.Stderr)
	}
	live.remove(name)
	led.note("delete", c.DeleteVM(ctx, name))
	_, err = c.VM(ctx, name)
	if err == nil {
		led.fail("show %s after its delete: still there", name)
	}
	led.note("show", err, api.ErrNotFound)
}

// runCycles runs the named cycles, parallel at a time.
func runCycles(ctx context.Context, c *client.Client, led *soakLedger, live *liveSet, names []string, parallel int) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				soakCycle(ctx, c, led, live, name)
			}
		}()
	}
	for _, n := range names {
		select {
		case work <- n:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

// background runs fn every pause until ctx ends, on its own goroutine,
// and returns a wait for it.
func background(ctx context.Context, pause time.Duration, fn func()) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fn()
			select {
			case <-time.After(pause):
			case <-ctx.Done():
			}
		}
	}()
	return func() { <-done }
}

// soakLogTrouble returns the daemon log's error and warning lines, and
// how many of them are the store's.
func soakLogTrouble(t *testing.T, path string) (lines []string, store int) {
	t.Helper()
	for _, p := range []string{path + ".1", path} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			var rec struct {
				Level string `json:"level"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil || (rec.Level != "ERROR" && rec.Level != "WARN") {
				if storeTrouble(line) && !strings.Contains(line, `"store"`) {
					store++
					lines = append(lines, line)
				}
				continue
			}
			lines = append(lines, line)
			if storeTrouble(line) {
				store++
			}
		}
	}
	return lines, store
}

// fileSizes names each file with its size.
func fileSizes(paths ...string) string {
	var out []string
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			out = append(out, fmt.Sprintf("%s %d KiB", filepath.Base(p), fi.Size()>>10))
		}
	}
	return strings.Join(out, ", ")
}

// childPIDs returns the children of process pid.
func childPIDs(pid int) []string {
	var out []string
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}

// TestFakeSoak drives a real bangerd (daemontest's fake mode, in a
// process of its own: TestSoakDaemonProcess) through soakCycles VM
// lifecycles, soakParallel at a time — create, show, exec, delete — while
// other clients list VMs, show and exec in random live VMs, and follow
// GET /v1/events. It requires: no call fails other than a show or exec
// that lost a race with a delete (not found, or the VM no longer
// running), no store error in any answer or in the daemon's log, every
// VM's creation and removal seen on the event stream, nothing leaked
// (verify, the VM directories, the fake's VMs and TAPs, the daemon's
// child processes, the store's integrity check), the daemon's goroutines
// back to their baseline, and its RSS, settled, back within 10 % of its
// baseline.
//
// The baseline is the daemon settled once its event ring is full: the
// hub keeps the last eventhub.DefaultRing events (each with its object's
// whole state) for clients that resume, so a fresh daemon's memory grows
// until the ring is full, by design, and then stays. Warm-up cycles, not
// counted, fill it first; the test logs the RSS of the fresh daemon too,
// and what the full ring added.
func TestFakeSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the soak runs hundreds of VM lifecycles against a fake daemon")
	}
	root := daemontest.ShortTempDir(t)
	cfg := daemontest.Config(t, root)
	d, fresh := startSoakDaemon(t, root)
	c := client.New(fresh.Socket)
	defer c.Close()
	fresh = d.settle(t)
	t.Logf("daemon pid %d, fresh, settled: RSS %d KiB (anon %d), heap in use %d KiB, %d goroutines",
		fresh.PID, fresh.RSSKiB, fresh.AnonKiB, fresh.HeapInuse>>10, fresh.Goroutines)

	ctx, cancel := context.WithTimeout(context.Background(), soakBudget)
	defer cancel()
	led := newLedger()
	live := &liveSet{}

	// The event stream, from before the first cycle.
	var (
		evMu      sync.Mutex
		evCounts  = map[api.EventKind]int{}
		evCreated = map[string]bool{}
		evRemoved = map[string]bool{}
		lastSeq   atomic.Uint64
	)
	evCtx, evCancel := context.WithCancel(ctx)
	defer evCancel()
	hello := make(chan struct{})
	evDone := make(chan error, 1)
	go func() {
		evDone <- c.Events(evCtx, 0, "", func(ev api.Event) error {
			evMu.Lock()
			defer evMu.Unlock()
			evCounts[ev.Kind]++
			lastSeq.Store(ev.Seq)
			switch {
			case ev.Kind == api.EventHello:
				close(hello)
			case ev.Kind == api.EventReset:
				return errors.New("the event stream was reset: this reader fell behind")
			case ev.Kind == api.EventVM && ev.Removed:
				evRemoved[ev.Name] = true
			case ev.Kind == api.EventVM:
				evCreated[ev.Name] = true
			}
			return nil
		})
	}()
	select {
	case <-hello:
	case err := <-evDone:
		t.Fatalf("GET /v1/events: %v", err)
	}

	// Each phase runs its cycles with the other clients beside them: the
	// warm-up (until the event ring is full) and the soak are the same
	// load, so the daemon is measured after each in the same way.
	var peakKiB atomic.Int64
	phase := func(names []string) {
		bgCtx, bgCancel := context.WithCancel(ctx)
		waits := []func(){
			background(bgCtx, 20*time.Millisecond, func() {
				if st, err := readProcStatus(fresh.PID); err == nil {
					peakKiB.Store(max(peakKiB.Load(), st["VmRSS"]))
				}
			}),
			background(bgCtx, 10*time.Millisecond, func() {
				vms, err := c.VMs(bgCtx)
				if bgCtx.Err() == nil {
					led.note("list", err)
				}
				if len(vms) > soakParallel {
					led.fail("list: %d VMs, more than the %d cycles in flight", len(vms), soakParallel)
				}
			}),
			background(bgCtx, 10*time.Millisecond, func() {
				if name, ok := live.pick(); ok {
					_, err := c.VM(bgCtx, name)
					if bgCtx.Err() == nil {
						led.note("show (other)", err, api.ErrNotFound)
					}
				}
			}),
			background(bgCtx, 10*time.Millisecond, func() {
				name, ok := live.pick()
				if !ok {
					return
				}
				res, err := c.ExecWait(bgCtx, name, api.ExecRequest{Argv: []string{"echo", "other", name}})
				if bgCtx.Err() != nil {
					return
				}
				// The VM may be deleted between the pick and the exec's end.
				led.note("exec (other)", err, api.ErrNotFound, api.ErrFailedPrecondition)
				if err == nil && res.Stdout != "other "+name+"\n" {
					led.fail("exec echo in %s: exit %d, stdout %q", name, res.ExitCode, res.Stdout)
				}
			}),
		}
		runCycles(ctx, c, led, live, names, soakParallel)
		bgCancel()
		for _, w := range waits {
			w()
		}
	}
	var all []string
	for lastSeq.Load() < eventhub.DefaultRing && ctx.Err() == nil {
		round := make([]string, soakParallel)
		for i := range round {
			round[i] = fmt.Sprintf("warm-%03d", len(all))
			all = append(all, round[i])
		}
		phase(round)
	}
	warmups := len(all)
	base := d.settle(t)
	if dir := os.Getenv(soakHeapEnv); dir != "" {
		d.ask(t, "heap "+filepath.Join(dir, "base.pprof"))
	}
	warmPeak := peakKiB.Swap(0)

	names := make([]string, soakCycles)
	for i := range names {
		names[i] = fmt.Sprintf("soak-%03d", i)
	}
	all = append(all, names...)
	start := time.Now()
	phase(names)
	wall := time.Since(start)
	if err := ctx.Err(); err != nil {
		t.Fatalf("the soak did not finish within %s: %v", soakBudget, err)
	}

	// The events of the last deletes may still be on their way.
	deadline := time.Now().Add(10 * time.Second)
	for {
		evMu.Lock()
		n := len(evRemoved)
		evMu.Unlock()
		if n >= len(all) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	evCancel()
	if err := <-evDone; !errors.Is(err, context.Canceled) {
		led.fail("GET /v1/events ended early: %v", err)
	}
	evMu.Lock()
	for _, n := range all {
		if !evCreated[n] || !evRemoved[n] {
			led.fail("events: VM %s created %v, removed %v", n, evCreated[n], evRemoved[n])
		}
	}
	evMu.Unlock()

	// Leaks.
	rep, err := c.Verify(context.Background())
	led.note("verify", err)
	if len(rep.Leaks) > 0 {
		led.fail("verify: %+v", rep.Leaks)
	}
	vms, err := c.VMs(context.Background())
	led.note("list", err)
	if len(vms) > 0 {
		led.fail("VMs left: %+v", vms)
	}
	if dirs, _ := os.ReadDir(filepath.Join(cfg.Paths.StateDir, "vms")); len(dirs) > 0 {
		led.fail("VM directories left in %s: %d", filepath.Join(cfg.Paths.StateDir, "vms"), len(dirs))
	}
	if kids := childPIDs(fresh.PID); len(kids) > 0 {
		led.fail("the daemon still has child processes: %v", kids)
	}

	// Memory: a moment for the last requests' goroutines to end, then
	// what the runtime holds, before and after it returns what is free.
	time.Sleep(2 * time.Second)
	idle := d.ask(t, "stats")
	after := d.settle(t)
	if after.FakeRunning != 0 || after.TAPsHeld != 0 || after.TAPsTaken != after.TAPsGiven || after.TAPsTaken != soakCycles+warmups {
		led.fail("fake VMs running %d, TAPs held %d (acquired %d, released %d; want %d each)",
			after.FakeRunning, after.TAPsHeld, after.TAPsTaken, after.TAPsGiven, soakCycles+warmups)
	}
	logLines, logStore := soakLogTrouble(t, cfg.Paths.LogFile())

	led.mu.Lock()
	calls, expected := fmt.Sprint(led.calls), fmt.Sprint(led.expected)
	for k, msg := range led.example {
		t.Logf("expected refusal %s, e.g.: %s", k, msg)
	}
	total := 0
	for _, n := range led.calls {
		total += n
	}
	led.mu.Unlock()
	evMu.Lock()
	events := fmt.Sprint(evCounts)
	evMu.Unlock()
	t.Logf("soak: %d cycles (after %d warm-up), %d at a time, in %s (wall time, for the record)", soakCycles, warmups, soakParallel, wall.Round(time.Millisecond))
	t.Logf("calls (warm-up included): %d: %s; expected refusals: %s; events seen: %s", total, calls, expected, events)
	t.Logf("errors: %d; store errors in answers: %d; daemon log errors/warnings: %d (store: %d)", len(led.errs), led.storeErr, len(logLines), logStore)
	row := func(name string, st daemonStats) string {
		return fmt.Sprintf("%-9s RSS %6d KiB  anon %6d  Go holds %6d (heap in use %6d, idle %5d, stacks %5d, runtime %5d)  goroutines %3d",
			name, st.RSSKiB, st.AnonKiB, st.GoKiB, st.HeapInuse>>10, st.IdleKiB, st.StackKiB, st.RuntimeKiB, st.Goroutines)
	}
	t.Logf("daemon memory (settled unless idle):\n%s\n%s\n%s\n%s\npeak RSS %d KiB in the warm-up, %d in the soak (VmHWM %d); store %s",
		row("fresh", fresh), row("baseline", base), row("idle", idle), row("after", after),
		warmPeak, peakKiB.Load(), after.HWMKiB, fileSizes(cfg.Paths.DBFile(), cfg.Paths.DBFile()+"-wal"))

	for i, e := range led.errs {
		if i == 20 {
			t.Errorf("... and %d more", len(led.errs)-i)
			break
		}
		t.Error(e)
	}
	if led.storeErr > 0 || logStore > 0 {
		t.Errorf("store errors: %d in answers, %d in the daemon's log", led.storeErr, logStore)
	}
	for _, l := range logLines {
		t.Errorf("daemon log: %s", l)
	}
	if dir := os.Getenv(soakHeapEnv); dir != "" {
		d.ask(t, "heap "+filepath.Join(dir, "after.pprof"))
	}
	// RSS less the idle heap swings by MiBs with how much idle heap the
	// runtime happened to hold at each sample (not all of it resident),
	// so growth past the slack counts as a leak when the RSS itself or
	// the heap in use grew past it too: a leak shows in one of them.
	grew := func(before, after int64) bool { return float64(after) > float64(before)*(1+soakRSSSlack) }
	if limit := int64(float64(base.held()) * (1 + soakRSSSlack)); after.held() > limit &&
		(grew(base.RSSKiB, after.RSSKiB) || grew(base.heapInUse(), after.heapInUse())) {
		t.Errorf("daemon RSS after the soak, settled, less the Go runtime's free heap: %d KiB (RSS %d, free %d), over %d KiB (baseline %d + 10 %%)",
			after.held(), after.RSSKiB, after.IdleKiB, limit, base.held())
	}
	t.Logf("daemon RSS less free heap: baseline %d KiB, after %d KiB (%+.1f %%)", base.held(), after.held(),
		100*float64(after.held()-base.held())/float64(base.held()))
	if after.Goroutines > base.Goroutines {
		t.Errorf("daemon goroutines: %d after the soak, %d at the baseline", after.Goroutines, base.Goroutines)
	}

	// The store, once the daemon has closed it.
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+cfg.Paths.DBFile()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("store integrity_check: %q, %v", check, err)
	}
}
