package doctor

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/bangerdev/banger/api"
)

// WriteText renders the report one check per line, each non-ok check
// followed by its fix.
func WriteText(w io.Writer, rep api.DoctorReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, c.Detail)
		if c.Status != api.CheckOK && c.Fix != "" {
			fmt.Fprintf(tw, "\t\t→ %s\n", c.Fix)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	counts := map[api.CheckStatus]int{}
	for _, c := range rep.Checks {
		counts[c.Status]++
	}
	_, err := fmt.Fprintf(w, "\n%d ok, %d warn, %d fail, %d skipped\n",
		counts[api.CheckOK], counts[api.CheckWarn], counts[api.CheckFail], counts[api.CheckSkip])
	return err
}
