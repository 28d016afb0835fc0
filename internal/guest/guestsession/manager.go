package guestsession

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// config is the Manager's settings; Options change it.
type config struct {
	ringSize     int
	earlyExit    time.Duration
	defaultCwd   []string
	baseEnv      []string
	now          func() time.Time
	pollInterval time.Duration
	drainGrace   time.Duration
	procRoot     string
}

func defaultConfig() config {
	return config{
		ringSize:   1 << 20,
		earlyExit:  time.Second,
		defaultCwd: []string{"/root/repo", "/root"},
		baseEnv: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/root",
			"USER=root",
			"LANG=C.UTF-8",
		},
		now:          time.Now,
		pollInterval: 250 * time.Millisecond,
		drainGrace:   500 * time.Millisecond,
		procRoot:     "/proc",
	}
}

// Option changes a Manager's defaults.
type Option func(*config)

// WithRingSize sets how many bytes of each session's newest output are kept
// for replay (default 1 MiB). The output log in the state dir holds up to
// about twice that.
func WithRingSize(n int) Option { return func(c *config) { c.ringSize = n } }

// WithEarlyExitWindow sets how soon after its start a process must exit for
// its exit to count as a launch failure and leave a diagnostic (default 1s;
// 0 turns early-exit diagnostics off).
func WithEarlyExitWindow(d time.Duration) Option { return func(c *config) { c.earlyExit = d } }

// WithDefaultCwd sets the directories tried, in order, for a Spec without a
// Cwd (default /root/repo, then /root).
func WithDefaultCwd(dirs ...string) Option {
	return func(c *config) { c.defaultCwd = slices.Clone(dirs) }
}

// WithBaseEnv sets the KEY=VAL environment every session starts from,
// before Spec.Env (default: a root login's PATH, HOME, USER and LANG).
func WithBaseEnv(env []string) Option {
	return func(c *config) { c.baseEnv = slices.Clone(env) }
}

// WithClock sets the clock for start and exit times (default time.Now);
// whether an exit was early is measured on it too.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithPollInterval sets how often Wait checks on an orphaned session's
// process, which the agent cannot wait for (default 250ms).
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.pollInterval = d } }

// Manager runs the guest's sessions and keeps their state in one directory.
// It is safe for concurrent use.
type Manager struct {
	dir    string
	log    *slog.Logger
	cfg    config
	bootID string

	mu       sync.Mutex
	sessions map[string]*session // by id
}

// NewManager opens the session state dir (creating it) and loads the
// sessions a previous agent left there: one whose process still runs comes
// back as running and Orphaned, any other as exited. See the package
// documentation for what survives what.
func NewManager(stateDir string, log *slog.Logger, opts ...Option) (*Manager, error) {
	if stateDir == "" {
		return nil, errors.New("session state dir is empty: give a directory such as /run/banger/sessions")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.ringSize <= 0 {
		return nil, fmt.Errorf("ring size %d: give a positive number of bytes", cfg.ringSize)
	}
	if cfg.pollInterval <= 0 {
		return nil, fmt.Errorf("poll interval %v: give a positive duration", cfg.pollInterval)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating session state dir %s: %w", stateDir, err)
	}
	m := &Manager{
		dir:      stateDir,
		log:      log,
		cfg:      cfg,
		bootID:   readBootID(cfg.procRoot),
		sessions: map[string]*session{},
	}
	recs, bad, err := readRecords(stateDir)
	if err != nil {
		return nil, fmt.Errorf("reading session state dir %s: %w", stateDir, err)
	}
	for _, err := range bad {
		log.Warn("skipping unreadable session state file", "err", err)
	}
	for _, rec := range recs {
		s := m.load(rec)
		m.sessions[s.info.ID] = s
	}
	return m, nil
}

// load turns a state file into a session that no agent goroutine feeds:
// its output is what the output log kept.
func (m *Manager) load(rec record) *session {
	s := m.newSession(rec.Info.ID, rec.Info.Mode)
	s.info = rec.Info
	s.info.AttachCount = 0
	s.startTicks, s.bootID = rec.StartTicks, rec.BootID
	if err := readOutputLog(outputPath(m.dir, rec.Info.ID), s.out); err != nil {
		m.log.Warn("session output log unreadable", "id", rec.Info.ID, "err", err)
	}
	if len(s.out.all()) == 0 && s.out.next < rec.Info.OutputBytes {
		// The log is gone: keep the offsets, so attachers see a gap.
		s.out.addAt(rec.Info.OutputBytes, StreamStdout, nil)
	}
	s.outDone, s.stdinClosed = true, true
	close(s.drained)
	switch {
	case s.info.State != StateRunning:
		close(s.exited)
	case rec.BootID == m.bootID && alive(m.cfg.procRoot, rec.Info.PID, rec.StartTicks):
		if !s.info.Orphaned {
			s.info.Orphaned = true
			s.info.Diagnostics = append(s.info.Diagnostics, fmt.Sprintf(
				"agent restarted at %s: output after that is not captured and stdin is gone; stop the session and start it again to capture it",
				m.cfg.now().UTC().Format(time.RFC3339)))
		}
		m.log.Info("adopted orphaned session", "id", s.info.ID, "pid", s.info.PID)
	default:
		s.markGoneLocked()
	}
	s.persist()
	return s
}

// Start preflights spec and launches it. A spec that fails its checks
// returns an ErrInvalidSpec error or a *PreflightError and creates nothing.
// Start returns once the process runs; WaitEarly waits out the early-exit
// window.
func (m *Manager) Start(ctx context.Context, spec Spec) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	l, err := m.preflight(spec)
	if err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if spec.Name != "" {
		for _, other := range m.sessions {
			if info := other.snapshot(); info.Name == spec.Name {
				return Info{}, fmt.Errorf("%w: %q belongs to session %s (%s): pick another name or remove that session",
					ErrNameInUse, spec.Name, info.ID, info.State)
			}
		}
	}
	id, err := newID()
	if err != nil {
		return Info{}, err
	}
	s := m.newSession(id, l.spec.Mode)
	if err := s.start(l); err != nil {
		return Info{}, err
	}
	m.sessions[id] = s
	info := s.snapshot()
	m.log.Info("session started", "id", id, "name", info.Name, "mode", info.Mode, "pid", info.PID, "argv", info.Argv)
	return info, nil
}

// List returns every session, oldest first.
func (m *Manager) List() []Info {
	m.mu.Lock()
	all := make([]*session, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	m.mu.Unlock()
	infos := make([]Info, 0, len(all))
	for _, s := range all {
		s.refresh()
		infos = append(infos, s.snapshot())
	}
	slices.SortFunc(infos, func(a, b Info) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return infos
}

// Get returns one session, by id or name.
func (m *Manager) Get(idOrName string) (Info, error) {
	s, err := m.lookup(idOrName)
	if err != nil {
		return Info{}, err
	}
	s.refresh()
	return s.snapshot(), nil
}

// Wait blocks until the session's process has exited (or ctx ends) and
// returns its Info.
func (m *Manager) Wait(ctx context.Context, idOrName string) (Info, error) {
	s, err := m.lookup(idOrName)
	if err != nil {
		return Info{}, err
	}
	var tick <-chan time.Time
	if s.snapshot().Orphaned {
		t := time.NewTicker(m.cfg.pollInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		s.refresh()
		select {
		case <-s.exited:
			return s.snapshot(), nil
		case <-ctx.Done():
			return Info{}, ctx.Err()
		case <-tick:
		}
	}
}

// WaitEarly blocks until the session's process exits or its early-exit
// window (counted from StartedAt) is over, whichever comes first, and
// returns its Info: a CLI calls it after Start to report a command that
// dies at launch, with its Diagnostics, at once.
func (m *Manager) WaitEarly(ctx context.Context, idOrName string) (Info, error) {
	s, err := m.lookup(idOrName)
	if err != nil {
		return Info{}, err
	}
	s.refresh()
	remaining := s.snapshot().StartedAt.Add(m.cfg.earlyExit).Sub(m.cfg.now())
	if remaining > 0 {
		t := time.NewTimer(remaining)
		defer t.Stop()
		select {
		case <-s.exited:
		case <-t.C:
		case <-ctx.Done():
			return Info{}, ctx.Err()
		}
	}
	s.refresh()
	return s.snapshot(), nil
}

// Signal sends sig to the session's process group: stop is SIGTERM, kill
// is SIGKILL. It also reaches what is left of a group whose leader already
// exited while the group still holds the session's output open.
func (m *Manager) Signal(idOrName string, sig syscall.Signal) error {
	s, err := m.lookup(idOrName)
	if err != nil {
		return err
	}
	s.refresh()
	s.mu.Lock()
	info := s.info
	lingering := info.State != StateRunning && !s.outDone
	s.mu.Unlock()
	if info.State != StateRunning && !lingering {
		return fmt.Errorf("%w: session %s already %s (%s)", ErrNotRunning, info.ID, info.State, exitSummary(info))
	}
	name := unix.SignalName(sig)
	if name == "" {
		name = fmt.Sprintf("signal %d", int(sig))
	}
	if err := unix.Kill(-info.PID, sig); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("%w: session %s has no process left in group %d", ErrNotRunning, info.ID, info.PID)
		}
		return fmt.Errorf("sending %s to session %s (process group %d): %w", name, info.ID, info.PID, err)
	}
	m.log.Info("session signalled", "id", info.ID, "signal", name, "pgid", info.PID)
	return nil
}

// Remove forgets an ended session and deletes its state and output log.
func (m *Manager) Remove(idOrName string) error {
	s, err := m.lookup(idOrName)
	if err != nil {
		return err
	}
	s.refresh()
	// Holding persistMu while setting discarded means no write of the
	// state file is under way or can follow.
	s.persistMu.Lock()
	s.mu.Lock()
	id, busy := s.info.ID, s.info.State == StateRunning || !s.outDone
	if !busy {
		s.discarded = true
	}
	s.mu.Unlock()
	s.persistMu.Unlock()
	if busy {
		return fmt.Errorf("%w: session %s: stop it first (banger vm session stop), then remove it", ErrStillRunning, id)
	}
	m.mu.Lock()
	delete(m.sessions, id)
	m.mu.Unlock()
	for _, p := range []string{statePath(m.dir, id), outputPath(m.dir, id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing session %s: %w", id, err)
		}
	}
	return nil
}

// lookup finds a session by id, then by name.
func (m *Manager) lookup(idOrName string) (*session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.sessions[idOrName]; ok {
		return s, nil
	}
	for _, s := range m.sessions {
		if s.name() == idOrName && idOrName != "" {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: no session %q: list them with banger vm session list", ErrNotFound, idOrName)
}

func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a session id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// exitSummary says how a session ended, for messages.
func exitSummary(info Info) string {
	switch {
	case info.State == StateRunning:
		return "running"
	case info.Signal != "":
		return "killed by " + info.Signal
	case info.ExitCode != nil:
		return fmt.Sprintf("exit code %d", *info.ExitCode)
	default:
		return "exit status unknown"
	}
}
