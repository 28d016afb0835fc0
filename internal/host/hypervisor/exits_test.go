package hypervisor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// ExitOf tells how a process Start started ended: its exit status and
// stderr, or the signal that killed it; it knows nothing of a process it
// did not start.
func TestExitOf(t *testing.T) {
	tests := []struct {
		name   string
		script string
		kill   bool
		want   Exit
		text   string
	}{
		{name: "exit status", script: "sleep 0.3; echo 'qemu: terminating on signal 15' >&2; exit 3",
			want: Exit{Code: 3, Stderr: "qemu: terminating on signal 15"}, text: "exit status 3"},
		{name: "clean exit", script: "sleep 0.3", want: Exit{Code: 0}, text: "exit status 0"},
		{name: "killed", script: "exec sleep 60", kill: true,
			want: Exit{Code: -1, Signal: syscall.SIGKILL}, text: "signal SIGKILL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errf := filepath.Join(t.TempDir(), "err")
			p, err := Start(Command{Name: "Test", Cmd: exec.Command("/bin/sh", "-c", tt.script), Files: []string{errf}, Stderr: errf})
			if err != nil {
				t.Fatal(err)
			}
			st, err := ProcessStartTime(p.PID)
			if err != nil {
				t.Fatal(err)
			}
			h := Handle{PID: p.PID, StartTime: st}
			if tt.kill {
				unix.Kill(p.PID, unix.SIGKILL)
			}
			<-p.Exited()
			got, ok := ExitOf(context.Background(), h)
			if !ok || got != tt.want {
				t.Fatalf("ExitOf = %+v, %v; want %+v", got, ok, tt.want)
			}
			if got.String() != tt.text {
				t.Errorf("String() = %q, want %q", got.String(), tt.text)
			}
		})
	}
	if e, ok := ExitOf(context.Background(), Handle{PID: os.Getpid(), StartTime: 1}); ok {
		t.Errorf("a process Start did not start: ExitOf = %+v, true", e)
	}
}
