package tui

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"golang.org/x/term"
)

// attachExec is a session attach run with the terminal handed over
// (tea.Exec): Bubble Tea lets go of the terminal, Run attaches through
// frontend.Attach (replay from the cursor, raw mode and the detach key for
// a TTY session), and the TUI takes the terminal back when it returns.
type attachExec struct {
	ctx     context.Context
	cl      *client.Client
	vm      string
	ses     api.Session
	cursors *frontend.Cursors
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	res     frontend.AttachResult
}

func (a *attachExec) SetStdin(r io.Reader)  { a.stdin = r }
func (a *attachExec) SetStdout(w io.Writer) { a.stdout = w }
func (a *attachExec) SetStderr(w io.Writer) { a.stderr = w }

// Run attaches until the session ends or the user detaches: Ctrl-] in a
// TTY session, Ctrl-C in a pipe one (the terminal is not raw then, so the
// key arrives as SIGINT).
func (a *attachExec) Run() error {
	ctx, stop := signal.NotifyContext(a.ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	how := "ctrl+c detaches"
	if a.ses.TTY {
		how = "ctrl+] detaches"
	}
	fmt.Fprintf(a.stdout, "\r\n[banger: attached to session %s of %s; %s]\r\n",
		termsafe.Line(sessionLabel(a.ses)), termsafe.Line(a.vm), how)
	o := frontend.AttachOptions{
		Since:   "resume",
		Stdin:   a.stdin,
		Stdout:  a.stdout,
		Stderr:  a.stderr,
		Cursors: a.cursors,
	}
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		o.Terminal = f
	}
	res, err := frontend.Attach(ctx, a.cl, a.vm, a.ses.ID, o)
	a.res = res
	return err
}

// attachTo hands the terminal to an attach of ses.
func attachTo(env *Env, vm string, ses api.Session) tea.Cmd {
	if env.client == nil {
		return func() tea.Msg { return StatusMsg{Err: errNotConnected} }
	}
	a := &attachExec{ctx: env.ctx, cl: env.client, vm: vm, ses: ses, cursors: env.opts.Cursors}
	return tea.Exec(a, func(err error) tea.Msg {
		return attachDoneMsg{res: a.res, ses: ses, err: err}
	})
}

// attachStatus is what the status line says when the terminal came back.
func attachStatus(m attachDoneMsg) StatusMsg {
	label := termsafe.Line(sessionLabel(m.ses))
	switch {
	case m.err != nil:
		return StatusMsg{Err: fmt.Errorf("attach to %s: %w", label, m.err)}
	case m.res.Detached:
		return StatusMsg{Text: fmt.Sprintf("detached from %s at offset %d (it keeps running)", label, m.res.Offset)}
	default:
		return StatusMsg{Text: fmt.Sprintf("session %s ended with exit code %d", label, m.res.ExitCode)}
	}
}
