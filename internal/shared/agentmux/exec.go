package agentmux

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// outputGrace bounds how long an exec waits, after the command exited,
// for output still held open by processes it left behind.
const outputGrace = 2 * time.Second

// RunExec is the host end of an exec stream after the guest's accepting
// reply: rw is a *Stream from Open, or any connection spliced to one (a
// daemon handing the stream to a CLI). req is the request that was sent;
// RunExec uses its Resize (window size changes, sent until RunExec
// returns) and Argv[0] (in errors).
//
// stdin (may be nil: empty) is copied to the command, and its end closes
// the command's stdin (in pipe mode); stdout and stderr (nil: discarded)
// receive its output (in TTY mode only stdout, with the terminal's bytes).
// The returned error is about the channel; a command that fails is an
// ExitStatus with a non-zero Code or a Signal. RunExec may return before
// it has finished reading stdin; reading goes on in the background until
// stdin returns, and what it reads then is dropped, not written to rw.
//
// When ctx ends RunExec returns an error wrapping ctx.Err(): it sets a
// past deadline on rw when rw has SetDeadline, else closes rw when it is
// an io.Closer (a bare io.ReadWriter is not interrupted: RunExec returns
// when its read does).
func RunExec(ctx context.Context, rw io.ReadWriter, req ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (ExitStatus, error) {
	name := "the command"
	if len(req.Argv) > 0 {
		name = req.Argv[0]
	}
	if err := ctx.Err(); err != nil {
		return ExitStatus{}, fmt.Errorf("agentmux: running %s: %w", name, err)
	}
	stop := interruptOn(ctx, rw)
	defer stop()
	fw := &frameWriter{w: rw}
	defer fw.stop()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		if stdin != nil {
			buf := make([]byte, chunkSize)
			for {
				n, err := stdin.Read(buf)
				if n > 0 {
					if fw.frame(chStdin, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					break
				}
			}
		}
		fw.frame(chStdinEOF, nil)
	}()
	if req.Resize != nil {
		go func() {
			for {
				select {
				case ws, ok := <-req.Resize:
					if !ok {
						return
					}
					fw.frame(chResize, resizePayload(ws))
				case <-finished:
					return
				}
			}
		}()
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	r := bufio.NewReader(rw)
	for {
		ch, p, err := readFrame(r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the agent closed the stream without an exit status")
			}
			return ExitStatus{}, wrapCtx(ctx, "running "+name, err)
		}
		switch ch {
		case chStdout:
			if _, err := stdout.Write(p); err != nil {
				return ExitStatus{}, fmt.Errorf("agentmux: writing %s's stdout: %w", name, err)
			}
		case chStderr:
			if _, err := stderr.Write(p); err != nil {
				return ExitStatus{}, fmt.Errorf("agentmux: writing %s's stderr: %w", name, err)
			}
		case chExit:
			var st ExitStatus
			if err := json.Unmarshal(p, &st); err != nil {
				return ExitStatus{}, fmt.Errorf("agentmux: malformed exit status %q: %w", p, err)
			}
			return st, nil
		}
	}
}

// afterReply holds output back until the reply line is written.
type afterReply struct {
	replied <-chan struct{}
	w       io.Writer
}

func (a afterReply) Write(p []byte) (int, error) {
	<-a.replied
	return a.w.Write(p)
}

// serveExec runs one exec request on stream st (whose reader r is past the
// header) and ends it with the exit frame.
func serveExec(ctx context.Context, st io.Writer, r *bufio.Reader, req ExecRequest) {
	fw := &frameWriter{w: st}
	// Output must not overtake the reply line: it waits for this.
	replied := make(chan struct{})
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.Dir = req.Cwd
	var (
		stdin io.WriteCloser
		ptmx  *os.File
		err   error
	)
	if req.TTY {
		ws := &pty.Winsize{Rows: req.Rows, Cols: req.Cols}
		if ws.Rows == 0 || ws.Cols == 0 {
			ws.Rows, ws.Cols = 24, 80
		}
		ptmx, err = pty.StartWithSize(cmd, ws)
		stdin = ptmx
	} else {
		cmd.Stdout = afterReply{replied, channelWriter{fw, chStdout}}
		cmd.Stderr = afterReply{replied, channelWriter{fw, chStderr}}
		cmd.WaitDelay = outputGrace
		stdin, err = cmd.StdinPipe()
		if err == nil {
			err = cmd.Start()
		}
	}
	if err != nil {
		msg := "starting " + req.Argv[0] + ": " + err.Error()
		switch {
		case errors.Is(err, exec.ErrNotFound):
			msg = fmt.Sprintf("%s: command not found in the guest's PATH (%s): install it in the image, or give its full path", req.Argv[0], os.Getenv("PATH"))
		case req.Cwd != "" && errors.Is(err, fs.ErrNotExist):
			if _, serr := os.Stat(req.Cwd); serr != nil {
				msg = fmt.Sprintf("working directory %s does not exist in the guest: create it, or prepare the workspace first", req.Cwd)
			}
		}
		writeReply(st, Reply{Error: &Error{Code: CodeExecFailed, Message: msg}})
		return
	}
	err = writeReply(st, Reply{})
	close(replied)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return
	}

	// The host's frames: stdin, its end, resizes. The stream ending (or
	// the session ending) means the host has gone: kill the command.
	var mu sync.Mutex
	exited := false
	kill := func() {
		mu.Lock()
		defer mu.Unlock()
		if !exited {
			cmd.Process.Kill()
		}
	}
	stopKill := context.AfterFunc(ctx, kill)
	defer stopKill()
	go func() {
		for {
			ch, p, err := readFrame(r)
			if err != nil {
				kill()
				if !req.TTY {
					stdin.Close()
				}
				return
			}
			switch ch {
			case chStdin:
				stdin.Write(p) // fails once the command is gone
			case chStdinEOF:
				if !req.TTY {
					stdin.Close()
				}
			case chResize:
				if ptmx != nil && len(p) == 4 {
					pty.Setsize(ptmx, &pty.Winsize{Rows: binary.BigEndian.Uint16(p), Cols: binary.BigEndian.Uint16(p[2:])})
				}
			}
		}
	}()

	var outDone chan struct{}
	if ptmx != nil {
		outDone = make(chan struct{})
		go func() {
			defer close(outDone)
			io.Copy(channelWriter{fw, chStdout}, ptmx) // ends with EIO once no one holds the terminal
		}()
	}
	err = cmd.Wait()
	mu.Lock()
	exited = true
	mu.Unlock()
	if ptmx != nil {
		select {
		case <-outDone:
		case <-time.After(outputGrace):
		}
		ptmx.Close()
	}
	status := exitStatus(cmd.ProcessState, err)
	b, _ := json.Marshal(status)
	fw.frame(chExit, b)
}

func exitStatus(ps *os.ProcessState, err error) ExitStatus {
	if ps == nil {
		return ExitStatus{Code: -1}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ExitStatus{Code: -1, Signal: int(ws.Signal()), SignalName: unix.SignalName(ws.Signal())}
	}
	code := ps.ExitCode()
	if code == 0 && err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		code = -1
	}
	return ExitStatus{Code: code}
}
