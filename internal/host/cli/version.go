package cli

import (
	"fmt"

	"github.com/bangerdev/banger/internal/shared/buildinfo"
	"github.com/spf13/cobra"
)

func newVersionCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "version",
		Short:   "Print the CLI's version and build id",
		Example: "  banger version\n  banger version --json",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			info := buildinfo.Get()
			if asJSON {
				return printJSON(app.Stdout, info)
			}
			_, err := fmt.Fprintf(app.Stdout, "banger %s (build %s)\n", info.Version, info.BuildID)
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
