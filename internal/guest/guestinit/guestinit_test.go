package guestinit

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
