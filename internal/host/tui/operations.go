package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/charmbracelet/x/ansi"
)

// opFollow follows one operation through frontend.FollowOperation (which
// gets through a daemon restart): its stages as the stream reports them
// and its log lines (a build's output) in a scrollable textLog. The
// Store's copy of the operation, kept by the event feed, is used when it
// is newer than the stream's.
type opFollow struct {
	id       string
	streamID int
	last     api.Operation
	log      *textLog
	stop     func()
	// ended: the follow returned; err is why, when not the operation's
	// own failure (the daemon could not be reached again, say).
	ended bool
	err   error
	// sawRunning: the operation was running while followed (so its end
	// is news for the status line).
	sawRunning bool
}

// opEventMsg is one event of a followed operation.
type opEventMsg struct {
	stream int
	ev     api.OperationEvent
}

// opEndMsg: the follow of an operation returned.
type opEndMsg struct {
	stream int
	op     api.Operation
	err    error
}

// followOp starts following op (as the Begin call returned it).
func followOp(env *Env, op api.Operation) *opFollow {
	f := &opFollow{id: op.ID, last: op, log: newTextLog(), streamID: nextStreamID(), sawRunning: op.State == api.OperationRunning}
	id, sid := op.ID, f.streamID
	f.stop = env.Stream(func(ctx context.Context, cl *client.Client, send func(tea.Msg)) error {
		final, err := frontend.FollowOperation(ctx, cl, id, func(ev api.OperationEvent) {
			send(opEventMsg{stream: sid, ev: ev})
		})
		if ctx.Err() == nil {
			send(opEndMsg{stream: sid, op: final, err: err})
		}
		return nil
	})
	return f
}

// close stops following (the operation carries on in the daemon).
func (f *opFollow) close() {
	if f != nil && f.stop != nil {
		f.stop()
		f.stop = nil
	}
}

// update takes the follow's own messages; it reports whether msg was one.
func (f *opFollow) update(msg tea.Msg) bool {
	switch msg := msg.(type) {
	case EventMsg:
		// The feed's copy, so what the help bar offers matches the
		// screen; the message is everyone's, so it is not taken.
		if msg.Kind == api.EventOperation && msg.OperationState != nil {
			f.note(*msg.OperationState)
		}
		return false
	case opEventMsg:
		if msg.stream != f.streamID {
			return false
		}
		f.note(msg.ev.Operation)
		if msg.ev.Type == api.EventLog && msg.ev.Message != "" {
			f.log.write([]byte(strings.TrimRight(msg.ev.Message, "\n") + "\n"))
		}
		return true
	case opEndMsg:
		if msg.stream != f.streamID {
			return false
		}
		f.note(msg.op)
		f.ended = true
		var ae *api.Error
		if msg.err != nil && !(opEndedWithError(msg.op) && errors.As(msg.err, &ae)) {
			f.err = msg.err
		}
		return true
	}
	return false
}

func (f *opFollow) note(op api.Operation) {
	if op.ID == f.id && newerOp(op, f.last) {
		f.last = op
	}
	if op.ID == f.id && op.State == api.OperationRunning {
		f.sawRunning = true
	}
}

// endStatus is the status line for the follow's end: how the operation
// ended, when it was seen running; nil otherwise.
func (f *opFollow) endStatus(env *Env) tea.Cmd {
	if !f.ended || !f.sawRunning {
		return nil
	}
	op := f.op(env)
	what := termsafe.Line(op.Kind)
	if op.Target != "" {
		what += " " + termsafe.Line(op.Target)
	}
	if op.State == api.OperationFailed && op.Error != nil {
		return func() tea.Msg { return StatusMsg{Err: fmt.Errorf("%s failed: %w", what, op.Error)} }
	}
	if op.State == api.OperationCanceled && op.Error != nil {
		return status(termsafe.Line(op.Error.Message)) // who canceled it, at which stage
	}
	return status(what + " " + string(op.State))
}

// opEndedWithError reports whether op ended failed or canceled with its
// error, which says why (or who canceled it, at which stage).
func opEndedWithError(op api.Operation) bool {
	return (op.State == api.OperationFailed || op.State == api.OperationCanceled) && op.Error != nil
}

// newerOp reports whether a is a later state of the operation than b: an
// ended one is later than a running one whatever the clocks say, else the
// one updated last.
func newerOp(a, b api.Operation) bool {
	if a.State.Terminal() != b.State.Terminal() {
		return a.State.Terminal()
	}
	if len(a.Stages) != len(b.Stages) {
		return len(a.Stages) > len(b.Stages)
	}
	return !a.UpdatedAt.Before(b.UpdatedAt)
}

// op is the newest state known: the stream's or the event feed's.
func (f *opFollow) op(env *Env) api.Operation {
	if op, ok := env.Store.Operation(f.id); ok && newerOp(op, f.last) {
		return op
	}
	return f.last
}

// render draws the stage timeline, the outcome, and the log below in the
// lines left of height.
func (f *opFollow) render(env *Env, height int) []string {
	t := env.Theme
	op := f.op(env)
	lines := stageLines(env, op)
	var errs []error
	if opEndedWithError(op) {
		errs = append(errs, op.Error)
	}
	if f.err != nil {
		errs = append(errs, f.err)
	}
	for _, err := range errs {
		// An error names its fix: show it whole, up to a few lines.
		msg := wordWrap(termsafe.Line(errorText(err)), max(env.Width-6, 20))
		if len(msg) > maxOpErrorLines {
			msg = append(msg[:maxOpErrorLines-1], fit(strings.Join(msg[maxOpErrorLines-1:], " "), max(env.Width-6, 20)))
		}
		for i, l := range msg {
			mark := "    "
			switch {
			case i == 0 && errors.Is(err, api.ErrCanceled):
				mark = "  " + t.Warn.Render("⊘ ")
			case i == 0:
				mark = "  " + t.Error.Render("✗ ")
			}
			lines = append(lines, mark+l)
		}
	}
	logH := height - len(lines) - 2
	if n := len(f.log.all()); n > 0 && logH > 0 {
		lines = append(lines, "", "  "+t.Bold.Render("Log"))
		for _, l := range strings.Split(f.log.render(env.Width-2, logH), "\n") {
			lines = append(lines, "  "+l)
		}
	}
	return lines
}

// maxOpErrorLines is how many lines an operation's error may take.
const maxOpErrorLines = 4

// logHeight is how many log lines render shows under the stages.
func (f *opFollow) logHeight(env *Env, height int) int {
	return max(height-len(stageLines(env, f.op(env)))-4, 1)
}

// cancelBy is how the TUI names itself in a cancel request: the
// operation's error then says "canceled by banger tui (uid N)".
const cancelBy = "banger tui"

// cancel asks the daemon to stop the operation.
func (f *opFollow) cancel(env *Env, what string) tea.Cmd {
	op := f.op(env)
	if op.State.Terminal() {
		return status(what + " has already ended")
	}
	id := f.id
	return tea.Batch(status("cancelling "+what+"…"), env.Do("", func(ctx context.Context, cl *client.Client) error {
		return cl.CancelOperation(ctx, id, cancelBy)
	}, nil))
}

// operationsView is the Operations tab: every operation the daemon keeps,
// newest first, live from the event feed; enter watches one.
type operationsView struct {
	selected string // operation ID
	top      int
	watch    *opWatch
	keys     opsKeys
}

type opsKeys struct {
	Up, Down, Watch, Cancel key.Binding
}

func newOperationsView() *operationsView {
	return &operationsView{keys: opsKeys{
		Up:     key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:   key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Watch:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "watch")),
		Cancel: key.NewBinding(key.WithKeys("ctrl+x"), key.WithHelp("ctrl+x", "cancel")),
	}}
}

func (v *operationsView) Title() string { return "Operations" }

func (v *operationsView) Init(env *Env) tea.Cmd { return nil }

func (v *operationsView) Capturing() bool { return false }

func (v *operationsView) Keys() []key.Binding {
	if v.watch != nil {
		return v.watch.Keys()
	}
	k := v.keys
	return []key.Binding{k.Up, k.Down, k.Watch, k.Cancel}
}

func (v *operationsView) current(env *Env) (api.Operation, int, []api.Operation) {
	ops := env.Store.Operations()
	for i, op := range ops {
		if op.ID == v.selected {
			return op, i, ops
		}
	}
	if len(ops) == 0 {
		return api.Operation{}, 0, ops
	}
	return ops[0], 0, ops
}

func (v *operationsView) Update(env *Env, msg tea.Msg) tea.Cmd {
	if v.watch != nil {
		done, cmd := v.watch.Update(env, msg)
		if done {
			v.watch.close()
			v.watch = nil
		}
		return cmd
	}
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	op, i, ops := v.current(env)
	switch {
	case len(ops) == 0:
		return nil
	case key.Matches(k, v.keys.Up):
		v.selected = ops[max(i-1, 0)].ID
	case key.Matches(k, v.keys.Down):
		v.selected = ops[min(i+1, len(ops)-1)].ID
	case key.Matches(k, v.keys.Watch):
		v.selected = op.ID
		v.watch = newOpWatch(env, op, "")
	case key.Matches(k, v.keys.Cancel):
		if op.State.Terminal() {
			return status("operation " + op.ID + " has already ended")
		}
		id := op.ID
		return tea.Batch(status("cancelling "+op.Kind+" "+termsafe.Line(op.Target)+"…"),
			env.Do("", func(ctx context.Context, cl *client.Client) error { return cl.CancelOperation(ctx, id, cancelBy) }, nil))
	}
	return nil
}

var opColumns = []column{
	{title: "KIND", min: 12},
	{title: "TARGET", min: 10, flex: true},
	{title: "STATE", min: 9},
	{title: "STAGE", min: 10, flex: true},
	{title: "AGE", min: 3, right: true},
	{title: "TOOK", min: 4, right: true},
}

// opTook is how long op ran (so far, while running).
func opTook(env *Env, op api.Operation) string {
	if op.CreatedAt.IsZero() {
		return "-"
	}
	end := op.FinishedAt
	if end.IsZero() {
		if op.State.Terminal() {
			end = op.UpdatedAt
		} else {
			end = time.Now()
		}
	}
	return env.Format.Duration(end.Sub(op.CreatedAt))
}

func (v *operationsView) Render(env *Env) string {
	if v.watch != nil {
		return v.watch.Render(env)
	}
	if !env.Store.Loaded {
		return "\n  loading operations…"
	}
	cur, _, ops := v.current(env)
	if len(ops) == 0 {
		return "\n  No operations yet: creating a VM, building an image or a deep doctor run starts one."
	}
	rows := make([][]string, len(ops))
	states := make([]string, len(ops))
	curRow := 0
	for i, op := range ops {
		stage := op.CurrentStage
		if stage == "" && len(op.Stages) > 0 {
			stage = op.Stages[len(op.Stages)-1].Name
		}
		if stage == "" {
			stage = "-"
		}
		target := op.Target
		if target == "" {
			target = "-"
		}
		rows[i] = []string{termsafe.Line(op.Kind), termsafe.Line(target), string(op.State), termsafe.Line(stage), env.Format.Age(op.CreatedAt), opTook(env, op)}
		states[i] = string(op.State)
		if op.ID == cur.ID {
			curRow = i
		}
	}
	return renderTable(env, opColumns, rows, 2, curRow, &v.top, env.Height)
}

// renderTable draws a table with a header, rows scrolled so cur shows,
// the cell of column stateCol coloured as a state (-1: none), in
// env.Width × height.
func renderTable(env *Env, cols []column, rows [][]string, stateCol, cur int, top *int, height int) string {
	t := env.Theme
	natural := make([]int, len(cols))
	for _, r := range rows {
		for j, c := range r {
			natural[j] = max(natural[j], len([]rune(c)))
		}
	}
	w := layout(cols, env.Width, natural)
	head := " "
	for j, c := range cols {
		if c.right {
			head += fitLeft(c.title, w[j]) + " "
		} else {
			head += fit(c.title, w[j]) + " "
		}
	}
	lines := []string{t.Header.Render(strings.TrimRight(head, " "))}
	visible := max(height-1, 1)
	if cur < *top {
		*top = cur
	}
	if cur >= *top+visible {
		*top = cur - visible + 1
	}
	*top = min(*top, max(len(rows)-visible, 0))
	for i := *top; i < len(rows) && i < *top+visible; i++ {
		line := " "
		if i == cur {
			line = ">"
		}
		for j, c := range rows[i] {
			cell := fit(c, w[j])
			if cols[j].right {
				cell = fitLeft(c, w[j])
			}
			if j == stateCol && i != cur && ansi.StringWidth(c) <= w[j] {
				cell = t.State(c) + strings.Repeat(" ", max(w[j]-ansi.StringWidth(c), 0))
			}
			line += cell + " "
		}
		line = strings.TrimRight(line, " ")
		if i == cur {
			line = t.Selected.Render(fit(line, env.Width))
		}
		lines = append(lines, line)
	}
	return box(strings.Join(lines, "\n"), env.Width, height)
}

// opWatch is one operation on screen: its kind and target, the stage
// timeline with durations, its error, and its log while it runs.
type opWatch struct {
	title  string
	follow *opFollow
	keys   watchKeys
}

type watchKeys struct {
	Back, Cancel key.Binding
}

// newOpWatch follows op; title heads the screen ("" names the kind and
// target).
func newOpWatch(env *Env, op api.Operation, title string) *opWatch {
	if title == "" {
		title = "Operation " + termsafe.Line(op.Kind)
		if op.Target != "" {
			title += " " + termsafe.Line(op.Target)
		}
	}
	return &opWatch{title: title, follow: followOp(env, op), keys: watchKeys{
		Back:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Cancel: key.NewBinding(key.WithKeys("ctrl+x"), key.WithHelp("ctrl+x", "cancel it")),
	}}
}

func (w *opWatch) close() { w.follow.close() }

func (w *opWatch) Keys() []key.Binding {
	out := []key.Binding{w.keys.Back}
	if !w.follow.last.State.Terminal() {
		out = append(out, w.keys.Cancel)
	}
	if len(w.follow.log.all()) > 0 {
		out = append(out, w.follow.log.help()...)
	}
	return out
}

// Update returns true when the user left the watch.
func (w *opWatch) Update(env *Env, msg tea.Msg) (bool, tea.Cmd) {
	if w.follow.update(msg) {
		if _, end := msg.(opEndMsg); end {
			return false, w.follow.endStatus(env)
		}
		return false, nil
	}
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return false, nil
	}
	switch {
	case key.Matches(k, w.keys.Back):
		return true, nil
	case key.Matches(k, w.keys.Cancel):
		return false, w.follow.cancel(env, "the "+w.follow.op(env).Kind)
	}
	w.follow.log.key(k, w.follow.logHeight(env, env.Height-2))
	return false, nil
}

func (w *opWatch) Render(env *Env) string {
	t := env.Theme
	op := w.follow.op(env)
	head := t.Bold.Render(" "+w.title) + " · " + t.State(string(op.State))
	sub := "   " + t.Faint.Render("started "+env.Format.Age(op.CreatedAt)+" ago · took "+opTook(env, op))
	lines := append([]string{head, sub}, w.follow.render(env, env.Height-2)...)
	return box(strings.Join(lines, "\n"), env.Width, env.Height)
}
