package hypervisor

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exit is how a hypervisor process ended, as its parent (the daemon that
// started it) saw it when it reaped it.
type Exit struct {
	// Code is the exit status; -1 when a signal ended the process.
	Code int
	// Signal is the signal that ended the process; 0 when it exited.
	Signal syscall.Signal
	// Stderr is the end of its stderr as one line (StderrTail), or "".
	Stderr string
}

// String says how the process ended: "exit status 1", "signal SIGKILL".
func (e Exit) String() string {
	if e.Signal != 0 {
		if name := unix.SignalName(e.Signal); name != "" {
			return "signal " + name
		}
		return fmt.Sprintf("signal %d", int(e.Signal))
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// exitOf reads how a reaped command ended.
func exitOf(cmd *exec.Cmd) Exit {
	if cmd.ProcessState == nil {
		return Exit{Code: -1}
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal()}
	}
	return Exit{Code: cmd.ProcessState.ExitCode()}
}

// exitKey names one process: its pid and start time, as a Handle does.
type exitKey struct {
	pid   int
	start uint64
}

type exitRecord struct {
	done chan struct{} // closed once exit is set
	exit Exit
}

// exits remembers how the processes this daemon started ended, so that
// whoever notices a VM's hypervisor gone (vm.Watch) can say why. It keeps
// the last maxExits processes; a daemon restart forgets them all (an
// adopted hypervisor's parent is init, which reaps it unseen).
var exits = struct {
	sync.Mutex
	byKey map[exitKey]*exitRecord
	order []exitKey
}{byKey: map[exitKey]*exitRecord{}}

const maxExits = 256

// watchExit registers a process Start just started, before it is reaped;
// one that already ended (a zombie, whose start time cannot be read) is
// not registered, and ExitOf knows nothing of it.
func watchExit(pid int) (*exitRecord, bool) {
	start, err := ProcessStartTime(pid)
	if err != nil {
		return nil, false
	}
	return addExit(exitKey{pid, start}), true
}

func addExit(k exitKey) *exitRecord {
	exits.Lock()
	defer exits.Unlock()
	if r, ok := exits.byKey[k]; ok {
		return r
	}
	r := &exitRecord{done: make(chan struct{})}
	exits.byKey[k] = r
	exits.order = append(exits.order, k)
	if len(exits.order) > maxExits {
		delete(exits.byKey, exits.order[0])
		exits.order = exits.order[1:]
	}
	return r
}

// RecordExit records how h's process ended. Start does it for every
// process it starts; a test driver (hvtest.Fake) does it for its fakes.
func RecordExit(h Handle, e Exit) {
	addExit(exitKey{h.PID, h.StartTime}).set(e)
}

// set records e once; a second call changes nothing.
func (r *exitRecord) set(e Exit) {
	exits.Lock()
	defer exits.Unlock()
	select {
	case <-r.done:
	default:
		r.exit = e
		close(r.done)
	}
}

// ExitOf returns how h's process ended, when this daemon started it and
// saw it end. A process it started that is gone but not yet reaped is
// waited for, up to a second. It reports false for a process this daemon
// did not start (adopted after a restart) or forgot.
func ExitOf(ctx context.Context, h Handle) (Exit, bool) {
	exits.Lock()
	r, ok := exits.byKey[exitKey{h.PID, h.StartTime}]
	exits.Unlock()
	if !ok {
		return Exit{}, false
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-r.done:
		return r.exit, true
	case <-t.C:
	case <-ctx.Done():
	}
	return Exit{}, false
}
