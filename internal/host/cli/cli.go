// Package cli is the banger command line: one small file per command, each
// parsing flags, calling the daemon through the typed client, and printing.
// Results go to the injected stdout, diagnostics to stderr; nothing here
// touches the store or the host directly.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemonctl"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netns"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// App is what every command shares: standard streams, the environment and
// the lazily loaded configuration.
type App struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Env    config.Env
	UID    int
	// DaemonBin overrides the bangerd lookup (tests).
	DaemonBin string

	configFlag string
	cfg        *config.Config
	cfgFound   bool
	// netNS, when set, is the network namespace `host setup` and doctor
	// act on instead of this process's own (tests).
	netNS *netns.NsHandle
}

// exitError carries a specific exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// usageError marks a mistake in how the command was called.
func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// withClient makes a command's RunE that gets a client of a running,
// current daemon and closes it afterwards.
func withClient(app *App, fn func(ctx context.Context, cl *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		cl, err := app.Client(c.Context())
		if err != nil {
			return err
		}
		defer cl.Close()
		return fn(c.Context(), cl, args)
	}
}

// Run executes the command line and returns the process exit code.
func Run(ctx context.Context, args []string, app *App) int {
	root := newRootCmd(app)
	root.SetArgs(args)
	root.SetIn(app.Stdin)
	root.SetOut(app.Stdout)
	root.SetErr(app.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	err = withFlagNames(cmd, err) // a field error names the flag (fields.go)
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(app.Stderr, "banger: %s\n", termsafe.Text(ee.err.Error()))
		}
		return ee.code
	}
	if strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintf(app.Stderr, "banger: %v: see `banger --help`\n", err)
		return ExitUsage
	}
	// An error may carry a guest's words (the agent refusing a command, a
	// session's diagnostics): escaped, so they cannot drive the terminal.
	fmt.Fprintf(app.Stderr, "banger: %s\n", termsafe.Text(err.Error()))
	return ExitError
}

// Config loads the configuration once: environment, then the file.
func (a *App) Config() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	paths, err := a.paths()
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(paths, a.Env)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(paths.ConfigFile)
	a.cfg, a.cfgFound = cfg, !errors.Is(statErr, fs.ErrNotExist)
	return cfg, nil
}

func (a *App) paths() (config.Paths, error) {
	paths, err := config.DefaultPaths(a.Env, a.UID)
	if err != nil {
		return paths, err
	}
	if a.configFlag != "" {
		paths.ConfigFile = a.configFlag
	}
	return paths, nil
}

// controller returns the daemon controller for the loaded configuration.
func (a *App) controller() (*daemonctl.Controller, error) {
	cfg, err := a.Config()
	if err != nil {
		return nil, err
	}
	return a.controllerFor(cfg.Paths), nil
}

// controllerFor returns the daemon controller for paths.
func (a *App) controllerFor(paths config.Paths) *daemonctl.Controller {
	bin := a.DaemonBin
	if bin == "" {
		if found, err := daemonctl.FindDaemon(); err == nil {
			bin = found
		}
	}
	return &daemonctl.Controller{
		Paths:      paths,
		DaemonBin:  bin,
		ConfigFile: paths.ConfigFile,
		Notices:    a.Stderr,
		Unit:       daemonctl.FindUnit(a.Env, a.UID),
	}
}

// Client returns a client of a running, current daemon, starting or
// restarting it as needed.
func (a *App) Client(ctx context.Context) (*client.Client, error) {
	ctl, err := a.controller()
	if err != nil {
		return nil, err
	}
	return ctl.Ensure(ctx)
}
