package tui

import (
	"context"
	"errors"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/client"
)

// View is one tab of the TUI (VMs, Images, Operations, Doctor). A view is a
// pointer that changes in place; the App calls it only from the UI
// goroutine, so it needs no locks. Work that blocks (a client call, a
// stream) runs in a tea.Cmd or through Env.Stream, never in these methods.
//
// A new view is added by writing it in its own file and listing its
// constructor in tabs.go; nothing else in the package changes.
type View interface {
	// Title is the tab's label, one short word ("VMs", "Images").
	Title() string
	// Init is called once, when the program has a client: return a
	// command to load what only this view needs (the doctor report), or
	// nil. What the Store holds (VMs, images, operations, sessions,
	// stats) is loaded by the App and must not be listed again here.
	Init(env *Env) tea.Cmd
	// Update gets a key (tea.KeyPressMsg) only while the view is the
	// active tab and the App did not take it (see Capturing), and every
	// other message always: the view's own results, a tea.WindowSizeMsg,
	// an EventMsg after the Store applied it, a ReloadedMsg after the
	// Store was re-listed. A view ignores what is not its own.
	Update(env *Env, msg tea.Msg) tea.Cmd
	// Render draws the view's body in exactly env.Width × env.Height
	// cells (the App pads and cuts, but a view that fits reads better).
	// Text from a guest or a daemon error goes through termsafe.
	Render(env *Env) string
	// Keys are the bindings the help bar shows now (they change with the
	// view's sub-screen).
	Keys() []key.Binding
	// Capturing reports whether the view takes every key now (a text
	// field has the focus, a confirmation waits): the App then handles
	// only ctrl+c itself, and q, tab and the digits go to the view.
	Capturing() bool
}

// Env is what the App gives every view: the state, the daemon, the look,
// the body's size, and ways to run work off the UI goroutine.
type Env struct {
	// Store is the daemon's state as the event feed left it. Views read
	// it; only the App writes it.
	Store *Store
	// Theme is the look (colourless under NO_COLOR).
	Theme Theme
	// Format renders the figures that change from run to run (ages,
	// durations, CPU); tests replace it to keep golden screens stable.
	Format Format
	// Width and Height are the body's size in cells.
	Width, Height int
	// Connected is false while the daemon is away (the App shows the
	// notice); calls then fail and their error reaches the status line.
	Connected bool

	ctx    context.Context
	client *client.Client
	inbox  chan<- tea.Msg
	opts   *Options
}

// now is the clock of running durations.
func (e *Env) now() time.Time {
	if e.opts != nil && e.opts.Now != nil {
		return e.opts.Now()
	}
	return time.Now()
}

// Client is the daemon's client, nil before the first connection.
func (e *Env) Client() *client.Client { return e.client }

// Context ends when the program quits.
func (e *Env) Context() context.Context { return e.ctx }

// StatusMsg sets the status line: Err (escaped with termsafe, as an error)
// when set, else Text.
type StatusMsg struct {
	Text string
	Err  error
}

// Do runs fn off the UI goroutine with the client and reports on the status
// line: its error, else done (nothing when done is ""). After, when not
// nil, turns fn's outcome into a further message for the view (a form
// wants its field error back); its result is delivered instead of the
// StatusMsg when it returns non-nil.
func (e *Env) Do(done string, fn func(ctx context.Context, cl *client.Client) error, after func(error) tea.Msg) tea.Cmd {
	cl, ctx := e.client, e.ctx
	return func() tea.Msg {
		var err error
		if cl == nil {
			err = errNotConnected
		} else {
			err = fn(ctx, cl)
		}
		if after != nil {
			if m := after(err); m != nil {
				return m
			}
		}
		if err != nil {
			return StatusMsg{Err: err}
		}
		if done == "" {
			return nil
		}
		return StatusMsg{Text: done}
	}
}

var errNotConnected = errors.New("bangerd is not connected yet: wait for the notice to clear")

// Send delivers msg to the program from any goroutine (a stream's chunk);
// it blocks while the program is busy and gives up when it quits.
func (e *Env) Send(msg tea.Msg) {
	select {
	case e.inbox <- msg:
	case <-e.ctx.Done():
	}
}

// Stream runs fn in a goroutine with the client and a context that ends
// when the program quits or cancel is called; fn sends what it reads with
// send. Its error, unless the context ended, reaches the status line.
func (e *Env) Stream(fn func(ctx context.Context, cl *client.Client, send func(tea.Msg)) error) (cancel func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	cl := e.client
	go func() {
		if cl == nil {
			e.Send(StatusMsg{Err: errNotConnected})
			return
		}
		if err := fn(ctx, cl, e.Send); err != nil && ctx.Err() == nil {
			e.Send(StatusMsg{Err: err})
		}
	}()
	return cancel
}
