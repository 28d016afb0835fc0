package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/spf13/cobra"
)

func newVMSessionCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "session",
		Short: "Long-lived guest commands you can attach to over stdio",
		Long: `A session is a command the guest agent runs and keeps: it survives the caller,
detaches, daemon restarts (even SIGKILL) and agent restarts. Its output is
kept in a bounded buffer (1 MiB) with byte offsets, so an attacher replays
what it missed. Pipe mode (the default) keeps stdin, stdout and stderr
apart; --tty gives the command a terminal.`,
		Example: `  banger vm session start demo --name echo -- python3 -u /root/repo/echo.py
  banger vm session list demo
  banger vm session attach demo echo
  banger vm session logs demo echo
  banger vm session stop demo echo`,
	}
	c.AddCommand(
		newSessionStartCmd(app),
		newSessionListCmd(app),
		newSessionShowCmd(app),
		newSessionLogsCmd(app),
		newSessionAttachCmd(app),
		newSessionStopCmd(app),
		newSessionKillCmd(app),
		newSessionRmCmd(app),
	)
	return c
}

func newSessionStartCmd(app *App) *cobra.Command {
	var (
		req    api.StartSessionRequest
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "start VM [--name N] [--cwd DIR] [--env K=V]... [--tty] -- COMMAND [ARGS...]",
		Short: "Start a long-lived command in the guest",
		Long: `Start a command the guest agent keeps running. Before launching, the agent
checks that the working directory exists and that the command resolves in
the guest's PATH; if not, nothing starts and the error says what is
missing. A command that exits within its first second is reported here with
its exit code and first stderr bytes, and banger exits non-zero.

The working directory defaults to /root/repo when it exists, else /root.
The environment is a root login's (HOME, PATH with /usr/local/bin, LANG)
plus --env; only the keys are recorded.`,
		Example: `  banger vm session start demo --name echo -- python3 -u -c 'import sys; [print(l, end="", flush=True) for l in sys.stdin]'
  banger vm session start demo --name oc --cwd /root/repo -- opencode
  banger vm session start demo --tty --name shell -- bash`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError("session start wants a VM and a command after --: banger vm session start VM -- COMMAND")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			req.Argv = args[1:]
			if req.TTY {
				if ws, ok := termSize(); ok {
					req.Rows, req.Cols = ws.Rows, ws.Cols
				}
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			ses, err := cl.StartSession(c.Context(), args[0], req)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(app.Stdout, ses); err != nil {
					return err
				}
			}
			if ses.State == api.SessionFailed || (ses.State == api.SessionExited && len(ses.Diagnostics) > 0) {
				if !asJSON {
					printSession(app, ses)
				}
				return fmt.Errorf("session %s %s right after it started: %s", sessionRef(ses), ses.State, strings.Join(ses.Diagnostics, "; "))
			}
			if !asJSON {
				fmt.Fprintf(app.Stdout, "session %s started in %s (pid %d, %s)\n", sessionRef(ses), args[0], ses.PID, sessionMode(ses))
				fmt.Fprintf(app.Stdout, "\nnext:\n")
				fmt.Fprintf(app.Stdout, "  banger vm session attach %s %s   # join its stdio (Ctrl-C detaches)\n", args[0], sessionRef(ses))
				fmt.Fprintf(app.Stdout, "  banger vm session logs %s %s     # what it printed\n", args[0], sessionRef(ses))
				fmt.Fprintf(app.Stdout, "  banger vm session stop %s %s     # SIGTERM, then SIGKILL\n", args[0], sessionRef(ses))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&req.Name, "name", "", "session name, unique in the VM (usable wherever an id is)")
	f.StringVar(&req.Cwd, "cwd", "", "working directory (default /root/repo when it exists, else /root)")
	f.StringArrayVar(&req.Env, "env", nil, "environment KEY=VALUE (repeatable)")
	f.BoolVar(&req.TTY, "tty", false, "give the command a terminal (size from this one, or 24x80)")
	f.BoolVar(&asJSON, "json", false, "print the session as JSON")
	return c
}

// sessionRef is how output names a session: its name, else its id; both
// come from the guest, so escaped.
func sessionRef(s api.Session) string {
	if s.Name != "" {
		return termsafe.Line(s.Name)
	}
	return termsafe.Line(s.ID)
}

func sessionMode(s api.Session) string {
	if s.TTY {
		return "tty"
	}
	return "pipe"
}

func newSessionListCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list VM",
		Short: "List a VM's sessions, as the guest reports them",
		Long: `List a VM's sessions. For a running VM the guest agent is asked, so the list
is right after a daemon restart too; the daemon's copy in its store is
updated from it. Sessions the guest no longer knows (the VM stopped or
rebooted while they ran) show as lost.`,
		Example: "  banger vm session list demo\n  banger vm session list demo --json | jq -r '.[] | select(.state==\"running\") | .name'",
		Args:    exactArgs(1, "VM"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			list, err := cl.Sessions(ctx, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, list)
			}
			t := newTable(app.Stdout, "ID", "NAME", "STATE", "PID", "MODE", "ATTACHED", "OUTPUT", "STARTED", "COMMAND")
			now := time.Now()
			for _, s := range list {
				state := s.State
				if s.State != api.SessionRunning {
					state += " (" + exitSummary(s) + ")"
				}
				if s.ForkedFrom != "" {
					state += ", forked from " + s.ForkedFrom
				}
				t.row(termsafe.Line(s.ID), orDash(termsafe.Line(s.Name)), termsafe.Line(state), strconv.Itoa(s.PID), sessionMode(s), strconv.Itoa(s.AttachCount),
					fmtBytes(s.OutputBytes), fmtAge(now, s.StartedAt), argvLine(s.Argv))
			}
			return t.flush()
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// argvLine shows a guest-reported command line on one line.
func argvLine(argv []string) string { return termsafe.Line(strings.Join(argv, " ")) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// exitSummary says how a session ended.
func exitSummary(s api.Session) string {
	switch {
	case s.Signal != "":
		return termsafe.Line(s.Signal)
	case s.ExitCode != nil:
		return "code " + strconv.Itoa(*s.ExitCode)
	case s.State == api.SessionLost:
		return "gone"
	}
	return "status unknown"
}

func newSessionShowCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "show VM SESSION",
		Short:   "Show one session's metadata",
		Example: "  banger vm session show demo echo\n  banger vm session show demo echo --json",
		Args:    exactArgs(2, "VM SESSION"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			ses, err := cl.Session(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, ses)
			}
			printSession(app, ses)
			return nil
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// printSession shows a session; every string in it comes from the guest
// and is escaped.
func printSession(app *App, s api.Session) {
	w := app.Stdout
	fmt.Fprintf(w, "id:          %s\n", termsafe.Line(s.ID))
	if s.Name != "" {
		fmt.Fprintf(w, "name:        %s\n", termsafe.Line(s.Name))
	}
	fmt.Fprintf(w, "vm:          %s\n", termsafe.Line(s.VM))
	fmt.Fprintf(w, "command:     %s\n", argvLine(s.Argv))
	fmt.Fprintf(w, "cwd:         %s\n", termsafe.Line(s.Cwd))
	if len(s.EnvKeys) > 0 {
		fmt.Fprintf(w, "env keys:    %s\n", termsafe.Line(strings.Join(s.EnvKeys, " ")))
	}
	fmt.Fprintf(w, "mode:        %s\n", sessionMode(s))
	fmt.Fprintf(w, "state:       %s\n", termsafe.Line(s.State))
	fmt.Fprintf(w, "pid:         %d\n", s.PID)
	fmt.Fprintf(w, "started:     %s\n", s.StartedAt.Local().Format(time.RFC3339))
	if !s.ExitedAt.IsZero() {
		fmt.Fprintf(w, "exited:      %s (%s)\n", s.ExitedAt.Local().Format(time.RFC3339), exitSummary(s))
	}
	fmt.Fprintf(w, "attached:    %d\n", s.AttachCount)
	fmt.Fprintf(w, "output:      %d bytes (replayable from offset %d)\n", s.OutputBytes, s.BufferedFrom)
	if s.Orphaned {
		fmt.Fprintf(w, "orphaned:    the guest agent restarted while it ran: later output is not captured\n")
	}
	for _, d := range s.Diagnostics {
		fmt.Fprintf(w, "diagnostic:  %s\n", termsafe.Line(d))
	}
}

func newSessionLogsCmd(app *App) *cobra.Command {
	var (
		since  int64
		follow bool
	)
	c := &cobra.Command{
		Use:   "logs VM SESSION [--since OFFSET] [-f]",
		Short: "Print a session's buffered output",
		Long: `Print what a session wrote that is still buffered (the newest 1 MiB): its
stdout to stdout and its stderr to stderr. --since starts at a byte offset
of the output stream; -f keeps following live output until the session
ends or you press Ctrl-C. logs never touches the session's stdin.`,
		Example: "  banger vm session logs demo echo\n  banger vm session logs demo echo -f\n  banger vm session logs demo echo --since 4096",
		Args:    exactArgs(2, "VM SESSION"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			a, _, err := cl.Attach(ctx, args[0], args[1], client.AttachOptions{Since: since, NoFollow: !follow})
			if err != nil {
				return err
			}
			defer a.Close()
			stop := context.AfterFunc(ctx, func() { a.Close() })
			defer stop()
			for {
				ch, err := a.Next()
				if err != nil {
					if isEOF(err) || ctx.Err() != nil {
						return nil
					}
					return err
				}
				if err := writeChunk(app, ch); err != nil {
					return err
				}
			}
		}),
	}
	c.Flags().Int64Var(&since, "since", -1, "byte offset to start at (-1: the oldest byte still buffered)")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing live output")
	return c
}

// writeChunk prints one output chunk where it belongs.
func writeChunk(app *App, ch api.Chunk) error {
	switch ch.Stream {
	case "stderr":
		_, err := app.Stderr.Write(ch.Data)
		return err
	case "gap":
		fmt.Fprintf(app.Stderr, "banger: %d bytes of output at offset %d are no longer buffered\n", ch.Dropped, ch.Offset)
		return nil
	}
	_, err := app.Stdout.Write(ch.Data)
	return err
}

func newSessionStopCmd(app *App) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "stop VM SESSION [--timeout 10s]",
		Short: "Stop a session: SIGTERM, then SIGKILL after a timeout",
		Long: `Send SIGTERM to the session's process group and wait for it to exit; if it
is still running after --timeout, send SIGKILL. The session stays listed
with its exit status until you remove it with session rm.`,
		Example: "  banger vm session stop demo echo\n  banger vm session stop demo echo --timeout 30s",
		Args:    exactArgs(2, "VM SESSION"),
		RunE: func(c *cobra.Command, args []string) error {
			return signalSession(c.Context(), app, args[0], args[1], "TERM", timeout)
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait after SIGTERM before SIGKILL")
	return c
}

func newSessionKillCmd(app *App) *cobra.Command {
	var sig string
	c := &cobra.Command{
		Use:     "kill VM SESSION [--signal KILL]",
		Short:   "Send a signal (default SIGKILL) to a session's process group",
		Example: "  banger vm session kill demo echo\n  banger vm session kill demo echo --signal INT",
		Args:    exactArgs(2, "VM SESSION"),
		RunE: func(c *cobra.Command, args []string) error {
			return signalSession(c.Context(), app, args[0], args[1], sig, 0)
		},
	}
	c.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal name: KILL, TERM, INT, HUP, ...")
	return c
}

// signalSession signals and, with a timeout, waits for the end and then
// kills (frontend.StopSession), and says how the session stands.
func signalSession(ctx context.Context, app *App, vm, ref, sig string, timeout time.Duration) error {
	cl, err := app.Client(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	ses, err := frontend.StopSession(ctx, cl, vm, ref, frontend.StopOptions{
		Signal: sig, Timeout: timeout,
		OnEscalate: func(api.Session) {
			fmt.Fprintf(app.Stderr, "session %s still runs %s after SIGTERM: sending SIGKILL\n", ref, timeout)
		},
	})
	if err != nil {
		return err
	}
	if ses.State == api.SessionRunning {
		fmt.Fprintf(app.Stdout, "sent SIG%s to session %s (pid %d); it is still running\n", strings.TrimPrefix(strings.ToUpper(sig), "SIG"), ref, ses.PID)
		return nil
	}
	fmt.Fprintf(app.Stdout, "session %s %s (%s)\n", termsafe.Line(ref), termsafe.Line(ses.State), exitSummary(ses))
	return nil
}

func newSessionRmCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:     "rm VM SESSION",
		Short:   "Forget a session that no longer runs (its state and output)",
		Example: "  banger vm session rm demo echo",
		Args:    exactArgs(2, "VM SESSION"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			cursors, err := app.cursors()
			if err != nil {
				return err
			}
			if _, err := frontend.RemoveSession(ctx, cl, cursors, args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(app.Stdout, "removed session %s\n", args[1])
			return nil
		}),
	}
	return c
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
