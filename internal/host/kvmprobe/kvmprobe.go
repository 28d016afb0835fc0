// Package kvmprobe answers whether this host can actually boot a Linux guest
// with KVM, by booting one under a time limit.
//
// A /dev/kvm that opens and answers ioctls proves little: under broken nested
// virtualisation real-mode firmware runs but a Linux kernel never gets past
// decompression. So Run boots a real kernel with the probe initramfs
// (WriteInitramfs: banger-agent as /init, which runs guestinit.Probe)
// that prints agentproto.ProbeMarker on the serial console and powers off, and reports "booted" only when the marker appears
// in the console log within the time limit. The same machinery runs under
// QEMU's software emulation (Accel "tcg"), which proves the probe itself
// works on hosts where KVM does not.
//
// DeviceAccessible is the cheap precondition: it tells a missing module or
// a permission problem apart, with the fix, before anything is booted.
package kvmprobe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// Options describes one probe boot. Zero values take the defaults noted.
type Options struct {
	QEMUBin   string        // QEMU system emulator; default "qemu-system-x86_64"
	Kernel    string        // bzImage path
	Initramfs string        // probe initramfs path (built with WriteInitramfs)
	Accel     string        // "kvm" (the real probe, default) or "tcg" (to prove the probe machinery works)
	Timeout   time.Duration // default 20s
	WorkDir   string        // the serial log goes here (console.log); default: a temporary directory, removed afterwards
}

// Status is the outcome of a probe.
type Status string

const (
	// Booted: the guest reached userspace and printed the probe marker.
	Booted Status = "booted"
	// Timeout: the guest did not print the marker within the time limit.
	Timeout Status = "timeout"
	// Failed: QEMU could not start or exited before the guest reached
	// userspace, the inputs are wrong, or the probe was cancelled.
	Failed Status = "failed"
	// Unavailable: the QEMU binary or, for Accel "kvm", /dev/kvm is missing
	// or unusable, so nothing was booted.
	Unavailable Status = "unavailable"
)

// Result is what a probe found. Reason is one actionable line, empty only
// when Status is Booted.
type Result struct {
	Status      Status
	Reason      string
	Elapsed     time.Duration // from starting QEMU to the marker, or to giving up
	ConsoleTail string        // the last lines of the guest's serial console
}

const (
	// DefaultQEMU is the emulator Run uses when Options.QEMUBin is empty.
	DefaultQEMU = "qemu-system-x86_64"
	// DefaultTimeout is the time limit Run uses when Options.Timeout is 0.
	DefaultTimeout = 20 * time.Second
	// KernelCmdline is the probe's kernel command line: serial console, no
	// reboot on panic, and "/init probe" via agentproto.ProbeKernelArgs.
	KernelCmdline = "console=ttyS0 panic=-1 quiet " + agentproto.ProbeKernelArgs

	kvmDevice     = "/dev/kvm"
	kvmAPIVersion = 12
	// kvmGetAPIVersion is _IO(KVMIO, 0x00) with KVMIO = 0xAE.
	kvmGetAPIVersion = 0xAE00

	pollInterval = 50 * time.Millisecond
	tailBytes    = 2048
	// killWait bounds how long Run waits for QEMU to die after SIGKILL.
	killWait = 10 * time.Second
)

// DeviceAccessible checks that /dev/kvm can be opened read-write and speaks
// KVM API version 12. It says nothing about whether a guest can boot; Run
// answers that.
func DeviceAccessible() error {
	return deviceAccessible(kvmDevice)
}

func deviceAccessible(path string) error {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%s does not exist: enable virtualisation (VT-x/AMD-V) in the firmware or the hypervisor running this machine, and load the module (modprobe kvm_intel or modprobe kvm_amd)", path)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("no permission to open %s read-write: add your user to the kvm group (sudo usermod -aG kvm $USER) and log in again", path)
	case err != nil:
		return fmt.Errorf("opening %s: %v; check that the kvm_intel or kvm_amd module is loaded", path, err)
	}
	defer unix.Close(fd)
	v, err := unix.IoctlRetInt(fd, kvmGetAPIVersion)
	if err != nil {
		return fmt.Errorf("%s does not answer KVM_GET_API_VERSION (%v): it is not the KVM device; reload the module (modprobe -r kvm_intel && modprobe kvm_intel)", path, err)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("%s speaks KVM API version %d, want %d: this host kernel's KVM is not supported; use a mainstream Linux kernel", path, v, kvmAPIVersion)
	}
	return nil
}

// Run boots o.Kernel with o.Initramfs under QEMU and waits, at most
// o.Timeout, for the probe marker on the serial console. It kills QEMU's
// whole process group on timeout or when ctx ends and never leaves a QEMU
// process behind.
func Run(ctx context.Context, o Options) Result {
	return run(ctx, o, kvmDevice)
}

func run(ctx context.Context, o Options, kvmPath string) Result {
	if o.QEMUBin == "" {
		o.QEMUBin = DefaultQEMU
	}
	if o.Accel == "" {
		o.Accel = "kvm"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}

	var cpu string
	switch o.Accel {
	case "kvm":
		cpu = "host"
	case "tcg":
		cpu = "max"
	default:
		return Result{Status: Failed, Reason: fmt.Sprintf("unknown accelerator %q for the KVM probe: use kvm or tcg", o.Accel)}
	}
	qemu, err := exec.LookPath(o.QEMUBin)
	if err != nil {
		return Result{Status: Unavailable, Reason: fmt.Sprintf("%s not found: install QEMU (apt-get install qemu-system-x86) or set the QEMU binary path", o.QEMUBin)}
	}
	if o.Accel == "kvm" {
		if err := deviceAccessible(kvmPath); err != nil {
			return Result{Status: Unavailable, Reason: oneLine(err.Error())}
		}
	}
	for _, in := range []struct{ what, path string }{{"kernel", o.Kernel}, {"initramfs", o.Initramfs}} {
		if in.path == "" {
			return Result{Status: Failed, Reason: fmt.Sprintf("no probe %s given: pass its path", in.what)}
		}
		fi, err := os.Stat(in.path)
		if err != nil || !fi.Mode().IsRegular() {
			return Result{Status: Failed, Reason: fmt.Sprintf("probe %s %s is not a readable file (%v): fetch or rebuild it", in.what, in.path, err)}
		}
	}

	workDir := o.WorkDir
	if workDir == "" {
		dir, err := os.MkdirTemp("", "banger-kvmprobe-")
		if err != nil {
			return Result{Status: Failed, Reason: oneLine(fmt.Sprintf("creating a work directory for the probe: %v; check TMPDIR", err))}
		}
		defer os.RemoveAll(dir)
		workDir = dir
	} else if err := os.MkdirAll(workDir, 0o755); err != nil {
		return Result{Status: Failed, Reason: oneLine(fmt.Sprintf("creating probe work directory: %v", err))}
	}
	logPath := filepath.Join(workDir, "console.log")
	if err := os.Remove(logPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Result{Status: Failed, Reason: oneLine(fmt.Sprintf("removing the old console log: %v", err))}
	}

	args := []string{
		"-machine", "q35,accel=" + o.Accel,
		"-cpu", cpu,
		"-m", "256",
		"-smp", "1",
		"-nographic",
		"-no-reboot",
		"-kernel", o.Kernel,
		"-initrd", o.Initramfs,
		"-append", KernelCmdline,
		"-serial", "file:" + logPath,
		"-display", "none",
		"-monitor", "none",
		"-nodefaults",
	}
	p := &probe{o: o, logPath: logPath, logNamed: o.WorkDir != ""}
	return p.boot(ctx, qemu, args)
}

// probe is one running probe boot.
type probe struct {
	o        Options
	logPath  string
	logNamed bool // the console log outlives Run, so reasons may point at it
}

func (p *probe) boot(ctx context.Context, qemu string, args []string) Result {
	cmd := exec.Command(qemu, args...)
	// Its own process group, so a kill reaches anything QEMU started; and
	// killed if this process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr := &tailBuffer{max: tailBytes}
	cmd.Stdout = io.Discard
	cmd.Stderr = stderr

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{Status: Failed, Reason: oneLine(fmt.Sprintf("starting %s: %v; reinstall QEMU (apt-get install qemu-system-x86)", p.o.QEMUBin, err))}
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	log := &logWatch{path: p.logPath, marker: []byte(agentproto.ProbeMarker)}
	res, waitErr, hasExited := p.watch(ctx, log, exited, start)

	if !hasExited {
		// Kill the whole group; QEMU holds no state worth a graceful exit.
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		select {
		case waitErr = <-exited:
		case <-time.After(killWait):
			res.Reason = oneLine(res.Reason + fmt.Sprintf("; QEMU (pid %d) did not die after SIGKILL", cmd.Process.Pid))
		}
	} else {
		// QEMU is gone; anything it left in its group goes too.
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	}
	log.poll()
	res.ConsoleTail = log.tail()
	if res.Status == Failed && res.Reason == "" {
		res.Reason = p.exitReason(waitErr, stderr.String(), res.ConsoleTail)
	}
	return res
}

// watch polls the console log until the marker appears, QEMU exits, the
// time limit passes or ctx ends.
func (p *probe) watch(ctx context.Context, log *logWatch, exited <-chan error, start time.Time) (res Result, waitErr error, hasExited bool) {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	timer := time.NewTimer(p.o.Timeout)
	defer timer.Stop()
	for {
		select {
		case <-ticker.C:
			if log.poll() {
				return Result{Status: Booted, Elapsed: time.Since(start)}, nil, false
			}
		case waitErr = <-exited:
			elapsed := time.Since(start)
			if log.poll() { // printed, then powered off before the next tick
				return Result{Status: Booted, Elapsed: elapsed}, waitErr, true
			}
			return Result{Status: Failed, Elapsed: elapsed}, waitErr, true
		case <-timer.C:
			elapsed := time.Since(start)
			if log.poll() {
				return Result{Status: Booted, Elapsed: elapsed}, nil, false
			}
			return Result{Status: Timeout, Elapsed: elapsed, Reason: p.timeoutReason()}, nil, false
		case <-ctx.Done():
			return Result{
				Status:  Failed,
				Elapsed: time.Since(start),
				Reason:  oneLine(fmt.Sprintf("the probe was interrupted before the guest reached userspace (%v); run it again", context.Cause(ctx))),
			}, nil, false
		}
	}
}

func (p *probe) timeoutReason() string {
	if p.o.Accel == "kvm" {
		return fmt.Sprintf("KVM is present but a Linux guest did not reach userspace within %s (nested virtualisation broken?); banger will use QEMU software emulation", p.o.Timeout)
	}
	r := fmt.Sprintf("a Linux guest did not reach userspace within %s under QEMU software emulation; the host may be overloaded, or the probe kernel or initramfs is broken", p.o.Timeout)
	if p.logNamed {
		r += " (see " + p.logPath + ")"
	}
	return r
}

// exitReason explains why QEMU exited without the guest printing the marker.
func (p *probe) exitReason(waitErr error, stderr, console string) string {
	status := "status 0"
	if waitErr != nil {
		status = waitErr.Error()
	}
	var detail string
	switch {
	case lastLineWith(console, "Kernel panic") != "":
		detail = "the guest kernel panicked: " + lastLineWith(console, "Kernel panic")
	case lastLine(stderr) != "":
		detail = lastLine(stderr)
	case lastLine(console) != "":
		detail = "last console line: " + lastLine(console)
	default:
		detail = "no output"
	}
	r := fmt.Sprintf("%s exited (%s) before the guest reached userspace: %s", p.o.QEMUBin, status, detail)
	if p.o.Accel == "kvm" {
		r += "; banger will use QEMU software emulation"
	} else if p.logNamed {
		r += "; see " + p.logPath
	}
	return oneLine(r)
}

// logWatch reads the console log incrementally and looks for the marker,
// also across read boundaries, keeping the last tailBytes for the result.
type logWatch struct {
	path   string
	marker []byte
	off    int64
	buf    []byte // the last bytes read: at least len(marker)-1, up to tailBytes
	found  bool
}

// poll reads what was appended since the last call and reports whether the
// marker has been seen.
func (l *logWatch) poll() bool {
	if l.found {
		return true
	}
	f, err := os.Open(l.path)
	if err != nil {
		return false // QEMU has not created it yet
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		n, err := f.ReadAt(chunk, l.off)
		if n > 0 {
			l.off += int64(n)
			l.buf = append(l.buf, chunk[:n]...)
			if bytes.Contains(l.buf, l.marker) {
				l.found = true
			}
			if len(l.buf) > tailBytes && !l.found {
				l.buf = l.buf[len(l.buf)-tailBytes:]
			}
		}
		if err != nil || n == 0 {
			return l.found
		}
	}
}

// tail returns the last lines of the console as printable text.
func (l *logWatch) tail() string {
	b := l.buf
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
			b = b[i+1:] // start at a whole line
		}
	}
	return printable(b)
}

// printable drops terminal escape sequences (the firmware clears the screen)
// and control characters other than newline and tab, so the console tail
// is safe to print on the user's terminal.
func printable(b []byte) string {
	var out strings.Builder
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == 0x1b: // ESC: skip a CSI sequence up to its final byte, or one character
			if i+1 < len(b) && b[i+1] == '[' {
				i += 2
				for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
					i++
				}
			} else {
				i++
			}
		case c == '\n' || c == '\t':
			out.WriteByte(c)
		case c < 0x20 || c == 0x7f:
		default:
			out.WriteByte(c)
		}
	}
	return out.String()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(s, "\r", "")), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func lastLineWith(s, sub string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

// oneLine joins the lines of s, so a Reason always prints as one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
