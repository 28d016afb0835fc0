// Package daemonctl starts, stops and refreshes bangerd on behalf of the
// CLI: it starts the daemon on demand, waits until it answers, restarts it
// when the installed bangerd was rebuilt (a different build id), and reports
// a daemon that fails to start with the reason it printed.
package daemonctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/localsock"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
	"github.com/bangerdev/banger/internal/shared/poll"
)

// Controller manages the daemon for one set of paths.
type Controller struct {
	Paths config.Paths
	// DaemonBin is the bangerd to run; see FindDaemon.
	DaemonBin string
	// ConfigFile is passed to the daemon so it reads what the CLI read.
	ConfigFile string
	// Notices receives one-line notes (a stale daemon restarted). Starting
	// on demand is silent: it is what every command expects.
	Notices io.Writer
	// StartTimeout bounds how long Start waits for the socket to answer.
	StartTimeout time.Duration
	// ConfigErr, when set, is why the config file does not load; Paths
	// are then what could be read of it (config.ReadDirs). Status and
	// Stop work as ever, so a daemon running with the old configuration
	// can be inspected and stopped; Start and Restart refuse with a
	// *ConfigError, and Ensure neither starts a daemon nor replaces a
	// stale one, since the new one would refuse the file.
	ConfigErr error
	// Unit, when set, is bangerd's systemd service for this user (see
	// FindUnit). While systemd manages it (Unit.Manages), Start, Stop and
	// Restart go through systemctl and no daemon is ever spawned here.
	Unit *Unit
}

// ConfigError is Start's and Restart's refusal while the config file is
// broken: nothing was started or stopped.
type ConfigError struct {
	Action string // "starting", "restarting"
	Socket string // where the daemon was looked for
	// Running is the daemon that goes on running, if one does.
	Running *api.DaemonStatus
	Err     error // the config file's problem
}

func (e *ConfigError) Error() string {
	where := fmt.Sprintf("none answers on %s", e.Socket)
	if e.Running != nil {
		where = fmt.Sprintf("the running one, pid %d, goes on with the config it started with", e.Running.PID)
	}
	return fmt.Sprintf("not %s bangerd (%s): %v; fix the file and check it with `banger config validate`", e.Action, where, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// refuse returns the *ConfigError for action when the config is broken.
func (c *Controller) refuse(ctx context.Context, action string) error {
	if c.ConfigErr == nil {
		return nil
	}
	e := &ConfigError{Action: action, Socket: c.Paths.Socket(), Err: c.ConfigErr}
	if st, err := c.Status(ctx); err == nil {
		e.Running = &st
	}
	return e
}

// FindDaemon returns the bangerd beside the running executable, or the one
// on PATH.
func FindDaemon() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "bangerd")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("bangerd")
	if err != nil {
		return "", api.Errorf(api.CodeFailedPrecondition,
			"bangerd is not installed next to banger or on PATH: run `make install`, or add the directory holding bangerd to PATH")
	}
	return p, nil
}

func (c *Controller) client() *client.Client { return client.New(c.Paths.Socket()) }

// Status returns the running daemon's status, or an error satisfying
// client.IsNotRunning when none runs.
func (c *Controller) Status(ctx context.Context) (api.DaemonStatus, error) {
	cl := c.client()
	defer cl.Close()
	return cl.DaemonStatus(ctx)
}

// InstalledBuild asks the installed bangerd for its build.
func (c *Controller) InstalledBuild(ctx context.Context) (buildinfo.Info, error) {
	var info buildinfo.Info
	if c.DaemonBin == "" {
		return info, errors.New("no bangerd binary configured")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.DaemonBin, "version", "--json").Output()
	if err != nil {
		return info, fmt.Errorf("asking %s for its version: %w", c.DaemonBin, err)
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return info, fmt.Errorf("reading %s version: %w", c.DaemonBin, err)
	}
	return info, nil
}

// Ensure returns a client of a running, up-to-date daemon: it starts one
// when none runs and replaces one whose build differs from the installed
// bangerd.
func (c *Controller) Ensure(ctx context.Context) (*client.Client, error) {
	st, err := c.Status(ctx)
	switch {
	case client.IsNotRunning(err):
		if _, err := c.Start(ctx); err != nil {
			return nil, err
		}
		return c.client(), nil
	case err != nil:
		return nil, err
	}
	if c.ConfigErr != nil {
		// Replacing a stale daemon would stop it and then fail to start.
		return c.client(), nil
	}
	if c.DaemonBin == "" || (c.DaemonBin == st.Executable && buildinfo.FileStamp(c.DaemonBin) == st.ExecutableStamp) {
		// The daemon runs the very file that is installed.
		return c.client(), nil
	}
	installed, err := c.InstalledBuild(ctx)
	if err != nil {
		// The running daemon still works; say why it was not checked.
		fmt.Fprintf(c.Notices, "banger: could not check whether bangerd is current: %v\n", err)
		return c.client(), nil
	}
	if installed.BuildID == st.BuildID {
		return c.client(), nil
	}
	fmt.Fprintf(c.Notices, "banger: bangerd build %s (pid %d) is stale, installed is %s: restarting it\n",
		st.BuildID, st.PID, installed.BuildID)
	if err := c.Stop(ctx); err != nil {
		return nil, fmt.Errorf("stopping stale bangerd: %w", err)
	}
	if _, err := c.Start(ctx); err != nil {
		return nil, err
	}
	return c.client(), nil
}

// OutFile is where a spawned daemon's stdout and stderr go; startup
// failures are read back from it.
func (c *Controller) OutFile() string { return filepath.Join(c.Paths.StateDir, "bangerd.out") }

// Start spawns bangerd in its own session (so it outlives the CLI and its
// terminal) and waits until it answers. A daemon that exits first is
// reported with the last thing it printed. While the config file is
// broken it refuses (see ConfigErr).
func (c *Controller) Start(ctx context.Context) (api.DaemonStatus, error) {
	if err := c.refuse(ctx, "starting"); err != nil {
		return api.DaemonStatus{}, err
	}
	if c.DaemonBin == "" {
		bin, err := FindDaemon()
		if err != nil {
			return api.DaemonStatus{}, err
		}
		c.DaemonBin = bin
	}
	if err := localsock.EnsurePrivateDir(c.Paths.StateDir); err != nil {
		return api.DaemonStatus{}, err
	}
	// Several banger commands may find no daemon at once: one starts it,
	// the others wait for the lock and then find it answering.
	unlock, err := c.startLock(ctx)
	if err != nil {
		return api.DaemonStatus{}, err
	}
	defer unlock()
	if st, err := c.Status(ctx); err == nil {
		return st, nil
	}
	if c.Unit.Manages(ctx) {
		return c.startUnit(ctx, "start", 0)
	}
	out, err := localsock.OpenPrivateFile(c.OutFile(), os.O_WRONLY)
	if err != nil {
		return api.DaemonStatus{}, err
	}
	defer out.Close()
	if err := out.Truncate(0); err != nil {
		return api.DaemonStatus{}, fmt.Errorf("emptying %s: %w", c.OutFile(), err)
	}
	args := []string{}
	if c.ConfigFile != "" {
		args = append(args, "--config", c.ConfigFile)
	}
	cmd := exec.Command(c.DaemonBin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return api.DaemonStatus{}, fmt.Errorf("starting %s: %w", c.DaemonBin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	timeout := c.StartTimeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.Status(ctx)
		if err == nil {
			return st, nil
		}
		select {
		case werr := <-exited:
			return api.DaemonStatus{}, api.Errorf(api.CodeUnavailable, "bangerd failed to start (%v): %s",
				werr, lastLine(c.OutFile()))
		case <-ctx.Done():
			return api.DaemonStatus{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return api.DaemonStatus{}, api.Errorf(api.CodeUnavailable,
				"bangerd did not answer on %s within %s; its output is in %s and its log in %s",
				c.Paths.Socket(), timeout, c.OutFile(), c.Paths.LogFile())
		}
	}
}

// startLock takes the lock that serialises starting the daemon; the
// kernel drops it if the holder dies. The runtime directory it lives in is
// checked first (it must be the user's alone), so a directory or link
// another user planted is refused before anything is created in it.
func (c *Controller) startLock(ctx context.Context) (func(), error) {
	if err := localsock.EnsurePrivateDir(c.Paths.RuntimeDir); err != nil {
		return nil, err
	}
	path := c.Paths.StartLock()
	deadline := time.Now().Add(time.Minute)
	var l *localsock.Lock
	err := poll.Until(ctx, 20*time.Millisecond, func() (bool, error) {
		var err error
		l, err = localsock.TryLock(path)
		if err == nil {
			return true, nil
		}
		var held *localsock.HeldError
		if !errors.As(err, &held) {
			return false, err
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("waiting for another banger to start bangerd: %w", err)
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return l.Release, nil
}

// Restart stops the daemon if it runs and starts it again. While the
// config file is broken it refuses before stopping anything.
func (c *Controller) Restart(ctx context.Context) (api.DaemonStatus, error) {
	if err := c.refuse(ctx, "restarting"); err != nil {
		return api.DaemonStatus{}, err
	}
	st, err := c.Status(ctx)
	if err != nil && !client.IsNotRunning(err) {
		return api.DaemonStatus{}, err
	}
	running := err == nil
	if c.Unit.Manages(ctx) {
		old := 0
		if running && st.ManagedBy == "systemd" {
			old = st.PID
		} else if running {
			// A daemon banger spawned before the unit was enabled: the
			// unit's would find its store locked.
			if err := c.Stop(ctx); err != nil && !client.IsNotRunning(err) {
				return api.DaemonStatus{}, err
			}
		}
		return c.startUnit(ctx, "restart", old)
	}
	if err := c.Stop(ctx); err != nil && !client.IsNotRunning(err) {
		return api.DaemonStatus{}, err
	}
	return c.Start(ctx)
}

// startUnit runs `systemctl start` or `restart` and waits until a daemon
// other than pid old answers on the socket.
func (c *Controller) startUnit(ctx context.Context, verb string, old int) (api.DaemonStatus, error) {
	if err := c.Unit.Do(ctx, verb); err != nil {
		return api.DaemonStatus{}, err
	}
	timeout := c.StartTimeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	deadline := time.Now().Add(timeout)
	var st api.DaemonStatus
	err := poll.Until(ctx, 20*time.Millisecond, func() (bool, error) {
		var err error
		st, err = c.Status(ctx)
		if err == nil && st.PID != old {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, api.Errorf(api.CodeUnavailable,
				"%s succeeded but no bangerd answers on %s within %s: see `%s` and `%s`; the unit serves the default paths, so a BANGER_HOME, XDG_RUNTIME_DIR or config file of this shell's own puts banger's socket elsewhere",
				c.Unit.Command(verb), c.Paths.Socket(), timeout, c.Unit.Command("status"), c.Unit.Journal())
		}
		return false, nil
	})
	return st, err
}

// Stop asks the daemon to shut down and waits until its process is gone.
// It returns an error satisfying client.IsNotRunning when none runs.
func (c *Controller) Stop(ctx context.Context) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	logAt := c.Paths.LogFile()
	if st.ManagedBy == "systemd" && c.Unit != nil {
		logAt = "`" + c.Unit.Journal() + "`"
		// Through systemd, so that it records the unit stopped rather
		// than, on a later failure, restarting a daemon asked to stop.
		if err := c.Unit.Do(ctx, "stop"); err != nil {
			return err
		}
	} else {
		cl := c.client()
		defer cl.Close()
		if err := cl.Shutdown(ctx, "banger daemon stop"); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	return poll.Until(ctx, 20*time.Millisecond, func() (bool, error) {
		if !processAlive(st.PID) {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, api.Errorf(api.CodeUnavailable, "bangerd (pid %d) did not exit within 30s: see %s, or `kill %d`",
				st.PID, logAt, st.PID)
		}
		return false, nil
	})
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A zombie is dead for our purposes (its parent may be us), once its
	// threads are: the thread-group leader shows Z as soon as it exited
	// itself, while the daemon's other threads may still be closing its
	// files (the socket, the instance lock) and a daemon started now would
	// find them held.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		return err == nil && len(tasks) > 1
	}
	return true
}

func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no output"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 0 || lines[len(lines)-1] == "" {
		return "no output; see " + path
	}
	return lines[len(lines)-1]
}
