package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// An exec whose VM is stopped or deleted by another request while it
// runs (the agent session breaks under it) is answered with what happened
// to the VM — not found, or failed precondition — not the broken
// session's internal error; a session that breaks under a VM that still
// runs keeps its own error, wrapped in what to do about an agent that
// does not answer.
func TestExecWaitVMEndedUnderIt(t *testing.T) {
	tests := []struct {
		name     string
		end      func(f *fakeVMs)
		want     *api.Error
		contains string
	}{
		{"deleted", func(f *fakeVMs) { f.v.Name = "someone-else" }, api.ErrNotFound, "VM g was deleted while sleep ran in it"},
		{"being deleted", func(f *fakeVMs) { f.v.State = api.VMDeleting }, api.ErrNotFound, "VM g is being deleted: it stopped while sleep ran in it"},
		{"stopped", func(f *fakeVMs) { f.v.State = api.VMStopped }, api.ErrFailedPrecondition, "VM g is stopped: it stopped while sleep ran in it"},
		{"still running", func(*fakeVMs) {}, nil, "the guest agent of VM g is not answering"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each run sleeps for its own time so that a sleep of an
			// earlier run, still being reaped, is not taken for this one's.
			argv := []string{"sleep", fmt.Sprint(30 + i)}
			s, f, _ := setup(t)
			vms := &lockedVMs{f: f}
			s.VMs = vms
			done := make(chan error, 1)
			go func() {
				_, err := s.ExecWait(context.Background(), "g", api.ExecRequest{Argv: argv})
				done <- err
			}()
			waitForChild(t, argv)
			vms.mu.Lock()
			tt.end(f)
			vms.mu.Unlock()
			f.sess.Close() // the hypervisor is gone: the session breaks
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("ExecWait did not return after its session broke")
			}
			if err == nil || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("err = %v, want it to contain %q", err, tt.contains)
			}
			var ae *api.Error
			switch {
			case tt.want == nil && errors.As(err, &ae):
				t.Errorf("err = %v (code %s), want the session's own error", err, ae.Code)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Errorf("err = %v, want code %s", err, tt.want.Code)
			}
		})
	}
}

// lockedVMs is fakeVMs changed by the test while a request reads it.
type lockedVMs struct {
	mu sync.Mutex
	f  *fakeVMs
}

func (l *lockedVMs) Get(ctx context.Context, name string) (vm.VM, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Get(ctx, name)
}

func (l *lockedVMs) Agent(ctx context.Context, name string) (vm.VM, *agentmux.Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Agent(ctx, name)
}

func (l *lockedVMs) SetWorkspace(ctx context.Context, name string, ws api.Workspace) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.SetWorkspace(ctx, name, ws)
}

// waitForChild waits until this process (where the test's agent runs its
// commands) has a child process running argv.
func waitForChild(t *testing.T, argv []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", os.Getpid()))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			for _, pid := range strings.Fields(string(b)) {
				if c, _ := os.ReadFile("/proc/" + pid + "/cmdline"); string(c) == strings.Join(argv, "\x00")+"\x00" {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q process started within 20s", argv)
}
