package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bangerdev/banger/internal/host/manpage"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
)

// newManCmd is the hidden `banger __man DIR` that `make man` runs: it
// writes the manual pages of every banger command and of bangerd into DIR.
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Short:  "Write banger's and bangerd's man pages into DIR (make man)",
		Hidden: true,
		Args:   exactArgs(1, "the directory to write the pages into"),
		RunE: func(c *cobra.Command, args []string) error {
			files, err := manpage.Write(args[0], buildinfo.Get().Version, c.Root(), manpage.Bangerd())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "%d man pages in %s\n", len(files), args[0])
			return err
		},
	}
}
