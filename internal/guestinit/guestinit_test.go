package guestinit

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/initramfs"
)

// fakeSystem records the calls Probe makes instead of touching the kernel.
type fakeSystem struct {
	pid        int
	release    string
	releaseErr error
	powerErr   error
	calls      []string
}

func (f *fakeSystem) Getpid() int { return f.pid }
func (f *fakeSystem) KernelRelease() (string, error) {
	f.calls = append(f.calls, "uname")
	return f.release, f.releaseErr
}
func (f *fakeSystem) Sync() { f.calls = append(f.calls, "sync") }
func (f *fakeSystem) PowerOff() error {
	f.calls = append(f.calls, "poweroff")
	return f.powerErr
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("no console") }

func TestProbe(t *testing.T) {
	tests := []struct {
		name       string
		sys        fakeSystem
		console    io.Writer // nil: a buffer
		wantOut    string
		wantCalls  []string
		wantErrSub string
	}{
		{
			name:       "PID 1 prints the marker, syncs, then powers off",
			sys:        fakeSystem{pid: 1, release: "6.1.0-28-cloud-amd64"},
			wantOut:    "BANGER-PROBE-OK 6.1.0-28-cloud-amd64\n",
			wantCalls:  []string{"uname", "sync", "poweroff"},
			wantErrSub: "power off returned without switching the machine off",
		},
		{
			name:       "not PID 1 refuses and touches nothing",
			sys:        fakeSystem{pid: 4242, release: "x"},
			wantCalls:  nil,
			wantErrSub: "runs only as PID 1 inside the probe VM (this is PID 4242); refusing to power off",
		},
		{
			name:       "uname fails",
			sys:        fakeSystem{pid: 1, releaseErr: errors.New("EFAULT")},
			wantCalls:  []string{"uname"},
			wantErrSub: "reading the kernel release: EFAULT",
		},
		{
			name:       "power off fails",
			sys:        fakeSystem{pid: 1, release: "r", powerErr: errors.New("EPERM")},
			wantOut:    "BANGER-PROBE-OK r\n",
			wantCalls:  []string{"uname", "sync", "poweroff"},
			wantErrSub: "powering off after the probe: EPERM",
		},
		{
			name:       "console not writable",
			sys:        fakeSystem{pid: 1, release: "r"},
			console:    failWriter{},
			wantCalls:  []string{"uname"},
			wantErrSub: "is /dev/console in the initramfs?",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			console := tt.console
			if console == nil {
				console = &out
			}
			err := probe(console, &tt.sys)
			if err == nil || !strings.Contains(err.Error(), tt.wantErrSub) {
				t.Errorf("error = %v, want one containing %q", err, tt.wantErrSub)
			}
			if diff := cmp.Diff(tt.wantOut, out.String()); diff != "" {
				t.Errorf("console (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCalls, tt.sys.calls); diff != "" {
				t.Errorf("system calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsProbe(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"/init", "probe"}, true},
		{[]string{"/init"}, false},
		{[]string{"/init", "probe", "extra"}, false},
		{[]string{"/init", "Probe"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := IsProbe(tt.args); got != tt.want {
			t.Errorf("IsProbe(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
	if ProbeKernelArgs != "-- probe" {
		t.Errorf("ProbeKernelArgs = %q: the kernel passes the words after \"--\" to init", ProbeKernelArgs)
	}
}

// buildProbeInit builds testdata/probeinit as a static linux/amd64 binary.
func buildProbeInit(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not in PATH, so the test init binary cannot be built")
	}
	out := filepath.Join(t.TempDir(), "probeinit")
	cmd := exec.Command(goBin, "build", "-o", out, "./testdata/probeinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/probeinit: %v\n%s", err, b)
	}
	return out
}

func TestProbeInitramfs(t *testing.T) {
	agent := buildProbeInit(t)
	var buf bytes.Buffer
	if err := ProbeInitramfs(&buf, agent); err != nil {
		t.Fatalf("ProbeInitramfs: %v", err)
	}

	type entry struct {
		Name         string
		Mode         fs.FileMode
		Major, Minor uint32
	}
	var got []entry
	var initData []byte
	r := initramfs.NewReader(&buf)
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		got = append(got, entry{h.Name, h.Mode, h.RdevMajor, h.RdevMinor})
		if h.Name == "init" {
			if initData, err = io.ReadAll(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []entry{
		{"dev", fs.ModeDir | 0o755, 0, 0},
		{"dev/console", fs.ModeDevice | fs.ModeCharDevice | 0o600, 5, 1},
		{"proc", fs.ModeDir | 0o555, 0, 0},
		{"sys", fs.ModeDir | 0o555, 0, 0},
		{"init", 0o755, 0, 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("archive entries (-want +got):\n%s", diff)
	}
	wantInit, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wantInit, initData) {
		t.Errorf("/init (%d bytes) is not the agent binary (%d bytes)", len(initData), len(wantInit))
	}
}

func TestProbeInitramfsRejects(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "init.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		agent  string
		errSub string
	}{
		{"missing", filepath.Join(dir, "nope"), "needs the banger-agent binary"},
		{"directory", dir, "is not a regular file"},
		{"not ELF", script, "is not a Linux ELF executable"},
	}
	// A dynamically linked binary: any from the host's /bin will do.
	for _, p := range []string{"/bin/true", "/usr/bin/true", "/bin/sh"} {
		if dynamic(p) {
			tests = append(tests, struct{ name, agent, errSub string }{"dynamic", p, "build it with CGO_ENABLED=0"})
			break
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ProbeInitramfs(io.Discard, tt.agent)
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error = %v, want one containing %q", err, tt.errSub)
			}
		})
	}
}

// dynamic reports whether path is an ELF file with a program interpreter.
func dynamic(path string) bool {
	err := checkStatic(path)
	return err != nil && strings.Contains(err.Error(), "dynamically linked")
}
