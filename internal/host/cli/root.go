package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newRootCmd(app *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "banger",
		Short: "Disposable microVMs for coding agents",
		Long: `banger runs coding agents (opencode, Claude Code, pi) and other untrusted work
in disposable microVMs on this Linux host, against a copy of your repository.

The banger CLI talks to bangerd, a daemon it starts on demand.`,
		Example: `  banger doctor                 check this host
  banger daemon status          show the daemon
  banger config show            print the effective configuration`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
	}
	root.PersistentFlags().StringVar(&app.configFlag, "config", "", "config file (default $XDG_CONFIG_HOME/banger/config.toml, or $BANGER_CONFIG)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError("%s (see `%s --help`)", flagErrorText(err), c.CommandPath())
	})
	root.AddGroup(
		&cobra.Group{ID: "work", Title: "Working with VMs:"},
		&cobra.Group{ID: "host", Title: "Host and daemon:"},
	)
	for _, c := range []*cobra.Command{newVMCmd(app), newImageCmd(app), newTUICmd(app), newWebCmd(app)} {
		c.GroupID = "work"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		newDaemonCmd(app),
		newDoctorCmd(app),
		newConfigCmd(app),
		newOperationCmd(app),
		newEventsCmd(app),
		newBenchCmd(app),
		newVerifyCmd(app),
		newHostCmd(app),
		newVersionCmd(app),
	} {
		c.GroupID = "host"
		root.AddCommand(c)
	}
	root.SetCompletionCommandGroupID("host")
	root.AddCommand(newManCmd())
	for _, c := range root.Commands() {
		if c.HasSubCommands() {
			rejectUnknownSubcommands(c)
		}
	}
	return root
}

// rejectUnknownSubcommands makes a command group fail on a word it does not
// know (cobra would print help and exit 0) and show help when called bare.
func rejectUnknownSubcommands(c *cobra.Command) {
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError("unknown command %q for %q: see `%s --help`", args[0], c.CommandPath(), c.CommandPath())
		}
		return c.Help()
	}
}

// noArgs rejects positional arguments with a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("%s takes no arguments, got %q (see `%s --help`)", c.CommandPath(), args[0], c.CommandPath())
	}
	return nil
}

// exactArgs wants n positional arguments, named in the error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError("%s wants %s (see `%s --help`)", c.CommandPath(), names, c.CommandPath())
		}
		return nil
	}
}

// rangeArgs wants between lo and hi positional arguments, named in the
// error.
func rangeArgs(lo, hi int, names string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageError("%s wants %s (see `%s --help`)", c.CommandPath(), names, c.CommandPath())
		}
		return nil
	}
}

// flagErrorText words a flag value the flag's type cannot take as what
// the flag wants ("--vcpus \"many\": want a whole number"), instead of
// the parser's own words (strconv.ParseInt: parsing "many": ...).
func flagErrorText(err error) string {
	var iv *pflag.InvalidValueError
	if !errors.As(err, &iv) {
		return err.Error()
	}
	want := map[string]string{
		"int": "a whole number", "int64": "a whole number", "uint16": "a whole number from 0 to 65535",
		"bool": "true or false", "duration": "a duration such as 500ms, 10s or 2m",
	}[iv.GetFlag().Value.Type()]
	if want == "" {
		return err.Error()
	}
	return fmt.Sprintf("--%s %q: want %s", iv.GetFlag().Name, iv.GetValue(), want)
}
