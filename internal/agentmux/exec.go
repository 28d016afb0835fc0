package agentmux

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
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

// serveExec runs one exec request on stream st (whose reader r is past the
// header) and ends it with the exit frame.
func serveExec(ctx context.Context, st io.Writer, r *bufio.Reader, req ExecRequest) {
	fw := &frameWriter{w: st}
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
		cmd.Stdout = channelWriter{fw, chStdout}
		cmd.Stderr = channelWriter{fw, chStderr}
		cmd.WaitDelay = outputGrace
		stdin, err = cmd.StdinPipe()
		if err == nil {
			err = cmd.Start()
		}
	}
	if err != nil {
		writeReply(st, streamReply{Error: &Error{Code: CodeExecFailed, Message: "starting " + req.Argv[0] + ": " + err.Error()}})
		return
	}
	if writeReply(st, streamReply{}) != nil {
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
