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
// from it. With warn, a warning on stderr then says what is broken and
// where, which socket and log are used, and how to check the file. An
// error in the environment (BANGER_HOME, HOME) is still err: without it
// there is no default to fall back on.
func (a *App) lifecyclePaths(warn bool) (paths config.Paths, cfgErr, err error) {
	cfg, err := a.Config()
	if err == nil {
		return cfg.Paths, nil, nil
	}
	var bad *config.Error
	if !errors.As(err, &bad) {
		return config.Paths{}, nil, err
	}
	base, perr := a.paths()
	if perr != nil {
		return config.Paths{}, nil, perr
	}
	paths, fromFile := config.ReadDirs(base, a.Env)
	if warn {
		var from []string
		for _, key := range []string{"runtime_dir", "state_dir"} {
			if slices.Contains(fromFile, key) {
				from = append(from, key+" from the file")
			} else {
				from = append(from, key+" default")
			}
		}
		fmt.Fprintf(a.Stderr, "banger: warning: the config file is broken, so only its directories are read: %v\n", err)
		fmt.Fprintf(a.Stderr, "banger: warning: using the socket %s and the log %s (%s); check the file with `banger config validate`\n",
			paths.Socket(), paths.LogFile(), strings.Join(from, ", "))
	}
	return paths, err, nil
}

// lifecycleController is the daemon controller of the lifecycle commands
// (see lifecyclePaths): with a broken config file it carries the file's
// error, so that it never starts a daemon that would refuse the file nor
// stops one to restart it.
func (a *App) lifecycleController(warn bool) (*daemonctl.Controller, error) {
	paths, cfgErr, err := a.lifecyclePaths(warn)
	if err != nil {
		return nil, err
	}
	ctl := a.controllerFor(paths)
	ctl.ConfigErr = cfgErr
	return ctl, nil
}
