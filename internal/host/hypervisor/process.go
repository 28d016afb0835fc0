package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/bangerdev/banger/internal/host/localsock"
)

// This file is the process supervisor both drivers launch their hypervisor
// with: Start runs the command in its own session with its output in
// files, reaps it so no zombie stays, and a launch that fails after Start
// ends it with Abort, which also removes the files Start made.

// ErrExited is what Process.WaitReady returns when the process exited
// before it was ready; Process.ExitError then says how it ended.
var ErrExited = errors.New("the hypervisor process exited")

// NoStderr is what StderrTail says of an empty (or missing) stderr file.
const NoStderr = "(nothing on stderr)"

// DefaultKillWait bounds how long Abort waits for a killed process to end
// when the Command leaves KillWait 0.
const DefaultKillWait = 10 * time.Second

// readyPoll is how often WaitReady asks again.
const readyPoll = 25 * time.Millisecond

// Command is a hypervisor process to start. The driver fills Cmd with
// what is its own (path, arguments, directory, environment, credentials,
// extra descriptors); Start owns Cmd's standard streams and puts the
// process in a session of its own.
type Command struct {
	// Name names the process in errors and logs ("QEMU", "Firecracker").
	Name string
	Cmd  *exec.Cmd
	// Files are made fresh (empty, mode 0600, truncated when they exist)
	// before the process starts, in order; Start removes them when it
	// fails, Abort when the launch fails later.
	Files []string
	// Stdout and Stderr receive the process's output (opened for
	// appending; list them in Files for a fresh file). "": /dev/null.
	Stdout, Stderr string
	Log            *slog.Logger
	// KillWait bounds how long Abort waits for the killed process to end;
	// DefaultKillWait when 0.
	KillWait time.Duration
}

// StartError is Start's error when the process itself could not be
// started (exec failed), as opposed to its files.
type StartError struct {
	Bin string
	Err error
}

func (e *StartError) Error() string { return fmt.Sprintf("starting %s: %v", e.Bin, e.Err) }
func (e *StartError) Unwrap() error { return e.Err }

// Process is a hypervisor process this daemon started and still is the
// parent of.
type Process struct {
	PID int

	name     string
	stderr   string
	files    []string
	log      *slog.Logger
	killWait time.Duration
	exited   chan struct{}
	waitErr  error
}

// Start makes c's files and starts c's process detached in its own
// session (and process group), so no signal meant for the daemon reaches
// it and it outlives the daemon, with stdin from /dev/null. The daemon is
// its parent until it exits: a goroutine reaps it as soon as it ends, so
// no zombie stays (after a daemon restart init reaps it). On error
// nothing runs and the files Start made are gone; exec's failure is a
// *StartError.
func Start(c Command) (*Process, error) {
	for i, f := range c.Files {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			RemoveFiles(c.Files[:i]...)
			return nil, err
		}
	}
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			f.Close()
		}
	}
	open := func(path string) (*os.File, error) {
		if path == "" {
			return nil, nil // /dev/null
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			opened = append(opened, f)
		}
		return f, err
	}
	stdout, err := open(c.Stdout)
	if err != nil {
		RemoveFiles(c.Files...)
		return nil, err
	}
	stderr, err := open(c.Stderr)
	if err != nil {
		closeAll()
		RemoveFiles(c.Files...)
		return nil, err
	}
	cmd := c.Cmd
	cmd.Stdin = nil
	// A nil *os.File in an io.Writer would not be nil: assign only files.
	cmd.Stdout, cmd.Stderr = nil, nil
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	err = cmd.Start()
	closeAll()
	if err != nil {
		RemoveFiles(c.Files...)
		return nil, &StartError{Bin: cmd.Path, Err: err}
	}
	p := &Process{
		PID:      cmd.Process.Pid,
		name:     c.Name,
		stderr:   c.Stderr,
		files:    c.Files,
		log:      c.Log,
		killWait: c.KillWait,
		exited:   make(chan struct{}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.killWait <= 0 {
		p.killWait = DefaultKillWait
	}
	// Registered before it can be reaped, so ExitOf can say how it ended.
	rec, watched := watchExit(p.PID)
	go func() {
		p.waitErr = cmd.Wait()
		if watched {
			e := exitOf(cmd)
			if t := StderrTail(p.stderr); p.stderr != "" && t != NoStderr {
				e.Stderr = t
			}
			rec.set(e)
		}
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed once the process has ended and was reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// StderrTail is the end of the process's stderr as one line.
func (p *Process) StderrTail() string { return StderrTail(p.stderr) }

// ExitError describes the process's exit, once it exited or is about to
// (its PID is gone or a zombie): "QEMU exited (exit status 1): <stderr>".
func (p *Process) ExitError() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v): %s", p.name, p.waitErr, p.StderrTail())
	case <-time.After(time.Second):
		return fmt.Errorf("%s exited: %s", p.name, p.StderrTail())
	}
}

// WaitReady calls ready, with a context of at most a second, until it
// succeeds, the process exits (ErrExited), timeout passes or ctx ends
// (ctx's error). what names the socket in the timeout's error ("QMP",
// "the API socket").
func (p *Process) WaitReady(parent context.Context, timeout time.Duration, what string, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-p.exited:
			return ErrExited
		default:
		}
		actx, acancel := context.WithTimeout(ctx, time.Second)
		err := ready(actx)
		acancel()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-p.exited:
			return ErrExited
		case <-ctx.Done():
			if parent.Err() != nil {
				return parent.Err()
			}
			return fmt.Errorf("%s did not answer within %v (%v); is the host overloaded?", what, timeout, lastErr)
		case <-time.After(readyPoll):
		}
	}
}

// Abort ends a launch that failed after Start: it kills the process group
// unless the process already exited, waits for it to be reaped (at most
// the Command's KillWait), and removes the files Start made.
func (p *Process) Abort() {
	select {
	case <-p.exited:
	default:
		KillGroup(p.PID)
		select {
		case <-p.exited:
		case <-time.After(p.killWait):
			p.log.Error(p.name+" did not die after SIGKILL", "pid", p.PID)
		}
	}
	RemoveFiles(p.files...)
}

// StderrTail returns the last lines (at most five, from the last 2 KiB) of
// the stderr file at path as one line, or NoStderr.
func StderrTail(path string) string {
	b, _ := os.ReadFile(path)
	const max = 2048
	if len(b) > max {
		b = b[len(b)-max:]
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	s := strings.TrimSpace(strings.Join(lines, "; "))
	if s == "" {
		return NoStderr
	}
	return s
}

// RemoveFiles removes each path but "", ignoring errors (a file already
// gone is the goal).
func RemoveFiles(paths ...string) {
	for _, p := range paths {
		if p != "" {
			os.Remove(p)
		}
	}
}

// RegularFile checks that path is a regular file, with an error a
// launch's message can carry ("no such file", "not a regular file (d)").
func RegularFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("no such file")
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	return nil
}

// PeerPID is the PID of the process at the other end of the unix socket
// connection conn (SO_PEERCRED), which tells a driver whether its control
// socket is served by the process it started.
func PeerPID(conn net.Conn) (int, error) {
	c, err := localsock.PeerCred(conn)
	if err != nil {
		return 0, err
	}
	return c.PID, nil
}

// LookBin finds the binary bin, or def when bin is "", as exec.LookPath
// does; when it is not found the error is notFound's, given the name
// looked up and LookPath's error, so that it can name the fix.
func LookBin(bin, def string, notFound func(bin string, err error) error) (string, error) {
	if bin == "" {
		bin = def
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", notFound(bin, err)
	}
	return p, nil
}
