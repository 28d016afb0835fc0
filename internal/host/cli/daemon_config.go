package cli

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemonctl"
)

// lifecyclePaths are the paths of the daemon lifecycle commands (daemon
// start, stop, restart, status, logs). These must work while the config
// file is broken, so that a daemon still running with the old file can be
// inspected and stopped: when the file does not load, cfgErr is its
// problem and paths are the directories config.ReadDirs could still read
// from it, and warn prints a warning on stderr that says what is broken
// and where, which socket and log are used, and how to check the file (a
// no-op when the file loads). A command calls warn once it goes on with
// those paths; a refusal says it all in its one line instead. An error in
// the environment (BANGER_HOME, HOME) is still err: without it there is no
// default to fall back on.
func (a *App) lifecyclePaths() (paths config.Paths, cfgErr error, warn func(), err error) {
	cfg, err := a.Config()
	if err == nil {
		return cfg.Paths, nil, func() {}, nil
	}
	var bad *config.Error
	if !errors.As(err, &bad) {
		return config.Paths{}, nil, nil, err
	}
	cfgErr = err
	base, perr := a.paths()
	if perr != nil {
		return config.Paths{}, nil, nil, perr
	}
	paths, fromFile := config.ReadDirs(base, a.Env)
	var from []string
	for _, key := range []string{"runtime_dir", "state_dir"} {
		if slices.Contains(fromFile, key) {
			from = append(from, key+" from the file")
		} else {
			from = append(from, key+" default")
		}
	}
	warn = func() {
		fmt.Fprintf(a.Stderr, "banger: warning: the config file is broken, so only its directories are read: %v\n", cfgErr)
		fmt.Fprintf(a.Stderr, "banger: warning: using the socket %s and the log %s (%s); check the file with `banger config validate`\n",
			paths.Socket(), paths.LogFile(), strings.Join(from, ", "))
	}
	return paths, cfgErr, warn, nil
}

// lifecycleController is the daemon controller of the lifecycle commands
// and their warning (see lifecyclePaths): with a broken config file it
// carries the file's error, so that it never starts a daemon that would
// refuse the file nor stops one to restart it.
func (a *App) lifecycleController() (*daemonctl.Controller, func(), error) {
	paths, cfgErr, warn, err := a.lifecyclePaths()
	if err != nil {
		return nil, nil, err
	}
	ctl := a.controllerFor(paths)
	ctl.ConfigErr = cfgErr
	return ctl, warn, nil
}
