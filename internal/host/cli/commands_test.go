package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// The command goldens: each case runs banger in-process against a real
// bangerd (daemontest, fake hypervisor, in-memory network, seeded image
// "base") and keeps what it printed — stdout, stderr and the exit code —
// in testdata/commands/<case>.golden, with the parts that change from run
// to run (ids, times, durations, ages, the temporary root, pids, digests)
// replaced by placeholders (normalizer, pinned by TestNormalizer).
// go test ./internal/host/cli -run TestCommands -update rewrites them.
// fakedaemon_test.go stays for the answers a real daemon cannot give (a
// hostile guest's words).

// cmdCase is one command line and what it must end with.
type cmdCase struct {
	golden string   // testdata/commands/<golden>.golden
	args   []string // after "banger"
	code   int      // the exit code it must return
	// changes: a failing command that changes the daemon's VMs or
	// images anyway (a delete of one known and one unknown VM). Any other
	// failure must leave them as they were (checked through the API
	// before and after).
	changes bool
	// stderrLines is how many lines a failure prints on stderr: 0 means
	// one (the refusal); -1 any number (doctor and verify fail with their
	// report on stdout and nothing on stderr).
	stderrLines int
	// gated: the command follows an operation that syncs auth files
	// (vm create, start, restart); see runGated.
	gated bool
	// raced: the command follows an operation that reads no auth file
	// (a pause, a resume, a fork, a warm create), so it cannot be gated:
	// its output is normalized as a gated one's, and the operation must
	// write no log line (one sent before the command attached would not
	// be replayed).
	raced bool
}

// cliHarness runs banger against one daemon.
type cliHarness struct {
	d    *daemontest.Daemon
	env  config.Env
	self string
	norm *normalizer
}

func newCLIHarness(t *testing.T, o daemontest.Options) *cliHarness {
	t.Helper()
	o.Fake = true
	if o.Host == nil {
		o.Host = testDoctorHost{}
	}
	d := daemontest.Start(t, o)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := config.MapEnv(map[string]string{config.EnvHome: d.Root, "HOME": filepath.Join(d.Root, "home")})
	return &cliHarness{d: d, env: env, self: self, norm: newNormalizer(d.Root, self)}
}

// cmdResult is what one run of banger left.
type cmdResult struct {
	stdout, stderr string
	code           int
}

// run runs banger with args until it returns or ctx ends.
func (h *cliHarness) run(ctx context.Context, args ...string) cmdResult {
	var out, errb lockedBuffer
	app := &App{Stdout: &out, Stderr: &errb, Env: h.env, UID: os.Getuid(), DaemonBin: h.self}
	code := Run(ctx, args, app)
	return cmdResult{stdout: out.String(), stderr: errb.String(), code: code}
}

// golden renders a result for its golden file.
func (h *cliHarness) golden(args []string, r cmdResult) string {
	return fmt.Sprintf("$ banger %s\n--- stdout\n%s--- stderr\n%s--- exit %d\n",
		h.norm.apply(strings.Join(args, " "), false), h.norm.apply(r.stdout, true), h.norm.apply(r.stderr, false), r.code)
}

// inventory is the daemon's VMs and images, by name, with their states.
func (h *cliHarness) inventory(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	vms, err := h.d.Client.VMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := h.d.Client.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vms {
		out = append(out, "vm "+v.Name+" "+v.State)
	}
	for _, img := range imgs {
		out = append(out, "image "+img.Name+" "+img.State)
	}
	slices.Sort(out)
	return out
}

// runCases runs the cases in order (later ones see what earlier ones
// did) and compares each with its golden file.
func (h *cliHarness) runCases(t *testing.T, cases []cmdCase) {
	t.Helper()
	for _, c := range cases {
		ok := t.Run(c.golden, func(t *testing.T) {
			var before []string
			check := c.code != ExitOK && !c.changes
			if check {
				before = h.inventory(t)
			}
			var r cmdResult
			if c.gated {
				r = h.runGated(t, c.args...)
			} else {
				r = h.run(context.Background(), c.args...)
			}
			if r.code != c.code {
				t.Errorf("banger %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), r.code, c.code, r.stdout, r.stderr)
			}
			if lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n"); c.code != ExitOK && r.stderr != "" && !strings.HasPrefix(lines[len(lines)-1], "banger: ") {
				t.Errorf("banger %s failed, and its last line on stderr is not the error (banger: …):\n%s", strings.Join(c.args, " "), r.stderr)
			}
			if want := max(c.stderrLines, 1); c.code != ExitOK && c.stderrLines >= 0 && strings.Count(r.stderr, "\n") != want {
				t.Errorf("banger %s failed with %d lines on stderr, want %d:\n%s", strings.Join(c.args, " "), strings.Count(r.stderr, "\n"), want, r.stderr)
			}
			if check {
				if diff := cmp.Diff(before, h.inventory(t)); diff != "" {
					t.Errorf("banger %s changed the daemon's VMs or images (-before +after):\n%s", strings.Join(c.args, " "), diff)
				}
			}
			if c.gated || c.raced {
				r.stderr = dropStartedBeforeDone(r.stderr)
				if slices.Contains(c.args, "--json") {
					r.stdout = normalizeJSONStream(t, r.stdout)
				}
			}
			compareGolden(t, filepath.Join("commands", c.golden+".golden"), h.golden(c.args, r))
		})
		if !ok && c.code == ExitOK {
			// Later cases build on this one's effect.
			t.FailNow()
		}
	}
}

// authGate is the first auth file a VM boot reads (config's default
// auth files, under the test HOME), made a FIFO by runGated.
const authGate = ".local/share/opencode/auth.json"

// runGated runs a command that follows a boot operation so that its
// output does not depend on when it attached to the operation: which
// stages its first event (the snapshot) shows finished is a race with
// the fake, fast daemon, and a stage's log lines sent before it attached
// are not replayed. The operation's auth-file stage reads a FIFO, so it
// waits there until the command has printed its snapshot (a stage line on
// stderr, or a JSON line on stdout); then the test writes the file and
// the boot goes on. In the text output a "… stage" line directly
// followed by that stage's "✓" line is dropped (the snapshot shows a
// stage that finished before it as "✓" alone); with --json only the lines
// from the first log line on are kept (normalizeJSONStream).
func (h *cliHarness) runGated(t *testing.T, args ...string) cmdResult {
	t.Helper()
	fifo := filepath.Join(h.d.Root, "home", authGate)
	if err := os.MkdirAll(filepath.Dir(fifo), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO here to hold a boot at its auth stage: %v", err)
	}
	defer os.Remove(fifo)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb lockedBuffer
	app := &App{Stdout: &out, Stderr: &errb, Env: h.env, UID: os.Getuid(), DaemonBin: h.self}
	done := make(chan int, 1)
	go func() { done <- Run(ctx, args, app) }()
	attached := func() bool {
		return strings.Contains(errb.String(), "  … ") || strings.Contains(errb.String(), "  ✓ ") || strings.Contains(out.String(), "\n")
	}
	for !attached() {
		select {
		case code := <-done:
			// It ended before its operation reached the auth stage.
			return cmdResult{stdout: out.String(), stderr: errb.String(), code: code}
		case <-ctx.Done():
			t.Fatalf("banger %s printed no stage within a minute; stderr:\n%s", strings.Join(args, " "), errb.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	// Opening for writing waits for the daemon to open it for reading.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("{}")
	w.Close()
	select {
	case code := <-done:
		return cmdResult{stdout: out.String(), stderr: errb.String(), code: code}
	case <-ctx.Done():
		t.Fatalf("banger %s did not end within a minute; stderr:\n%s", strings.Join(args, " "), errb.String())
		return cmdResult{}
	}
}

// stageStarted is a "… stage" line of printEvent.
var stageStarted = regexp.MustCompile(`^  … (.*)$`)

// dropStartedBeforeDone drops each "… stage" line directly followed by
// the same stage's "✓" or "✗" line (see runGated).
func dropStartedBeforeDone(s string) string {
	lines := strings.SplitAfter(s, "\n")
	var out strings.Builder
	for i, line := range lines {
		if m := stageStarted.FindStringSubmatch(strings.TrimSuffix(line, "\n")); m != nil && i+1 < len(lines) &&
			(strings.HasPrefix(lines[i+1], "  ✓ "+m[1]+" ") || strings.HasPrefix(lines[i+1], "  ✗ "+m[1]+" ")) {
			continue
		}
		out.WriteString(line)
	}
	return out.String()
}

// normalizeJSONStream keeps the lines of an operation's JSON event
// stream from its first log line on (see runGated), after checking that
// the first line is the operation's snapshot.
func normalizeJSONStream(t *testing.T, s string) string {
	t.Helper()
	if !strings.HasPrefix(s, `{"type":"snapshot",`) {
		t.Errorf("the event stream does not begin with a snapshot:\n%s", s)
	}
	i := strings.Index(s, `{"type":"log",`)
	if i < 0 {
		t.Errorf("the event stream has no log line:\n%s", s)
		return s
	}
	return "… (the snapshot and the stages before the auth files, as they raced)\n" + s[i:]
}

// compareGolden compares got with testdata/<name>, or writes it there
// under -update.
func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/host/cli -run %s -update writes it)", err, strings.Split(t.Name(), "/")[0])
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// lockedBuffer is a bytes.Buffer a command may write from several
// goroutines (vm delete deletes concurrently; events prints from its
// feed) while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// normalizer replaces what changes from run to run with placeholders,
// then realigns the tables whose columns the replacements shifted.
type normalizer struct {
	literals []string // replaced, in order, by names
	names    []string
}

func newNormalizer(root, self string) *normalizer {
	return &normalizer{
		literals: []string{root, self},
		names:    []string{"<ROOT>", "<SELF>"},
	}
}

// volatile are the patterns replaced, in order.
var volatile = []struct {
	re   *regexp.Regexp
	repl string
}{
	// The caller's uid a canceled operation names (tests run as root or not).
	{regexp.MustCompile(`\(uid \d+\)`), "(uid <UID>)"},
	// Ids: VMs, images, operations, sessions.
	{regexp.MustCompile(`\b(vm|img|op|sess)-[0-9a-f]{8,}\b`), "$1-<ID>"},
	// A zero time is no volatile part: kept apart, so a golden shows it.
	{regexp.MustCompile(`0001-01-01T00:00:00Z`), "<ZERO-TIME>"},
	// RFC 3339 times (vm show, image show, --json).
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<TIME>"},
	// Clock times of the event feed and vm stats --watch.
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d(\.\d{3})?\b`), "<CLOCK>"},
	// Ages.
	{regexp.MustCompile(`\b\d+[smhd] ago\b`), "<AGE>"},
	// Durations in JSON. A stage_finished event omits a zero
	// duration_ms (omitempty), so one is put in where it is missing.
	{regexp.MustCompile(`"(duration_ms|elapsed_ms)":( ?)\d+`), `"$1":$2<DUR>`},
	{regexp.MustCompile(`("type":"stage_finished","time":"<TIME>","stage":"[^"]*"(,"message":"(?:[^"\\]|\\.)*")?)(,"duration_ms":<DUR>)?`), `$1,"duration_ms":<DUR>`},
	// Digests, fingerprints (a seeded image's ext4 has a random UUID),
	// build ids and epochs.
	{regexp.MustCompile(`\b[0-9a-f]{16,64}\b`), "<HEX>"},
	// How a disk was cloned depends on the filesystem under the test's
	// root (diskclone: reflink on XFS or btrfs, sparse-copy elsewhere).
	// Only a stage's detail, in a column or a JSON detail or message
	// (doctor's "reflink" check keeps its name).
	{regexp.MustCompile(`(?m)((?:"(?:detail|message)": ?")|  )(reflink|sparse-copy)([",]|$)`), `$1<CLONE>$3`},
	// What a disk occupies on the host depends on its filesystem (block
	// size, preallocation): in JSON here, in vm stats' table below.
	{regexp.MustCompile(`"used_bytes":( ?)\d+`), `"used_bytes":$1<USED>`},
	// What a warm snapshot occupies (save state's detail; the warm
	// table below) depends on the filesystem too.
	{regexp.MustCompile(`\S+ \(state (\S+)\)`), "<USED> (state $1)"},
	// Times a daemon measured inside a stage's detail (a restore, the
	// guest's identity call, how long a fork's source was paused).
	{regexp.MustCompile(`\b\d+ ms\b`), "<N> ms"},
	// The generated name of the VM an image warm boots.
	{regexp.MustCompile(`\btemplate VM [a-z]+-[a-z]+\b`), "template VM <NAME>"},
	// Pids: in text, in a table row, in JSON.
	{regexp.MustCompile(`\bpid \d+\b`), "pid <PID>"},
	{regexp.MustCompile(`(?m)^pid( +)\d+$`), "pid$1<PID>"},
	{regexp.MustCompile(`"pid":( ?)\d+`), `"pid":$1<PID>`},
}

// measured is a duration banger measured (not one the user typed, as in
// --interval 10ms): right-aligned after a column gap (stage lines, TOOK
// columns), or after "in " or "after " (done in 1.2s, failed after 3ms).
var measured = regexp.MustCompile(`( {2,}|\bin |\bafter )(\d+h)?(\d+m)?\d+(\.\d+)?(ms|µs|ns|s)\b`)

// apply normalizes s. With table, columns that the placeholders shifted
// are aligned again (tabwriter output); otherwise a duration's
// placeholder keeps the width it was right-aligned to (the stage lines'
// %8s).
func (n *normalizer) apply(s string, table bool) string {
	for i, lit := range n.literals {
		s = strings.ReplaceAll(s, lit, n.names[i])
	}
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.repl)
	}
	s = measured.ReplaceAllStringFunc(s, func(m string) string {
		if word := strings.TrimLeft(m, " "); len(word) < len(m) {
			// A column gap: keep the width the duration was aligned to.
			return fmt.Sprintf("%*s", max(len(m), len("  <DUR>")), "<DUR>")
		} else {
			prefix, _, _ := strings.Cut(word, " ")
			return prefix + " <DUR>"
		}
	})
	if table {
		s = realign(warmSizeUsed(statsDiskUsed(s)))
	}
	return s
}

// statsHeader is the header of vm stats' table.
var statsHeader = regexp.MustCompile(`^NAME +CPU% +HOST-RSS +GUEST-MEM +DISK +NET-RX +NET-TX$`)

// warmHeader is the header of image show's and image warm's table of
// warm snapshots.
var warmHeader = regexp.MustCompile(`^WARM +VCPUS +MEMORY +DISK +SIZE +CREATED$`)

// warmSizeUsed replaces the SIZE column of warm snapshot tables (what
// the snapshot occupies on the host's filesystem) with <USED>.
func warmSizeUsed(s string) string {
	lines := strings.Split(s, "\n")
	for i, inTable := 0, false; i < len(lines); i++ {
		switch {
		case warmHeader.MatchString(lines[i]):
			inTable = true
		case lines[i] == "":
			inTable = false
		case inTable:
			if f := strings.Fields(lines[i]); len(f) == 6 {
				f[4] = "<USED>"
				lines[i] = strings.Join(f, "  ")
			}
		}
	}
	return strings.Join(lines, "\n")
}

// statsDiskUsed replaces the used part of the DISK column (used/size) in
// vm stats' tables with <USED>; realign then aligns the columns again.
func statsDiskUsed(s string) string {
	lines := strings.Split(s, "\n")
	for i, inTable := 0, false; i < len(lines); i++ {
		switch {
		case statsHeader.MatchString(lines[i]):
			inTable = true
		case lines[i] == "":
			inTable = false
		case inTable:
			f := strings.Fields(lines[i])
			if len(f) == 7 {
				if _, size, ok := strings.Cut(f[4], "/"); ok {
					f[4] = "<USED>/" + size
				}
				lines[i] = strings.Join(f, "  ")
			}
		}
	}
	return strings.Join(lines, "\n")
}

// columnGap is two or more spaces after a non-space: a tabwriter's gap.
var columnGap = regexp.MustCompile(`(\S) {2,}`)

// tableHeader is the first row of a table: capitals, in columns.
var tableHeader = regexp.MustCompile(`^[A-Z][A-Z0-9%/-]*( {2,}[A-Z][A-Z0-9%/-]*)+\n$`)

// realign redoes the column alignment of the tables in s (from a header
// row of capitals to the next empty line), whose cells changed width
// under the placeholders; the lines around them are kept as they are.
func realign(s string) string {
	var out strings.Builder
	var tw *tabwriter.Writer
	for _, line := range strings.SplitAfter(s, "\n") {
		if tw != nil && strings.TrimSpace(line) == "" {
			tw.Flush()
			tw = nil
		}
		if tw == nil && tableHeader.MatchString(line) {
			tw = tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
		}
		if tw == nil {
			out.WriteString(line)
			continue
		}
		fmt.Fprint(tw, columnGap.ReplaceAllString(line, "$1\t"))
	}
	if tw != nil {
		tw.Flush()
	}
	return out.String()
}

// testDoctorHost is a fixed host for doctor: everything present except
// KVM and Firecracker, so the report is the same on every machine.
type testDoctorHost struct{}

var errNotOnTestHost = errors.New("not on this test host")

func (testDoctorHost) LookPath(file string) (string, error) {
	switch filepath.Base(file) {
	case "firecracker", "jailer":
		return "", errNotOnTestHost
	}
	return "/usr/bin/" + filepath.Base(file), nil
}

func (testDoctorHost) Version(_ context.Context, bin string, _ ...string) (string, error) {
	return filepath.Base(bin) + " version 1.0", nil
}
func (testDoctorHost) ReadWrite(string) error { return nil }
func (testDoctorHost) Exists(string) bool     { return true }
func (testDoctorHost) KVMDevice() error {
	return errors.New("open /dev/kvm: no such file or directory (test host)")
}
func (testDoctorHost) ReflinkSupported(string) (bool, error)     { return false, nil }
func (testDoctorHost) SSHKey(string) (string, error)             { return "SHA256:testkey", nil }
func (testDoctorHost) IsRoot() bool                              { return false }
func (testDoctorHost) QEMUSandbox(context.Context, string) error { return nil }
func (testDoctorHost) FreeSpace(string) (uint64, uint64, error)  { return 100 << 30, 200 << 30, nil }
func (testDoctorHost) LookupUser(string) (hypervisor.VMUser, error) {
	return hypervisor.VMUser{}, errNotOnTestHost
}

// TestCommandsVMLifecycle: a VM from create to delete, every step's
// output pinned.
func TestCommandsVMLifecycle(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	h.runCases(t, []cmdCase{
		{golden: "vm-create", args: []string{"vm", "create", "--name", "demo"}, gated: true},
		{golden: "vm-create-json", args: []string{"vm", "create", "--name", "other", "--json"}, gated: true},
		{golden: "vm-list", args: []string{"vm", "list"}},
		{golden: "vm-list-json", args: []string{"vm", "list", "--json"}},
		{golden: "vm-show", args: []string{"vm", "show", "demo"}},
		{golden: "vm-show-json", args: []string{"vm", "show", "demo", "--json"}},
		{golden: "vm-logs", args: []string{"vm", "logs", "demo"}},
		{golden: "vm-stats", args: []string{"vm", "stats"}},
		{golden: "vm-stats-one-json", args: []string{"vm", "stats", "demo", "--json"}},
		{golden: "vm-stop", args: []string{"vm", "stop", "demo"}},
		{golden: "vm-list-stopped", args: []string{"vm", "list"}},
		{golden: "vm-show-stopped", args: []string{"vm", "show", "demo"}},
		{golden: "vm-stats-stopped", args: []string{"vm", "stats", "demo"}, code: ExitError},
		{golden: "vm-stop-stopped", args: []string{"vm", "stop", "demo"}},
		{golden: "vm-start", args: []string{"vm", "start", "demo"}, gated: true},
		{golden: "vm-restart", args: []string{"vm", "restart", "demo"}, gated: true},
		{golden: "vm-delete-several", args: []string{"vm", "delete", "demo", "other"}},
		{golden: "vm-list-empty", args: []string{"vm", "list"}},
		{golden: "vm-stats-none", args: []string{"vm", "stats"}},
	})
}

// TestCommandsImages: the image catalog as the CLI shows it, and removal
// refused while a VM uses the image unless forced.
func TestCommandsImages(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	h.d.SeedImage(t, "spare")
	h.d.CreateVM(t, api.CreateVMRequest{Name: "user", Image: daemontest.FakeImage})
	h.runCases(t, []cmdCase{
		{golden: "image-list", args: []string{"image", "list"}},
		{golden: "image-list-json", args: []string{"image", "list", "--json"}},
		{golden: "image-show", args: []string{"image", "show", "base"}},
		{golden: "image-show-json", args: []string{"image", "show", "base", "--json"}},
		{golden: "image-rm-in-use", args: []string{"image", "rm", "base"}, code: ExitError},
		{golden: "image-rm", args: []string{"image", "rm", "spare"}},
		{golden: "image-rm-force", args: []string{"image", "rm", "base", "--force"}},
		{golden: "image-list-after-rm", args: []string{"image", "list"}},
		{golden: "image-show-removed", args: []string{"image", "show", "spare"}, code: ExitError},
		{golden: "image-rm-removed", args: []string{"image", "rm", "spare"}, code: ExitError},
	})
}

// TestCommandsOperations: a finished create as operation list, show and
// watch print it.
func TestCommandsOperations(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	h.d.CreateVM(t, api.CreateVMRequest{Name: "opvm"})
	// The operation list reads the store, which the daemon writes after
	// it told the watchers the operation is done (operation.Run.finish
	// emits EventDone, then persists): until then the list says running.
	var ops []api.Operation
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var err error
		ops, err = h.d.Client.Operations(context.Background())
		if err != nil || len(ops) != 1 {
			t.Fatalf("operations after one create: %v, %v", ops, err)
		}
		if ops[0].State != api.OperationRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still listed as running 10s after its create returned", ops[0].ID)
		}
	}
	id := ops[0].ID
	h.runCases(t, []cmdCase{
		{golden: "operation-list", args: []string{"operation", "list"}},
		{golden: "operation-list-json", args: []string{"operation", "list", "--json"}},
		{golden: "operation-show", args: []string{"operation", "show", id}},
		{golden: "operation-show-json", args: []string{"operation", "show", id, "--json"}},
		{golden: "operation-watch-finished", args: []string{"operation", "watch", id}},
		{golden: "operation-watch-finished-json", args: []string{"operation", "watch", id, "--json"}},
		{golden: "operation-show-unknown", args: []string{"operation", "show", "op-0000000000000000"}, code: ExitError},
		{golden: "operation-watch-unknown", args: []string{"operation", "watch", "op-0000000000000000"}, code: ExitError},
	})
}

// TestCommandsHost: the commands about the host, the daemon and banger
// itself. The doctor reads testDoctorHost (no KVM), so it fails: exit 1.
func TestCommandsHost(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	h.runCases(t, []cmdCase{
		{golden: "version", args: []string{"version"}},
		{golden: "version-json", args: []string{"version", "--json"}},
		{golden: "config-show", args: []string{"config", "show"}},
		{golden: "config-show-json", args: []string{"config", "show", "--json"}},
		{golden: "config-path", args: []string{"config", "path"}},
		{golden: "config-path-json", args: []string{"config", "path", "--json"}},
		{golden: "config-validate", args: []string{"config", "validate"}},
		{golden: "daemon-status", args: []string{"daemon", "status"}},
		{golden: "doctor", args: []string{"doctor"}, code: ExitError, stderrLines: -1},
		{golden: "doctor-json", args: []string{"doctor", "--json"}, code: ExitError, stderrLines: -1},
		{golden: "verify", args: []string{"verify"}},
		{golden: "verify-json", args: []string{"verify", "--json"}},
	})
	// A VM directory no VM explains is a leak: verify lists it, exit 1.
	if err := os.MkdirAll(filepath.Join(h.d.Config.Paths.StateDir, "vms", "vm-0123456789ab"), 0o700); err != nil {
		t.Fatal(err)
	}
	h.runCases(t, []cmdCase{
		{golden: "verify-leak", args: []string{"verify"}, code: ExitError, stderrLines: -1},
		{golden: "verify-leak-json", args: []string{"verify", "--json"}, code: ExitError, stderrLines: -1},
	})
}

// TestCommandsBadInput: every refusal is one line on stderr that names
// the fix, exit 1 (the daemon refused) or 2 (the command line is wrong),
// and nothing is created or changed.
func TestCommandsBadInput(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	h.d.CreateVM(t, api.CreateVMRequest{Name: "taken"})
	h.runCases(t, []cmdCase{
		{golden: "bad-vm-show-unknown", args: []string{"vm", "show", "ghost"}, code: ExitError},
		{golden: "bad-vm-stop-unknown", args: []string{"vm", "stop", "ghost"}, code: ExitError},
		{golden: "bad-vm-start-unknown", args: []string{"vm", "start", "ghost"}, code: ExitError},
		{golden: "bad-vm-restart-unknown", args: []string{"vm", "restart", "ghost"}, code: ExitError},
		{golden: "bad-vm-delete-unknown", args: []string{"vm", "delete", "ghost"}, code: ExitError},
		{golden: "bad-vm-delete-several-unknown", args: []string{"vm", "delete", "ghost", "spook"}, code: ExitError, stderrLines: 2},
		{golden: "bad-vm-logs-unknown", args: []string{"vm", "logs", "ghost"}, code: ExitError},
		{golden: "bad-vm-stats-unknown", args: []string{"vm", "stats", "ghost"}, code: ExitError},
		// Refused at once: no operation is begun for a start that could
		// only fail.
		{golden: "bad-vm-start-running", args: []string{"vm", "start", "taken"}, code: ExitError},
		{golden: "bad-image-show-unknown", args: []string{"image", "show", "ghost"}, code: ExitError},
		{golden: "bad-image-rm-unknown", args: []string{"image", "rm", "ghost"}, code: ExitError},
		{golden: "bad-vm-create-taken-name", args: []string{"vm", "create", "--name", "taken"}, code: ExitError},
		{golden: "bad-vm-create-unknown-image", args: []string{"vm", "create", "--image", "ghost"}, code: ExitError},
		{golden: "bad-vm-create-vcpus", args: []string{"vm", "create", "--vcpus", "500"}, code: ExitError},
		{golden: "bad-vm-create-vcpus-word", args: []string{"vm", "create", "--vcpus", "many"}, code: ExitUsage},
		{golden: "bad-vm-create-memory-word", args: []string{"vm", "create", "--memory", "lots"}, code: ExitUsage},
		{golden: "bad-vm-create-memory-fraction", args: []string{"vm", "create", "--memory", "1536KiB"}, code: ExitUsage},
		{golden: "bad-vm-create-disk-word", args: []string{"vm", "create", "--disk", "big"}, code: ExitUsage},
		{golden: "bad-vm-create-argument", args: []string{"vm", "create", "demo"}, code: ExitUsage},
		{golden: "bad-vm-create-unknown-flag", args: []string{"vm", "create", "--cpus", "2"}, code: ExitUsage},
		{golden: "bad-vm-show-no-name", args: []string{"vm", "show"}, code: ExitUsage},
		{golden: "bad-vm-delete-no-name", args: []string{"vm", "delete"}, code: ExitUsage},
		{golden: "bad-vm-stats-interval", args: []string{"vm", "stats", "--watch", "--interval", "10ms"}, code: ExitUsage},
		{golden: "bad-vm-stats-two-names", args: []string{"vm", "stats", "a", "b"}, code: ExitUsage},
		{golden: "bad-vm-unknown-command", args: []string{"vm", "frobnicate"}, code: ExitUsage},
		{golden: "bad-unknown-command", args: []string{"frobnicate"}, code: ExitUsage},
		{golden: "bad-events-epoch-alone", args: []string{"events", "--epoch", "abc"}, code: ExitUsage},
		{golden: "bad-doctor-probe-timeout", args: []string{"doctor", "--deep", "--probe-timeout", "soon"}, code: ExitUsage},
		{golden: "bad-vm-list-json-value", args: []string{"vm", "list", "--json=maybe"}, code: ExitUsage},
		{golden: "bad-operation-cancel-unknown", args: []string{"operation", "cancel", "op-0000000000000000"}, code: ExitError},
		{golden: "bad-image-rm-no-name", args: []string{"image", "rm"}, code: ExitUsage},
		{golden: "bad-bench-create-parallel-zero", args: []string{"bench", "create", "--parallel", "0"}, code: ExitUsage},
		{golden: "bad-bench-create-parallel-word", args: []string{"bench", "create", "--parallel", "many"}, code: ExitUsage},
		{golden: "bad-bench-create-runs-zero", args: []string{"bench", "create", "--runs", "0", "--parallel", "2"}, code: ExitUsage},
		{golden: "bad-bench-create-unknown-image", args: []string{"bench", "create", "--image", "ghost", "--runs", "1"}, code: ExitError},
		{golden: "bad-verify-argument", args: []string{"verify", "extra"}, code: ExitUsage},
		{golden: "bad-vm-fork-no-name", args: []string{"vm", "fork"}, code: ExitUsage},
		{golden: "bad-vm-fork-three-names", args: []string{"vm", "fork", "a", "b", "c"}, code: ExitUsage},
		{golden: "bad-vm-pause-no-name", args: []string{"vm", "pause"}, code: ExitUsage},
		{golden: "bad-image-warm-rm-with-shape", args: []string{"image", "warm", "--rm", "base", "--vcpus", "2"}, code: ExitUsage},
		{golden: "bad-image-warm-memory-word", args: []string{"image", "warm", "base", "--memory", "lots"}, code: ExitUsage},
		{golden: "bad-vm-create-cold-value", args: []string{"vm", "create", "--cold=maybe"}, code: ExitUsage},
	})
	// A boot that fails at its launch: the stages up to the failure, the
	// error, and no VM left behind.
	h.d.Fake.LaunchErr = errors.New("fake: no room for this VM")
	h.runCases(t, []cmdCase{
		{golden: "bad-vm-create-launch-fails", args: []string{"vm", "create", "--name", "broken"}, code: ExitError, gated: true, stderrLines: -1},
	})
	h.d.Fake.LaunchErr = nil
	// A delete of a known and an unknown VM deletes the known one and
	// fails for the other.
	h.d.CreateVM(t, api.CreateVMRequest{Name: "doomed"})
	h.runCases(t, []cmdCase{
		{golden: "bad-vm-delete-some-unknown", args: []string{"vm", "delete", "doomed", "ghost"}, code: ExitError, changes: true},
		{golden: "bad-vm-list-after", args: []string{"vm", "list"}},
	})
}

// errSeen stops a client.Events call once it has what it came for.
var errSeen = errors.New("seen")

// TestCommandsEvents: banger events, resumed with --since/--epoch (the
// changes since then come first) and live, run until the change the test
// waits for is printed and then ended as Ctrl-C ends it (its context).
func TestCommandsEvents(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	ctx := context.Background()
	var hello api.Event
	err := h.d.Client.Events(ctx, 0, "", func(ev api.Event) error { hello = ev; return errSeen })
	if !errors.Is(err, errSeen) || hello.Kind != api.EventHello {
		t.Fatalf("the feed began with %+v (%v), want its hello", hello, err)
	}
	// Changes the resumed runs replay: a VM made, stopped and deleted.
	h.d.CreateVM(t, api.CreateVMRequest{Name: "ev"})
	if _, err := h.d.Client.StopVM(ctx, "ev"); err != nil {
		t.Fatal(err)
	}
	if err := h.d.Client.DeleteVM(ctx, "ev"); err != nil {
		t.Fatal(err)
	}
	since := []string{"--since", fmt.Sprint(hello.Seq), "--epoch", hello.Epoch}
	h.runBounded(t, []boundedCase{
		{"events-since", append([]string{"events"}, since...), nil,
			regexp.MustCompile(`(?m)^.*#\d+ +vm +ev +removed$`)},
		{"events-since-json", append([]string{"events", "--json"}, since...), nil,
			regexp.MustCompile(`(?m)^\{.*"kind":"vm".*"name":"ev","removed":true\}$`)},
		{"events-live", []string{"events"}, func() { h.d.CreateVM(t, api.CreateVMRequest{Name: "live"}) },
			regexp.MustCompile(`(?m)^.*#\d+ +vm +live +running 172\.30\.0\.\d+$`)},
	})
}

// TestCommandsFollow: the commands that follow until Ctrl-C — a console
// log, stats redrawn — up to their first output.
func TestCommandsFollow(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	h.d.CreateVM(t, api.CreateVMRequest{Name: "a"})
	h.runBounded(t, []boundedCase{
		{"vm-logs-follow", []string{"vm", "logs", "a", "-f"}, nil, regexp.MustCompile(`(?m)^fake console: VM vm-[0-9a-f]+ booted$`)},
		{"vm-stats-watch", []string{"vm", "stats", "--watch", "--interval", "500ms"}, nil, regexp.MustCompile(`(?m)^a +- +0B .*$`)},
		{"vm-stats-watch-json", []string{"vm", "stats", "a", "--watch", "--json", "--interval", "500ms"}, nil, regexp.MustCompile(`(?m)^\{"vm":"a".*\}$`)},
	})
}

// boundedCase is a command that runs until Ctrl-C: it runs until until
// matches its stdout, and its context is then cancelled as Ctrl-C
// cancels it. act, if set, runs once the command has said on stderr
// that it follows the daemon.
type boundedCase struct {
	golden string
	args   []string
	act    func()
	until  *regexp.Regexp
}

// runBounded runs the cases in order; each must end with exit 0 when
// cancelled, and what it printed up to the end of until's line is
// compared with its golden file (what came after raced with the cancel).
func (h *cliHarness) runBounded(t *testing.T, cases []boundedCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errb lockedBuffer
			app := &App{Stdout: &out, Stderr: &errb, Env: h.env, UID: os.Getuid(), DaemonBin: h.self}
			done := make(chan int, 1)
			go func() { done <- Run(ctx, c.args, app) }()
			waitFor := func(what string, ok func() bool) {
				t.Helper()
				deadline := time.After(time.Minute)
				for !ok() {
					select {
					case code := <-done:
						t.Fatalf("banger %s ended (exit %d) before %s; stdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), code, what, out.String(), errb.String())
					case <-deadline:
						t.Fatalf("banger %s: no %s within a minute; stdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), what, out.String(), errb.String())
					case <-time.After(5 * time.Millisecond):
					}
				}
			}
			if c.act != nil {
				waitFor("notice that it follows", func() bool { return strings.Contains(errb.String(), "bangerd") })
				c.act()
			}
			waitFor(c.until.String(), func() bool { return c.until.MatchString(out.String()) })
			cancel() // Ctrl-C
			r := cmdResult{code: <-done, stdout: out.String(), stderr: errb.String()}
			if r.code != ExitOK {
				t.Errorf("banger %s ended by its context: exit %d, want 0; stderr:\n%s", strings.Join(c.args, " "), r.code, r.stderr)
			}
			if loc := c.until.FindStringIndex(r.stdout); loc != nil {
				r.stdout = r.stdout[:loc[1]+1]
			}
			compareGolden(t, filepath.Join("commands", c.golden+".golden"), h.golden(c.args, r))
		})
	}
}

// TestNormalizer: what the goldens' normalizer replaces, and what it must
// keep (a duration the user typed, a zero time, an IP address).
func TestNormalizer(t *testing.T) {
	n := newNormalizer("/tmp/bgt123", "/x/cli.test")
	tests := []struct {
		name, in string
		table    bool
		want     string
	}{
		{"ids", "vm-58aa0161b186 op-361d519ff72bddfb img-e23ca2212ea6", false, "vm-<ID> op-<ID> img-<ID>"},
		{"root and self", "/tmp/bgt123/state/vms (/x/cli.test)", false, "<ROOT>/state/vms (<SELF>)"},
		{"times", `"created_at": "2026-12-04T21:47:47.141685704Z", 2026-12-04T21:47:47+01:00`, false, `"created_at": "<TIME>", <TIME>`},
		{"a zero time is kept apart", `"created_at":"0001-01-01T00:00:00Z"`, false, `"created_at":"<ZERO-TIME>"`},
		{"clock", "21:48:05.123  #4", false, "<CLOCK>  #4"},
		{"ages", "0s ago, 12m ago", false, "<AGE>, <AGE>"},
		{"measured durations", "done in 1.2s; failed after 3ms", false, "done in <DUR>; failed after <DUR>"},
		{"a typed duration is kept", "--interval 10ms is too short: give 500ms or more", false, "--interval 10ms is too short: give 500ms or more"},
		{"a right-aligned duration keeps its width", "  ✓ allocate                    1ms  demo\n  ✓ clone rootfs               12ms  x", false,
			"  ✓ allocate                  <DUR>  demo\n  ✓ clone rootfs              <DUR>  x"},
		{"json durations", `"duration_ms": 14, "elapsed_ms":3`, false, `"duration_ms": <DUR>, "elapsed_ms":<DUR>`},
		{"a zero stage duration omitted", `{"type":"stage_finished","time":"2026-12-04T21:47:47Z","stage":"acquire tap","message":"tap-pool-1","operation":{}}`, false,
			`{"type":"stage_finished","time":"<TIME>","stage":"acquire tap","message":"tap-pool-1","duration_ms":<DUR>,"operation":{}}`},
		{"pids", "pid 17411, \"pid\": 9\npid       1073741825", false, "pid <PID>, \"pid\": <PID>\npid       <PID>"},
		{"digests", "sha256:00e322104fddb8531a7112f5ad75e5898c97e59867ea8d93081727bd6e8cc577 build 529192664559f78e", false, "sha256:<HEX> build <HEX>"},
		{"addresses are kept", "172.30.0.2 02:b4:ac:1e:00:02 tap-pool-0", false, "172.30.0.2 02:b4:ac:1e:00:02 tap-pool-0"},
		{"vm stats' disk use", "NAME  CPU%  HOST-RSS  GUEST-MEM        DISK           NET-RX  NET-TX\na     -     0B        256.0MiB/1.0GiB  2.6MiB/1.0GiB  0B      0B\n", true,
			"NAME  CPU%  HOST-RSS  GUEST-MEM        DISK           NET-RX  NET-TX\na     -     0B        256.0MiB/1.0GiB  <USED>/1.0GiB  0B      0B\n"},
		{"json disk use", `"used_bytes": 1359872, "size_bytes": 1`, false, `"used_bytes": <USED>, "size_bytes": 1`},
		{"a warm snapshot's size", "WARM      VCPUS  MEMORY  DISK    SIZE      CREATED\nqemu/tcg  2      1.0GiB  1.0GiB  300.5MiB  3s ago\n\nx  2.4MiB\n", true,
			"WARM      VCPUS  MEMORY  DISK    SIZE    CREATED\nqemu/tcg  2      1.0GiB  1.0GiB  <USED>  <AGE>\n\nx  2.4MiB\n"},
		{"save state's detail", "  ✓ save state  1ms  2.4MiB (state 4KiB)", false, "  ✓ save state  <DUR>  <USED> (state 4KiB)"},
		{"times in a stage's detail", "pid 9, fake, 12 ms; demo was paused 7 ms", false, "pid <PID>, fake, <N> ms; demo was paused <N> ms"},
		{"a warm template's name", "template VM savvy-stork, 172.30.0.5", false, "template VM <NAME>, 172.30.0.5"},
		{"clone methods", "  ✓ clone rootfs   4ms  sparse-copy\n\"detail\":\"reflink, 1GiB\"\nwarn  reflink  no reflink on\n\"name\": \"reflink\"", false,
			"  ✓ clone rootfs  <DUR>  <CLONE>\n\"detail\":\"<CLONE>, 1GiB\"\nwarn  reflink  no reflink on\n\"name\": \"reflink\""},
		{"a table is realigned", "op-x  a\nID                  TOOK     NEXT\nop-361d519ff72bddfb  10ms     x\n\nafter   gap", true,
			"op-x  a\nID       TOOK   NEXT\nop-<ID>  <DUR>  x\n\nafter   gap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := n.apply(tt.in, tt.table); got != tt.want {
				t.Errorf("apply(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestCommandsSnapshots: pause, resume (and start of a paused VM), fork,
// image warm and its removal, a warm create and create --cold, with the
// lists and shows that report them, and the refusals (an unknown VM, a
// pause of a stopped VM, a fork under a taken name).
func TestCommandsSnapshots(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	h.d.CreateVM(t, api.CreateVMRequest{Name: "demo"})
	h.d.CreateVM(t, api.CreateVMRequest{Name: "taken"})
	h.runCases(t, []cmdCase{
		{golden: "vm-pause", args: []string{"vm", "pause", "demo"}, raced: true},
		{golden: "vm-list-paused", args: []string{"vm", "list"}},
		{golden: "vm-show-paused", args: []string{"vm", "show", "demo"}},
		{golden: "bad-vm-pause-paused", args: []string{"vm", "pause", "demo"}, code: ExitError},
		{golden: "bad-vm-fork-paused", args: []string{"vm", "fork", "demo", "copy"}, code: ExitError},
		{golden: "vm-resume", args: []string{"vm", "resume", "demo"}, raced: true},
		{golden: "bad-vm-resume-running", args: []string{"vm", "resume", "demo"}, code: ExitError},
		{golden: "vm-pause-again", args: []string{"vm", "pause", "demo"}, raced: true},
		{golden: "vm-start-paused", args: []string{"vm", "start", "demo"}, raced: true},
		{golden: "vm-fork", args: []string{"vm", "fork", "demo", "twin"}, gated: true},
		{golden: "vm-show-fork", args: []string{"vm", "show", "twin"}},
		{golden: "bad-vm-fork-taken-name", args: []string{"vm", "fork", "demo", "taken"}, code: ExitError},
		{golden: "bad-vm-fork-unknown", args: []string{"vm", "fork", "ghost"}, code: ExitError},
		{golden: "bad-vm-pause-unknown", args: []string{"vm", "pause", "ghost"}, code: ExitError},
		{golden: "bad-vm-resume-unknown", args: []string{"vm", "resume", "ghost"}, code: ExitError},
		{golden: "vm-stop-before-pause", args: []string{"vm", "stop", "taken"}},
		{golden: "bad-vm-pause-stopped", args: []string{"vm", "pause", "taken"}, code: ExitError},
		{golden: "bad-vm-resume-stopped", args: []string{"vm", "resume", "taken"}, code: ExitError},
		{golden: "vm-pause-to-stop", args: []string{"vm", "pause", "twin"}, raced: true},
		{golden: "vm-stop-paused", args: []string{"vm", "stop", "twin"}},
		{golden: "image-warm", args: []string{"image", "warm", "base"}, gated: true},
		{golden: "image-list-warm", args: []string{"image", "list"}},
		{golden: "image-show-warm", args: []string{"image", "show", "base"}},
		{golden: "bad-image-warm-unknown", args: []string{"image", "warm", "ghost"}, code: ExitError},
		{golden: "bad-image-warm-vcpus", args: []string{"image", "warm", "base", "--vcpus", "500"}, code: ExitError},
		{golden: "vm-create-warm", args: []string{"vm", "create", "--name", "quick"}, gated: true},
		{golden: "vm-show-warm", args: []string{"vm", "show", "quick"}},
		{golden: "vm-create-cold", args: []string{"vm", "create", "--name", "slow", "--cold"}, gated: true},
		{golden: "image-unwarm", args: []string{"image", "warm", "--rm", "base"}},
		{golden: "image-show-unwarmed", args: []string{"image", "show", "base"}},
	})
}
