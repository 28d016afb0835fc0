package hypervisor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStart(t *testing.T) {
	tests := []struct {
		name   string
		script string
		// ready answers WaitReady.
		ready     func(context.Context) error
		wantWait  error  // errors.Is
		wantExit  string // in ExitError, "" to skip
		wantOut   string // the stdout file's content
		abortKill bool   // Abort must kill the process
	}{
		{
			name: "exits before ready", script: "echo out; echo first >&2; echo 'no such disk' >&2; exit 3",
			ready:    func(context.Context) error { return errors.New("not yet") },
			wantWait: ErrExited, wantExit: "Test exited (exit status 3): first; no such disk", wantOut: "out\n",
		},
		{
			name: "exits silently", script: "exit 1",
			ready:    func(context.Context) error { return errors.New("not yet") },
			wantWait: ErrExited, wantExit: "Test exited (exit status 1): " + NoStderr,
		},
		{
			name: "ready, then aborted", script: "exec sleep 60",
			ready:     func(context.Context) error { return nil },
			abortKill: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out, errf := filepath.Join(dir, "out"), filepath.Join(dir, "err")
			os.WriteFile(errf, []byte("left from a previous run\n"), 0o600)
			p, err := Start(Command{Name: "Test", Cmd: exec.Command("/bin/sh", "-c", tt.script),
				Files: []string{out, errf}, Stdout: out, Stderr: errf})
			if err != nil {
				t.Fatal(err)
			}
			if pgid, err := unix.Getpgid(p.PID); err == nil && pgid != p.PID {
				t.Errorf("process group %d, want its own (%d)", pgid, p.PID)
			}
			err = p.WaitReady(context.Background(), 10*time.Second, "the socket", tt.ready)
			if !errors.Is(err, tt.wantWait) {
				t.Fatalf("WaitReady = %v, want %v", err, tt.wantWait)
			}
			if tt.wantExit != "" {
				if got := p.ExitError().Error(); got != tt.wantExit {
					t.Errorf("ExitError = %q, want %q", got, tt.wantExit)
				}
				if b, _ := os.ReadFile(out); string(b) != tt.wantOut {
					t.Errorf("stdout file holds %q, want %q", b, tt.wantOut)
				}
			}
			if tt.abortKill {
				select {
				case <-p.Exited():
					t.Fatal("the process ended before Abort")
				default:
				}
			}
			p.Abort()
			select {
			case <-p.Exited():
			default:
				t.Error("Abort returned before the process was reaped")
			}
			for _, f := range []string{out, errf} {
				if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s survived Abort: %v", f, err)
				}
			}
		})
	}
}

func TestStartFailures(t *testing.T) {
	dir := t.TempDir()
	made := filepath.Join(dir, "made")
	_, err := Start(Command{Name: "Test", Cmd: exec.Command(filepath.Join(dir, "missing")), Files: []string{made}, Stderr: made})
	var se *StartError
	if !errors.As(err, &se) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start of a missing binary = %v, want a *StartError wrapping ErrNotExist", err)
	}
	if _, err := os.Stat(made); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file Start made survived its failure: %v", err)
	}
	_, err = Start(Command{Name: "Test", Cmd: exec.Command("/bin/true"), Files: []string{made, filepath.Join(dir, "no", "dir")}})
	if err == nil || errors.As(err, &se) {
		t.Errorf("Start with a file it cannot make = %v, want the file's error", err)
	}
	if _, err := os.Stat(made); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file Start made survived its failure: %v", err)
	}
}

func TestWaitReadyTimeout(t *testing.T) {
	p, err := Start(Command{Name: "Test", Cmd: exec.Command("/bin/sleep", "60")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Abort()
	err = p.WaitReady(context.Background(), 100*time.Millisecond, "the socket", func(context.Context) error { return errors.New("refused") })
	if err == nil || !strings.Contains(err.Error(), "the socket did not answer within 100ms (refused)") {
		t.Errorf("WaitReady = %v, want the timeout naming the socket and the last error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.WaitReady(ctx, time.Minute, "the socket", func(context.Context) error { return errors.New("refused") }); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitReady with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestStderrTail(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"empty", "", NoStderr},
		{"blank lines", "\n\n  \n", NoStderr},
		{"one line", "bad disk\n", "bad disk"},
		{"last five", "1\n2\n3\n4\n5\n6\n7\n", "3; 4; 5; 6; 7"},
		{"last 2 KiB", strings.Repeat("x", 3000) + "\nend\n", strings.Repeat("x", 2043) + "; end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "stderr")
			os.WriteFile(p, []byte(tt.content), 0o600)
			if got := StderrTail(p); got != tt.want {
				t.Errorf("StderrTail = %q, want %q", got, tt.want)
			}
		})
	}
	if got := StderrTail(filepath.Join(t.TempDir(), "missing")); got != NoStderr {
		t.Errorf("StderrTail of a missing file = %q, want %q", got, NoStderr)
	}
}
