package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bangerdev/banger/api"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

func newVMExecCmd(app *App) *cobra.Command {
	var (
		req api.ExecRequest
		tty bool
	)
	c := &cobra.Command{
		Use:   "exec NAME [-t] [-w DIR] [-e KEY=VAL]... -- COMMAND [ARGS...]",
		Short: "Run a command in a VM through its agent, with its exit code",
		Long: `Run a command inside a running VM through the guest agent (no SSH, no guest
network involved). stdin, stdout and stderr are streamed; the end of stdin
closes the command's stdin. banger exits with the command's exit code, or
128+N when signal N ended it.

With -t the command runs on a terminal in the guest: the local terminal is
put in raw mode and its size follows the window. Interrupting banger (or
losing the daemon) ends the stream, which kills the command; use
` + "`banger vm session start`" + ` for commands that must outlive the caller.`,
		Example: `  banger vm exec demo -- uname -a
  banger vm exec demo -w /root/repo -- git status --short
  echo hello | banger vm exec demo -- tr a-z A-Z
  banger vm exec demo -t -- bash`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError("vm exec wants a VM name and a command after --: banger vm exec NAME -- COMMAND")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			req.Argv = args[1:]
			req.TTY = tty
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			var resize chan api.WindowSize
			if tty {
				restore, rs, err := rawTerminal(app)
				if err != nil {
					return err
				}
				defer restore()
				resize = rs
				if ws, ok := termSize(); ok {
					req.Rows, req.Cols = ws.Rows, ws.Cols
				}
			}
			st, err := cl.Exec(c.Context(), args[0], req, app.Stdin, app.Stdout, app.Stderr, resize)
			if err != nil {
				return err
			}
			if code := exitCode(st); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVarP(&tty, "tty", "t", false, "run the command on a terminal (raw local terminal, window size follows)")
	f.StringVarP(&req.Cwd, "workdir", "w", "", "working directory in the guest (default: the agent's, /)")
	f.StringArrayVarP(&req.Env, "env", "e", nil, "environment KEY=VALUE for the command (repeatable)")
	return c
}

// exitCode is the shell's view of how a guest command ended.
func exitCode(st api.ExitStatus) int {
	if st.Signal != "" {
		if n := unix.SignalNum(st.Signal); n > 0 {
			return 128 + int(n)
		}
		return 128
	}
	if st.Code < 0 || st.Code > 255 {
		return 255
	}
	return st.Code
}

// termSize is the local terminal's size, when stdout is one.
func termSize() (api.WindowSize, bool) {
	for _, fd := range []int{int(os.Stdout.Fd()), int(os.Stdin.Fd())} {
		if w, h, err := term.GetSize(fd); err == nil {
			return api.WindowSize{Rows: uint16(h), Cols: uint16(w)}, true
		}
	}
	return api.WindowSize{}, false
}

// rawTerminal puts stdin's terminal in raw mode (when it is one) and
// reports window size changes; restore undoes both.
func rawTerminal(app *App) (restore func(), resize chan api.WindowSize, err error) {
	resize = make(chan api.WindowSize, 1)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sig:
				if ws, ok := termSize(); ok {
					select {
					case resize <- ws:
					default:
					}
				}
			case <-done:
				return
			}
		}
	}()
	var state *term.State
	if f, ok := app.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		state, err = term.MakeRaw(int(f.Fd()))
		if err != nil {
			signal.Stop(sig)
			close(done)
			return nil, nil, fmt.Errorf("putting the terminal in raw mode: %w", err)
		}
	}
	return func() {
		signal.Stop(sig)
		close(done)
		if state != nil {
			term.Restore(int(app.Stdin.(*os.File).Fd()), state)
		}
	}, resize, nil
}
