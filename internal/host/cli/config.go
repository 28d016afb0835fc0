package cli

import (
	"fmt"
	"github.com/bangerdev/banger/internal/host/config"

	"github.com/spf13/cobra"
)

func newConfigCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Show, locate and validate the configuration",
		Long: `banger reads $XDG_CONFIG_HOME/banger/config.toml (or the file named by
--config or $BANGER_CONFIG). Every key is optional; BANGER_HOME roots all of
banger's directories in one place, which is what tests use.`,
		Example: "  banger config show\n  banger config path\n  banger config validate",
	}
	c.AddCommand(newConfigShowCmd(app), newConfigPathCmd(app), newConfigValidateCmd(app))
	return c
}

func newConfigShowCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration, defaults included",
		Long: `Print every key with its effective value. The TOML output is a valid config
file: redirect it to start your own.`,
		Example: "  banger config show\n  banger config show > ~/.config/banger/config.toml\n  banger config show --json",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, cfg)
			}
			b, err := cfg.TOML()
			if err != nil {
				return err
			}
			_, err = app.Stdout.Write(b)
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (with the resolved directories)")
	return c
}

func newConfigPathCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "path",
		Short:   "Print where banger keeps its config, data, state and socket",
		Example: "  banger config path\n  banger config path --json",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			// A broken config file still has a path, which is what its
			// user is looking for: the paths print without the file,
			// then the error.
			cfg, cfgErr := app.Config()
			var p config.Paths
			if cfgErr == nil {
				p = cfg.Paths
			} else {
				var err error
				if p, err = app.paths(); err != nil {
					return err
				}
				cfgErr = fmt.Errorf("%w (the paths above leave out the file's data_dir, state_dir and runtime_dir)", cfgErr)
			}
			if err := printPaths(app, p, asJSON); err != nil {
				return err
			}
			return cfgErr
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// printPaths prints where banger keeps its files.
func printPaths(app *App, p config.Paths, asJSON bool) error {
	if asJSON {
		return printJSON(app.Stdout, map[string]string{
			"config_file": p.ConfigFile, "data_dir": p.DataDir, "state_dir": p.StateDir,
			"runtime_dir": p.RuntimeDir, "socket": p.Socket(), "store": p.DBFile(), "log_file": p.LogFile(),
		})
	}
	t := newTable(app.Stdout, "WHAT", "PATH")
	t.row("config", p.ConfigFile)
	t.row("data", p.DataDir)
	t.row("state", p.StateDir)
	t.row("runtime", p.RuntimeDir)
	t.row("socket", p.Socket())
	t.row("store", p.DBFile())
	t.row("log", p.LogFile())
	return t.flush()
}

func newConfigValidateCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the config file and report the first problem",
		Long: `Load the config file the way bangerd does and report the first problem: the
key, the bad value and the accepted form. Exits non-zero on a problem.`,
		Example: "  banger config validate\n  banger --config ./test.toml config validate",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			if !app.cfgFound {
				_, err = fmt.Fprintf(app.Stdout, "no config file at %s: the defaults apply (see `banger config show`)\n", cfg.Paths.ConfigFile)
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "%s is valid\n", cfg.Paths.ConfigFile)
			return err
		},
	}
}
