package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/journal"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
)

// Main is bangerd's entry point: `bangerd [--config FILE] [--log-to-stderr]` serves until
// SIGINT/SIGTERM; `bangerd version [--json]` prints the build.
func Main(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("bangerd", flag.ContinueOnError)
	fset.SetOutput(stderr)
	configFile := fset.String("config", "", "config file (default: $XDG_CONFIG_HOME/banger/config.toml)")
	toStderr := fset.Bool("log-to-stderr", false, "log to stderr (the journal under systemd) instead of the log file; implied when stderr is the journal stream (JOURNAL_STREAM)")
	fset.Usage = func() {
		fmt.Fprint(stderr, `bangerd is banger's daemon. The banger CLI starts it on demand; run it
yourself only under a service manager or to debug.

Usage:
  bangerd [--config FILE] [--log-to-stderr]
                              serve until SIGINT or SIGTERM
  bangerd version [--json]    print version and build id

Under systemd (packaging/systemd, `+"`man bangerd`"+`) it logs to the journal
and the CLI starts, stops and restarts it through systemctl.

Flags:
`)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 0 {
		switch fset.Arg(0) {
		case "version":
			return printVersion(fset.Args()[1:], stdout)
		default:
			fmt.Fprintf(stderr, "bangerd: unknown command %q: run `bangerd --help`\n", fset.Arg(0))
			return 2
		}
	}

	env := config.Env(os.LookupEnv)
	paths, err := config.DefaultPaths(env, os.Getuid())
	if err != nil {
		fmt.Fprintf(stderr, "bangerd: %v\n", err)
		return 1
	}
	if *configFile != "" {
		paths.ConfigFile = *configFile
	}
	cfg, err := config.Load(paths, env)
	if err != nil {
		fmt.Fprintf(stderr, "bangerd: %v\n", err)
		return 1
	}
	_, statErr := os.Stat(cfg.Paths.ConfigFile)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := Options{Config: cfg, ConfigFileFound: !errors.Is(statErr, fs.ErrNotExist), ManagedBy: managedBy(env)}
	if f, ok := stderr.(*os.File); *toStderr || (ok && journal.Connected(os.Getenv(journal.EnvStream), f)) {
		opts.LogTo = stderr
	}
	if err := Run(ctx, opts); err != nil {
		fmt.Fprintf(stderr, "bangerd: %v\n", err)
		return 1
	}
	return 0
}

// managedBy names the service manager that started this very process:
// systemd (since 248) sets SYSTEMD_EXEC_PID to the pid it executed, so a
// daemon the CLI spawned from inside some service's tree, which inherits
// the variable, is not taken for systemd's.
func managedBy(env config.Env) string {
	if pid, ok := env("SYSTEMD_EXEC_PID"); ok && pid == strconv.Itoa(os.Getpid()) {
		return "systemd"
	}
	return ""
}

func printVersion(args []string, stdout io.Writer) int {
	info := buildinfo.Get()
	if len(args) > 0 && args[0] == "--json" {
		json.NewEncoder(stdout).Encode(info)
		return 0
	}
	fmt.Fprintf(stdout, "bangerd %s (build %s)\n", info.Version, info.BuildID)
	return 0
}
