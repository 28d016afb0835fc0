package tui

import (
	"context"
	"os"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
)

// Run runs the TUI on the terminal in and out until the user quits or ctx
// ends.
func Run(ctx context.Context, opts Options, in, out *os.File) error {
	app := New(opts)
	defer app.Close()
	popts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out)}
	if opts.NoColor {
		popts = append(popts, tea.WithColorProfile(colorprofile.Ascii))
	}
	_, err := tea.NewProgram(app, popts...).Run()
	if ctx.Err() != nil {
		return nil
	}
	return err
}
