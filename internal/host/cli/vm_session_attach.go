package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newSessionAttachCmd(app *App) *cobra.Command {
	var since, stdinEOF string
	c := &cobra.Command{
		Use:   "attach VM SESSION [--since resume|all|now|OFFSET] [--stdin-eof keep|close|detach]",
		Short: "Join your stdin, stdout and stderr to a session (the stdio bridge)",
		Long: `Attach joins this process's stdio to a running session: what you write goes
to the session's stdin, its stdout comes out on stdout and its stderr on
stderr. An orchestrator can spawn it as a subprocess and speak a line
protocol through it. Several attachers may be joined at once; they all see
the output and all write to the same stdin.

Replay: output is kept in the guest with byte offsets (the newest 1 MiB).
By default attach resumes where the last attach of this session by you
stopped (a cursor under banger's state dir), so output produced while
nobody was attached is replayed and nothing is printed twice; the first
attach replays everything still buffered. --since all replays everything
buffered, --since now only live output, --since N from byte offset N.
Output that is no longer buffered is reported on stderr as a gap.

Ending: when the session ends, attach prints how on stderr and exits with
the session's exit code (128+N for signal N). Ctrl-C, SIGTERM or SIGHUP
detach and exit 0, leaving the session running. If the daemon goes away
(even SIGKILLed), attach exits 1 saying so; run it again to resume.

stdin EOF (--stdin-eof): keep (the default) stops reading stdin and keeps
the session's stdin open for other or later attachers, while output keeps
flowing; close closes the session's stdin, so its process reads EOF (what a
pipe into a one-shot filter wants); detach detaches at once.

TTY sessions: with a terminal, it is put in raw mode, its size follows the
window, and Ctrl-] detaches (Ctrl-C goes to the session).`,
		Example: `  banger vm session attach demo echo
  printf '{"n":1}\n' | banger vm session attach demo echo --stdin-eof close
  banger vm session attach demo echo --since all
  banger vm session attach demo shell          # a TTY session: Ctrl-] detaches`,
		Args: exactArgs(2, "VM SESSION"),
		RunE: func(c *cobra.Command, args []string) error {
			return attach(c.Context(), app, args[0], args[1], frontend.AttachOptions{Since: since, StdinEOF: stdinEOF})
		},
	}
	c.Flags().StringVar(&since, "since", "resume", "where to start: resume, all, now, or a byte offset")
	c.Flags().StringVar(&stdinEOF, "stdin-eof", "keep", "what the end of stdin does: keep, close or detach")
	return c
}

// attachFlags names the flag behind each option frontend.Attach checks.
var attachFlags = map[string]string{"Since": "--since", "StdinEOF": "--stdin-eof"}

// cursors is where attach cursors live: <state dir>/attach.
func (a *App) cursors() (*frontend.Cursors, error) {
	paths, err := a.paths()
	if err != nil {
		return nil, err
	}
	return &frontend.Cursors{Dir: filepath.Join(paths.StateDir, "attach")}, nil
}

// forgetCursors removes the cursors of a removed session or, with id "",
// of a deleted VM.
func forgetCursors(app *App, vm, id string) {
	if c, err := app.cursors(); err == nil {
		c.Forget(vm, id)
	}
}

// attach runs frontend.Attach on this process's stdio and renders how it
// ended: a detach exits 0, an ended session with its exit code.
func attach(ctx context.Context, app *App, vm, ref string, o frontend.AttachOptions) error {
	if err := o.Validate(); err != nil {
		return attachError(err, vm, ref)
	}
	cl, err := app.Client(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Ctrl-C, SIGTERM and SIGHUP detach; in a raw terminal Ctrl-] does.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	o.Stdin, o.Stdout, o.Stderr = app.Stdin, app.Stdout, app.Stderr
	if f, ok := app.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		o.Terminal = f
	}
	if o.Cursors, err = app.cursors(); err != nil {
		return err
	}
	o.OnGap = func(offset, dropped int64) {
		fmt.Fprintf(app.Stderr, "banger: %d bytes of output at offset %d are no longer buffered\n", dropped, offset)
	}
	res, err := frontend.Attach(ctx, cl, vm, ref, o)
	if err != nil {
		return attachError(err, vm, ref)
	}
	switch {
	case res.OutputErr != nil:
		return nil // our stdout is gone: nobody to print to
	case res.Detached:
		fmt.Fprintf(app.Stderr, "\r\nbanger: detached from session %s at offset %d; it keeps running\r\n", ref, res.Offset)
		return nil
	}
	fmt.Fprintf(app.Stderr, "banger: session %s %s (%s)\n", ref, termsafe.Line(res.Session.State), exitSummary(res.Session))
	if res.ExitCode != 0 {
		return &exitError{code: res.ExitCode}
	}
	return nil
}

// attachError says an attach failure in the CLI's words: options as
// flags, and the command that resumes a lost stream.
func attachError(err error, vm, ref string) error {
	var oe *frontend.OptionError
	if errors.As(err, &oe) {
		return usageError("%s %q: want %s", attachFlags[oe.Option], oe.Value, oe.Want)
	}
	var lost *frontend.LostError
	if errors.As(err, &lost) {
		return fmt.Errorf("lost the attach stream of session %s at offset %d: %w; the session keeps running in the guest: run `banger vm session attach %s %s` to resume",
			ref, lost.Offset, lost.Err, vm, ref)
	}
	return err
}
