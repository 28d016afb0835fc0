package kvmprobe

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/debkernel"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// fakeQEMU writes a shell script that stands in for QEMU: it finds the
// serial log in its arguments, records its pid (and those of children the
// body starts, via "$pids") and then runs body.
func fakeQEMU(t *testing.T, body string) string {
	t.Helper()
	script := `#!/bin/sh
log=
while [ $# -gt 0 ]; do
	case "$1" in
	-serial) log="${2#file:}"; shift ;;
	esac
	shift
done
pids="$(dirname "$log")/pids"
echo $$ >"$pids"
` + body + "\n"
	p := filepath.Join(t.TempDir(), "fake-qemu")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// dummyBootFiles returns a kernel and an initramfs path that exist.
func dummyBootFiles(t *testing.T) (kernel, initrd string) {
	t.Helper()
	dir := t.TempDir()
	kernel, initrd = filepath.Join(dir, "bzImage"), filepath.Join(dir, "initrd")
	for _, p := range []string{kernel, initrd} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return kernel, initrd
}

// checkNoLeftovers fails if a process recorded in workDir/pids still runs.
// QEMU itself is reaped before Run returns; processes it started die
// asynchronously after the SIGKILL to the group, so allow them a moment.
func checkNoLeftovers(t *testing.T, workDir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(workDir, "pids"))
	if err != nil {
		return // the fake never started
	}
	pids := strings.Fields(string(b))
	if alive(pids[0]) {
		t.Errorf("fake QEMU (pid %s) still runs after Run returned", pids[0])
	}
	for _, pid := range pids[1:] {
		deadline := time.Now().Add(5 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("process %s started by the fake QEMU survived the kill", pid)
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid string) bool {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...; comm may hold spaces, so look after the last ')'.
	s := string(stat)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(rest) > 0 && rest[0] != "Z"
}

// TestRunMachinery drives Run with fake QEMUs that print the marker, hang,
// panic or fail, and checks the result and that no process is left behind.
func TestRunMachinery(t *testing.T) {
	const hang = `sleep 1000 & echo $! >>"$pids"; wait`
	tests := []struct {
		name       string
		body       string
		timeout    time.Duration
		cancelAt   time.Duration // >0: cancel the context after this long
		wantStatus Status
		wantReason string // substring; "" means Reason must be empty
		wantTail   string // substring of ConsoleTail
	}{
		{
			name:       "marker then hang: booted, QEMU killed",
			body:       `printf 'Linux version 6.1\r\nBANGER-PROBE-OK 6.1.0-test\r\n' >>"$log"; ` + hang,
			timeout:    30 * time.Second,
			wantStatus: Booted,
			wantTail:   "BANGER-PROBE-OK 6.1.0-test",
		},
		{
			name:       "marker split across writes",
			body:       `printf 'BANGER-PR' >>"$log"; sleep 0.3; printf 'OBE-OK r\n' >>"$log"; ` + hang,
			timeout:    30 * time.Second,
			wantStatus: Booted,
			wantTail:   "BANGER-PROBE-OK r",
		},
		{
			name:       "marker then power off",
			body:       `printf 'BANGER-PROBE-OK r\n' >>"$log"; exit 0`,
			timeout:    30 * time.Second,
			wantStatus: Booted,
			wantTail:   "BANGER-PROBE-OK r",
		},
		{
			name:       "marker after a long console",
			body:       `i=0; while [ $i -lt 500 ]; do echo "[    0.$i] some kernel line $i" >>"$log"; i=$((i+1)); done; echo BANGER-PROBE-OK r >>"$log"; ` + hang,
			timeout:    30 * time.Second,
			wantStatus: Booted,
			wantTail:   "some kernel line 499\nBANGER-PROBE-OK r",
		},
		{
			name:       "hang: timeout, whole process group killed",
			body:       `echo booting >>"$log"; ` + hang,
			timeout:    time.Second,
			wantStatus: Timeout,
			wantReason: "did not reach userspace within 1s under QEMU software emulation",
			wantTail:   "booting",
		},
		{
			name:       "guest kernel panics",
			body:       `printf 'Run /init as init process\r\nKernel panic - not syncing: No working init found.\r\n' >>"$log"; exit 0`,
			timeout:    30 * time.Second,
			wantStatus: Failed,
			wantReason: "the guest kernel panicked: Kernel panic - not syncing: No working init found.",
		},
		{
			name:       "QEMU fails",
			body:       `echo "qemu-system-x86_64: -machine q35,accel=tcg: some error" >&2; echo "second line" >&2; exit 1`,
			timeout:    30 * time.Second,
			wantStatus: Failed,
			wantReason: "exited (exit status 1) before the guest reached userspace: second line",
		},
		{
			name:       "context cancelled",
			body:       hang,
			timeout:    30 * time.Second,
			cancelAt:   300 * time.Millisecond,
			wantStatus: Failed,
			wantReason: "interrupted before the guest reached userspace (context canceled)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kernel, initrd := dummyBootFiles(t)
			workDir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelAt > 0 {
				time.AfterFunc(tt.cancelAt, cancel)
			}
			res := Run(ctx, Options{
				QEMUBin:   fakeQEMU(t, tt.body),
				Kernel:    kernel,
				Initramfs: initrd,
				Accel:     "tcg",
				Timeout:   tt.timeout,
				WorkDir:   workDir,
			})
			t.Logf("result: %+v", res)
			if res.Status != tt.wantStatus {
				t.Errorf("Status = %q, want %q (reason %q)", res.Status, tt.wantStatus, res.Reason)
			}
			if tt.wantReason == "" && res.Reason != "" {
				t.Errorf("Reason = %q, want none", res.Reason)
			}
			if !strings.Contains(res.Reason, tt.wantReason) {
				t.Errorf("Reason = %q, want it to contain %q", res.Reason, tt.wantReason)
			}
			if strings.Contains(res.Reason, "\n") {
				t.Errorf("Reason spans lines: %q", res.Reason)
			}
			if !strings.Contains(res.ConsoleTail, tt.wantTail) {
				t.Errorf("ConsoleTail = %q, want it to contain %q", res.ConsoleTail, tt.wantTail)
			}
			if len(res.ConsoleTail) > tailBytes {
				t.Errorf("ConsoleTail is %d bytes, want at most %d", len(res.ConsoleTail), tailBytes)
			}
			if res.Elapsed <= 0 {
				t.Errorf("Elapsed = %v, want > 0", res.Elapsed)
			}
			checkNoLeftovers(t, workDir)
		})
	}
}

// TestRunPreconditions checks the results that come before anything boots.
func TestRunPreconditions(t *testing.T) {
	kernel, initrd := dummyBootFiles(t)
	fake := fakeQEMU(t, "exit 0")
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name       string
		o          Options
		kvmPath    string
		wantStatus Status
		wantReason string
	}{
		{"no QEMU", Options{QEMUBin: missing, Kernel: kernel, Initramfs: initrd, Accel: "tcg"}, "",
			Unavailable, "not found: install QEMU (apt-get install qemu-system-x86)"},
		{"no /dev/kvm", Options{QEMUBin: fake, Kernel: kernel, Initramfs: initrd, Accel: "kvm"}, missing,
			Unavailable, "does not exist: enable virtualisation (VT-x/AMD-V) in the firmware or the hypervisor running this machine, and load the module (modprobe kvm_intel or modprobe kvm_amd)"},
		{"default accel is kvm", Options{QEMUBin: fake, Kernel: kernel, Initramfs: initrd}, missing,
			Unavailable, "modprobe kvm_intel"},
		{"/dev/kvm is not KVM", Options{QEMUBin: fake, Kernel: kernel, Initramfs: initrd, Accel: "kvm"}, kernel,
			Unavailable, "does not answer KVM_GET_API_VERSION"},
		{"unknown accel", Options{QEMUBin: fake, Kernel: kernel, Initramfs: initrd, Accel: "hvf"}, "",
			Failed, `unknown accelerator "hvf" for the KVM probe: use kvm or tcg`},
		{"no kernel", Options{QEMUBin: fake, Initramfs: initrd, Accel: "tcg"}, "",
			Failed, "no probe kernel given"},
		{"missing initramfs", Options{QEMUBin: fake, Kernel: kernel, Initramfs: missing, Accel: "tcg"}, "",
			Failed, "probe initramfs " + missing + " is not a readable file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(context.Background(), tt.o, tt.kvmPath)
			if res.Status != tt.wantStatus || !strings.Contains(res.Reason, tt.wantReason) {
				t.Errorf("got %q %q, want %q with %q", res.Status, res.Reason, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

func TestDeviceAccessible(t *testing.T) {
	err := DeviceAccessible()
	t.Logf("DeviceAccessible() on this host: %v", err)
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans lines: %q", err)
	}
}

// requireQEMU returns the QEMU binary or skips.
func requireQEMU(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping tests that boot a Linux guest")
	}
	p, err := exec.LookPath(DefaultQEMU)
	if err != nil {
		t.Skipf("%s not installed, so no guest can be booted: apt-get install qemu-system-x86", DefaultQEMU)
	}
	return p
}

// probeKernel returns a bzImage: $BANGER_TEST_KERNEL, or Debian's cloud
// kernel fetched into a cache shared by test runs. It skips if neither works.
func probeKernel(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BANGER_TEST_KERNEL"); p != "" {
		return p
	}
	cache := filepath.Join(os.TempDir(), "banger-test-kernel-cache")
	k, err := debkernel.Fetch(context.Background(), cache, "", nil)
	if err != nil {
		t.Skipf("no kernel to boot (set BANGER_TEST_KERNEL to a bzImage, or make apt work): %v", err)
	}
	return k.Vmlinuz
}

// buildInitramfs builds testdata/<program> as a static linux/amd64 binary
// and writes the probe initramfs around it.
func buildInitramfs(t *testing.T, program string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not in PATH, so the test init cannot be built")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, program)
	cmd := exec.Command(goBin, "build", "-o", bin, "./testdata/"+program)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/%s: %v\n%s", program, err, out)
	}
	p := filepath.Join(dir, program+".cpio")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteInitramfs(f, bin); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// qemuProcessesUsing returns the pids of processes whose command line
// mentions path (each probe's console log path is unique).
func qemuProcessesUsing(t *testing.T, path string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), path) && alive(e.Name()) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func checkWellFormed(t *testing.T, res Result) {
	t.Helper()
	switch res.Status {
	case Booted:
	case Timeout, Failed, Unavailable:
		if res.Reason == "" {
			t.Errorf("Status %q without a Reason", res.Status)
		}
	default:
		t.Errorf("Status %q is not one of booted, timeout, failed, unavailable", res.Status)
	}
	if strings.Contains(res.Reason, "\n") {
		t.Errorf("Reason spans lines: %q", res.Reason)
	}
}

// TestBootTCG boots Debian's kernel with the probe initramfs under software
// emulation: this proves the probe machinery end to end.
func TestBootTCG(t *testing.T) {
	qemu := requireQEMU(t)
	kernel := probeKernel(t)
	initrd := buildInitramfs(t, "probeinit")
	workDir := t.TempDir()

	res := Run(context.Background(), Options{
		QEMUBin:   qemu,
		Kernel:    kernel,
		Initramfs: initrd,
		Accel:     "tcg",
		Timeout:   2 * time.Minute, // generous for slow CI machines; 3 s is typical
		WorkDir:   workDir,
	})
	t.Logf("tcg probe: status=%s elapsed=%v reason=%q", res.Status, res.Elapsed, res.Reason)
	checkWellFormed(t, res)
	if res.Status != Booted {
		t.Fatalf("Status = %q, want booted; console:\n%s", res.Status, res.ConsoleTail)
	}
	if !strings.Contains(res.ConsoleTail, agentproto.ProbeMarker+" ") {
		t.Errorf("console tail lacks %q:\n%s", agentproto.ProbeMarker, res.ConsoleTail)
	}
	t.Logf("guest printed: %s", lastLineWith(res.ConsoleTail, agentproto.ProbeMarker))
	if pids := qemuProcessesUsing(t, workDir); len(pids) > 0 {
		t.Errorf("QEMU processes left behind: %v", pids)
	}
}

// TestBootKVM runs the real probe on this host. Whether KVM can boot a guest
// depends on the host, so the outcome is only logged; the Result must be
// well-formed either way.
func TestBootKVM(t *testing.T) {
	qemu := requireQEMU(t)
	kernel := probeKernel(t)
	initrd := buildInitramfs(t, "probeinit")
	workDir := t.TempDir()

	res := Run(context.Background(), Options{QEMUBin: qemu, Kernel: kernel, Initramfs: initrd, Accel: "kvm", WorkDir: workDir})
	t.Logf("kvm probe on this host: status=%s elapsed=%v reason=%q", res.Status, res.Elapsed, res.Reason)
	t.Logf("kvm probe console tail:\n%s", res.ConsoleTail)
	checkWellFormed(t, res)
	if res.Status == Booted && !strings.Contains(res.ConsoleTail, agentproto.ProbeMarker) {
		t.Errorf("booted without the marker in the console:\n%s", res.ConsoleTail)
	}
	if pids := qemuProcessesUsing(t, workDir); len(pids) > 0 {
		t.Errorf("QEMU processes left behind: %v", pids)
	}
}

// TestBootTimeout boots a guest whose /init sleeps forever: the probe must
// report a timeout and kill QEMU.
func TestBootTimeout(t *testing.T) {
	qemu := requireQEMU(t)
	kernel := probeKernel(t)
	initrd := buildInitramfs(t, "sleepinit")
	workDir := t.TempDir()

	res := Run(context.Background(), Options{
		QEMUBin: qemu, Kernel: kernel, Initramfs: initrd, Accel: "tcg", Timeout: 3 * time.Second, WorkDir: workDir,
	})
	t.Logf("sleeping guest: status=%s elapsed=%v reason=%q\nconsole tail:\n%s", res.Status, res.Elapsed, res.Reason, res.ConsoleTail)
	checkWellFormed(t, res)
	if res.Status != Timeout {
		t.Errorf("Status = %q, want timeout; console:\n%s", res.Status, res.ConsoleTail)
	}
	if pids := qemuProcessesUsing(t, workDir); len(pids) > 0 {
		t.Errorf("QEMU processes left behind: %v", pids)
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain\nlines\n", "plain\nlines\n"},
		{"\x1bc\x1b[?7l\x1b[2JSeaBIOS\r\n", "SeaBIOS\n"},
		{"\x1b[0mBooting\x07 from ROM\t.", "Booting from ROM\t."},
		{"trailing escape \x1b", "trailing escape "},
		{"unfinished \x1b[12", "unfinished "},
		{"utf-8 ✓", "utf-8 ✓"},
	}
	for _, tt := range tests {
		if got := printable([]byte(tt.in)); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
