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
	"syscall"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
)

// Main is bangerd's entry point: `bangerd [--config FILE]` serves until
// SIGINT/SIGTERM; `bangerd version [--json]` prints the build.
func Main(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("bangerd", flag.ContinueOnError)
	fset.SetOutput(stderr)
	configFile := fset.String("config", "", "config file (default: $XDG_CONFIG_HOME/banger/config.toml)")
	fset.Usage = func() {
		fmt.Fprint(stderr, `bangerd is banger's daemon. The banger CLI starts it on demand; run it
yourself only under a service manager or to debug.

Usage:
  bangerd [--config FILE]     serve until SIGINT or SIGTERM
  bangerd version [--json]    print version and build id

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
	if err := Run(ctx, Options{Config: cfg, ConfigFileFound: !errors.Is(statErr, fs.ErrNotExist)}); err != nil {
		fmt.Fprintf(stderr, "bangerd: %v\n", err)
		return 1
	}
	return 0
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
