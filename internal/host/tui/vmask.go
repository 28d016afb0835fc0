package tui

import (
	"context"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// vmAsk is a question about one VM on the footer line of the VMs table
// or a VM's detail, asked before an action: whether to stop a paused VM
// (its saved state is discarded), or the name of a fork.
type vmAsk struct {
	vm   string
	fork bool // the fork's name is asked; else the stop is confirmed
	name textinput.Model
	keys vmAskKeys
}

type vmAskKeys struct {
	Yes, No, Fork, Cancel key.Binding
}

func newVMAsk(vm string, fork bool) *vmAsk {
	a := &vmAsk{vm: vm, fork: fork, keys: vmAskKeys{
		Yes:    key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "stop it")),
		No:     key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n/esc", "keep it paused")),
		Fork:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "fork")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}}
	if fork {
		a.name = textinput.New()
		a.name.Prompt = "name of the fork: "
		a.name.Placeholder = "empty: a generated name"
		a.name.CharLimit = 64
	}
	return a
}

// askStopOrFork returns the question a key asks before its action: x on
// a paused VM (stop discards its saved state) or f (the fork's name);
// nil for any other key, which acts at once.
func askStopOrFork(env *Env, msg tea.KeyPressMsg, name string) *vmAsk {
	switch msg.String() {
	case "f":
		return newVMAsk(name, true)
	case "x":
		if vm, ok := env.Store.VM(name); ok && vm.State == api.VMPaused {
			return newVMAsk(name, false)
		}
	}
	return nil
}

// Init focuses the name of a fork.
func (a *vmAsk) Init() tea.Cmd {
	if a.fork {
		return a.name.Focus()
	}
	return nil
}

func (a *vmAsk) Keys() []key.Binding {
	if a.fork {
		return []key.Binding{a.keys.Fork, a.keys.Cancel}
	}
	return []key.Binding{a.keys.Yes, a.keys.No}
}

// key answers the question; done when it is answered.
func (a *vmAsk) key(env *Env, msg tea.KeyPressMsg) (bool, tea.Cmd) {
	label := termsafe.Line(a.vm)
	if a.fork {
		switch {
		case key.Matches(msg, a.keys.Cancel):
			return true, status("no fork of " + label)
		case key.Matches(msg, a.keys.Fork):
			return true, forkVM(env, a.vm, a.name.Value())
		}
		var cmd tea.Cmd
		a.name, cmd = a.name.Update(msg)
		return false, cmd
	}
	switch {
	case key.Matches(msg, a.keys.Yes):
		return true, stopVM(env, a.vm)
	case key.Matches(msg, a.keys.No):
		return true, status("kept " + label + " paused")
	}
	return false, nil
}

// footer is the question, on one line.
func (a *vmAsk) footer(env *Env) string {
	if a.fork {
		return env.Theme.Bold.Render("Fork "+termsafe.Line(a.vm)+":") + " " + a.name.View()
	}
	return env.Theme.Error.Render("Stop paused VM "+termsafe.Line(a.vm)+"?") + " Its saved state is lost. y stop · n keep"
}

// pauseOrResume pauses a running VM or resumes a paused one (p), as an
// operation whose end the status line tells (pendingOps).
func pauseOrResume(env *Env, name string) tea.Cmd {
	label := termsafe.Line(name)
	if vm, _ := env.Store.VM(name); vm.State == api.VMPaused {
		return beginOp(env, "resuming "+label+"…", "resume "+label, func(ctx context.Context, cl *client.Client) (api.Operation, error) {
			return cl.BeginResumeVM(ctx, name)
		})
	}
	return beginOp(env, "pausing "+label+"…", "pause "+label, func(ctx context.Context, cl *client.Client) (api.Operation, error) {
		return cl.BeginPauseVM(ctx, name)
	})
}

// forkVM begins a fork of src named name (empty: generated).
func forkVM(env *Env, src, name string) tea.Cmd {
	what := "fork " + termsafe.Line(src)
	if name != "" {
		what += " → " + termsafe.Line(name)
	}
	return beginOp(env, "forking "+termsafe.Line(src)+"…", what, func(ctx context.Context, cl *client.Client) (api.Operation, error) {
		return cl.BeginForkVM(ctx, src, api.ForkVMRequest{Name: name})
	})
}

// beginOp begins an operation from a key: the status line shows doing
// now, and how the operation ended later (pendingOps, as what).
func beginOp(env *Env, doing, what string, call func(ctx context.Context, cl *client.Client) (api.Operation, error)) tea.Cmd {
	var op api.Operation
	return tea.Batch(status(doing), env.Do("", func(ctx context.Context, cl *client.Client) error {
		var err error
		op, err = call(ctx, cl)
		return err
	}, func(err error) tea.Msg {
		if err != nil {
			return nil
		}
		return opBegunMsg{id: op.ID, what: what}
	}))
}
