package guestsession

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// firstErrLimit is how many of the first stderr bytes a launch diagnostic
// quotes.
const firstErrLimit = 4 << 10

// readBuf is the size of one read from the process's output.
const readBuf = 32 << 10

// session is one command and everything the agent keeps about it.
type session struct {
	dir        string
	log        *slog.Logger
	cfg        *config
	startTicks uint64
	bootID     string

	// persistMu orders writes of the state file, so the last change
	// always lands last. Taken before mu.
	persistMu sync.Mutex

	mu          sync.Mutex
	info        Info
	out         *ring
	logf        *os.File // output log; nil when not capturing
	logSize     int64
	firstErr    []byte
	attachCount int
	changed     chan struct{} // closed and replaced on every change
	exited      chan struct{} // closed once the exit is recorded
	drained     chan struct{} // closed once no more output can come
	outDone     bool          // drained is closed
	stdinClosed bool
	discarded   bool // removed, or never started: write no state

	stdin   *os.File // pipe write end, or the pty master
	pty     *os.File // the pty master in TTY mode
	stdinMu sync.Mutex
}

func (m *Manager) newSession(id string, mode Mode) *session {
	return &session{
		dir:     m.dir,
		log:     m.log.With("session", id),
		cfg:     &m.cfg,
		info:    Info{ID: id, Mode: mode},
		out:     newRing(m.cfg.ringSize),
		changed: make(chan struct{}),
		exited:  make(chan struct{}),
		drained: make(chan struct{}),
	}
}

// start launches the resolved command and the goroutines that capture its
// output and its exit. On error nothing is left running and no file stays.
func (s *session) start(l launch) (err error) {
	id := s.info.ID
	logPath := outputPath(s.dir, id)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating session output log: %w: check that the state dir %s is writable", err, s.dir)
	}
	defer func() {
		if err != nil {
			logf.Close()
			os.Remove(logPath)
		}
	}()

	cmd := &exec.Cmd{Path: l.path, Args: l.spec.Argv, Dir: l.cwd, Env: l.env}
	var outputs []*os.File
	var streams []Stream
	switch l.spec.Mode {
	case ModeTTY:
		master, err := pty.StartWithAttrs(cmd, &pty.Winsize{Rows: l.spec.Rows, Cols: l.spec.Cols},
			&syscall.SysProcAttr{Setsid: true, Setctty: true})
		if err != nil {
			return fmt.Errorf("starting %q on a terminal: %w", l.spec.Argv[0], err)
		}
		s.stdin, s.pty = master, master
		outputs, streams = []*os.File{master}, []Stream{StreamTTY}
	default:
		files, err := pipes(3)
		if err != nil {
			return fmt.Errorf("making session pipes: %w", err)
		}
		stdinR, stdinW := files[0][0], files[0][1]
		outR, outW := files[1][0], files[1][1]
		errR, errW := files[2][0], files[2][1]
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, outW, errW
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		err = cmd.Start()
		stdinR.Close()
		outW.Close()
		errW.Close()
		if err != nil {
			stdinW.Close()
			outR.Close()
			errR.Close()
			return fmt.Errorf("starting %q: %w", l.spec.Argv[0], err)
		}
		s.stdin = stdinW
		outputs, streams = []*os.File{outR, errR}, []Stream{StreamStdout, StreamStderr}
	}

	pid := cmd.Process.Pid
	_, ticks, _ := procStat(s.cfg.procRoot, pid)
	s.mu.Lock()
	s.startTicks, s.bootID = ticks, readBootID(s.cfg.procRoot)
	s.logf = logf
	s.info = Info{
		ID:        id,
		Name:      l.spec.Name,
		Argv:      slices.Clone(l.spec.Argv),
		Cwd:       l.cwd,
		EnvKeys:   l.envKeys,
		Mode:      l.spec.Mode,
		PID:       pid,
		StartedAt: s.cfg.now(),
		State:     StateRunning,
	}
	s.mu.Unlock()

	var pumps sync.WaitGroup
	for i, f := range outputs {
		pumps.Add(1)
		go s.pump(f, streams[i], &pumps)
	}
	go s.wait(cmd, &pumps)

	if err := s.persistErr(); err != nil {
		s.mu.Lock()
		s.discarded = true
		s.mu.Unlock()
		unix.Kill(-pid, unix.SIGKILL)
		os.Remove(statePath(s.dir, id))
		return fmt.Errorf("writing session state: %w: check that the state dir %s is writable", err, s.dir)
	}
	return nil
}

// pipes makes n pipes, each as [read end, write end].
func pipes(n int) ([][2]*os.File, error) {
	var ps [][2]*os.File
	for range n {
		r, w, err := os.Pipe()
		if err != nil {
			for _, p := range ps {
				p[0].Close()
				p[1].Close()
			}
			return nil, err
		}
		ps = append(ps, [2]*os.File{r, w})
	}
	return ps, nil
}

// pump copies one output of the process into the ring until it ends. A
// pipe's read end is closed here; the pty master is closed by wait.
func (s *session) pump(f *os.File, stream Stream, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, readBuf)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			s.output(stream, buf[:n])
		}
		if err != nil {
			break
		}
	}
	if stream != StreamTTY {
		f.Close()
	}
}

// output appends bytes the process produced.
func (s *session) output(stream Stream, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stream != StreamStdout && len(s.firstErr) < firstErrLimit {
		s.firstErr = append(s.firstErr, p[:min(len(p), firstErrLimit-len(s.firstErr))]...)
	}
	seg := s.out.add(stream, p)
	if len(seg.data) > 0 {
		s.appendLogLocked(seg)
	}
	s.broadcastLocked()
}

// appendLogLocked writes seg to the output log, and rewrites the log from
// the ring once it holds about twice the ring's size.
func (s *session) appendLogLocked(seg segment) {
	if s.logf == nil || s.discarded {
		return
	}
	frame := appendFrame(nil, seg)
	n, err := s.logf.Write(frame)
	s.logSize += int64(n)
	if err == nil && s.logSize > 2*int64(s.out.limit) {
		err = s.compactLogLocked()
	}
	if err != nil {
		s.log.Warn("session output log failed; output is kept in memory only", "err", err)
		s.logf.Close()
		s.logf = nil
	}
}

func (s *session) compactLogLocked() error {
	var buf []byte
	for _, seg := range s.out.all() {
		buf = appendFrame(buf, seg)
	}
	path := outputPath(s.dir, s.info.ID)
	if err := atomicfile.Write(path, buf, 0o600, 0); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.logf.Close()
	s.logf, s.logSize = f, int64(len(buf))
	return nil
}

// wait reaps the process, records its exit, and closes the output once the
// pumps are done.
func (s *session) wait(cmd *exec.Cmd, pumps *sync.WaitGroup) {
	pumpsDone := make(chan struct{})
	go func() {
		pumps.Wait()
		close(pumpsDone)
	}()
	cmd.Wait()
	exitedAt := s.cfg.now()
	if s.pty == nil {
		s.closeStdin()
	}
	// Give the pumps a moment to read the last words on stderr for the
	// launch diagnostic; something the process left behind may hold its
	// output open for much longer.
	grace := time.NewTimer(s.cfg.drainGrace)
	select {
	case <-pumpsDone:
	case <-grace.C:
	}
	grace.Stop()
	s.recordExit(cmd.ProcessState, exitedAt)

	<-pumpsDone
	s.mu.Lock()
	s.outDone, s.stdinClosed = true, true
	if s.logf != nil {
		s.logf.Close()
		s.logf = nil
	}
	close(s.drained)
	s.broadcastLocked()
	s.mu.Unlock()
	if s.pty != nil {
		s.pty.Close()
	}
}

// recordExit stores how the process ended and, for an early exit, the
// launch diagnostic.
func (s *session) recordExit(ps *os.ProcessState, exitedAt time.Time) {
	s.mu.Lock()
	info := &s.info
	info.ExitedAt = exitedAt
	var ws syscall.WaitStatus
	if ps != nil {
		ws, _ = ps.Sys().(syscall.WaitStatus)
	}
	how := ""
	switch {
	case ps == nil:
		how = "ended (wait failed)"
		info.Diagnostics = append(info.Diagnostics, "the agent could not wait for the process: exit status unknown")
	case ws.Signaled():
		info.Signal = unix.SignalName(ws.Signal())
		if info.Signal == "" {
			info.Signal = fmt.Sprintf("signal %d", int(ws.Signal()))
		}
		how = "killed by " + info.Signal
	default:
		code := ps.ExitCode()
		info.ExitCode = &code
		how = fmt.Sprintf("exited %d", code)
	}
	info.State = StateExited
	if exitedAt.Sub(info.StartedAt) < s.cfg.earlyExit {
		if info.Signal != "" || info.ExitCode == nil || *info.ExitCode != 0 {
			info.State = StateFailed
		}
		info.Diagnostics = append(info.Diagnostics, launchDiagnostic(how, s.cfg.earlyExit, info.Mode, s.firstErr))
	}
	close(s.exited)
	s.broadcastLocked()
	summary := exitSummary(*info)
	s.mu.Unlock()
	s.log.Info("session exited", "how", summary)
	s.persist()
}

// launchDiagnostic reads like `exited 127 within 1s: stderr: "sh: 1: nosuch: not found"`.
func launchDiagnostic(how string, window time.Duration, mode Mode, first []byte) string {
	what := "stderr"
	if mode == ModeTTY {
		what = "terminal output"
	}
	text := strings.TrimSpace(string(first))
	if text == "" {
		return fmt.Sprintf("%s within %v, no %s", how, window, what)
	}
	return fmt.Sprintf("%s within %v: %s: %q", how, window, what, text)
}

// refresh notices that an orphaned session's process is gone.
func (s *session) refresh() {
	s.mu.Lock()
	if !s.info.Orphaned || s.info.State != StateRunning || alive(s.cfg.procRoot, s.info.PID, s.startTicks) {
		s.mu.Unlock()
		return
	}
	s.markGoneLocked()
	s.mu.Unlock()
	s.persist()
}

// markGoneLocked records that a process no agent waited for has ended.
func (s *session) markGoneLocked() {
	s.info.State = StateExited
	s.info.ExitedAt = s.cfg.now()
	s.info.Diagnostics = append(s.info.Diagnostics,
		"the process ended while no agent was its parent (agent restart or guest reboot): exit status unknown")
	close(s.exited)
	s.broadcastLocked()
}

func (s *session) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *session) name() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info.Name
}

// snapshot is a deep copy of the session's Info.
func (s *session) snapshot() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

func (s *session) snapshotLocked() Info {
	info := s.info
	info.Argv = slices.Clone(info.Argv)
	info.EnvKeys = slices.Clone(info.EnvKeys)
	info.Diagnostics = slices.Clone(info.Diagnostics)
	if info.ExitCode != nil {
		code := *info.ExitCode
		info.ExitCode = &code
	}
	info.AttachCount = s.attachCount
	info.OutputBytes = s.out.next
	info.BufferedFrom = s.out.oldest()
	return info
}

// persist writes the state file, logging a failure: the session goes on.
func (s *session) persist() {
	if err := s.persistErr(); err != nil {
		s.log.Warn("writing session state failed", "err", err)
	}
}

func (s *session) persistErr() error {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.mu.Lock()
	if s.discarded {
		s.mu.Unlock()
		return nil
	}
	rec := record{Version: stateVersion, Info: s.snapshotLocked(), StartTicks: s.startTicks, BootID: s.bootID}
	s.mu.Unlock()
	return writeRecord(s.dir, rec)
}

// writeStdin writes to the process's stdin (the terminal in TTY mode).
// Writes from several attachers do not interleave within one call.
func (s *session) writeStdin(p []byte) (int, error) {
	s.mu.Lock()
	f, closed, info := s.stdin, s.stdinClosed, s.info
	s.mu.Unlock()
	switch {
	case info.Orphaned:
		return 0, fmt.Errorf("%w: session %s: its stdin went with the previous agent; stop it and start it again", ErrOrphaned, info.ID)
	case info.State != StateRunning:
		return 0, fmt.Errorf("%w: session %s %s", ErrNotRunning, info.ID, exitSummary(info))
	case closed || f == nil:
		return 0, fmt.Errorf("%w: session %s: an attacher closed it (or the process is ending); start a new session to send more input", ErrStdinClosed, info.ID)
	}
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	n, err := f.Write(p)
	if err != nil {
		s.mu.Lock()
		closed = s.stdinClosed
		s.mu.Unlock()
		switch {
		case errors.Is(err, unix.EPIPE), errors.Is(err, unix.EIO):
			return n, fmt.Errorf("%w: session %s no longer reads its stdin: %v", ErrNotRunning, info.ID, err)
		case closed:
			return n, fmt.Errorf("%w: session %s", ErrStdinClosed, info.ID)
		}
		return n, fmt.Errorf("writing to session %s: %w", info.ID, err)
	}
	return n, nil
}

// closeStdin closes a pipe session's stdin; the process reads EOF.
func (s *session) closeStdin() error {
	s.mu.Lock()
	if s.stdinClosed || s.stdin == nil {
		s.mu.Unlock()
		return nil
	}
	s.stdinClosed = true
	f := s.stdin
	s.mu.Unlock()
	return f.Close()
}
