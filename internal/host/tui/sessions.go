package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// stopTimeout is how long a stop waits after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// sessionsPane is the Sessions pane of a VM's detail: the list, the start
// form, a session's output, and the actions (attach, stop, kill, rm).
type sessionsPane struct {
	vm       string
	selected string // session ID
	form     *form
	sending  bool
	// confirm is the session a remove waits on y for.
	confirm string
	// logs shows one session's output (read once, not followed).
	logs     *textLog
	logsOf   string
	streamID int
	stopLogs func()
	keys     sessionKeys
}

type sessionKeys struct {
	Up, Down, New, Attach, Logs, Stop, Kill, Remove, Yes, No, Close key.Binding
}

func newSessionsPane(vm string) *sessionsPane {
	return &sessionsPane{
		vm: vm,
		keys: sessionKeys{
			Up:     key.NewBinding(key.WithKeys("up"), key.WithHelp("↑/↓", "select")),
			Down:   key.NewBinding(key.WithKeys("down")),
			New:    key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "new session")),
			Attach: key.NewBinding(key.WithKeys("a", "enter"), key.WithHelp("a", "attach")),
			Logs:   key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "output")),
			Stop:   key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "stop")),
			Kill:   key.NewBinding(key.WithKeys("K"), key.WithHelp("K", "kill")),
			Remove: key.NewBinding(key.WithKeys("D"), key.WithHelp("D", "remove")),
			Yes:    key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "remove it")),
			No:     key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n/esc", "keep it")),
			Close:  key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close output")),
		},
	}
}

// sessionsListedMsg is a VM's sessions, listed once when its detail opens.
type sessionsListedMsg struct {
	vm   string
	list []api.Session
	err  error
}

// load lists the VM's sessions: one call when the detail opens; events
// keep the list current after.
func (p *sessionsPane) load(env *Env) tea.Cmd {
	cl, ctx, vm := env.client, env.ctx, p.vm
	if cl == nil {
		return nil
	}
	return func() tea.Msg {
		list, err := cl.Sessions(ctx, vm)
		return sessionsListedMsg{vm: vm, list: list, err: err}
	}
}

func (p *sessionsPane) close() {
	if p.stopLogs != nil {
		p.stopLogs()
		p.stopLogs = nil
	}
}

func (p *sessionsPane) capturing() bool { return p.form != nil || p.confirm != "" }

func (p *sessionsPane) keyHelp() []key.Binding {
	k := p.keys
	switch {
	case p.form != nil:
		return p.form.keyHelp()
	case p.confirm != "":
		return []key.Binding{k.Yes, k.No}
	case p.logs != nil:
		return append([]key.Binding{k.Close}, p.logs.help()...)
	}
	return []key.Binding{k.Up, k.New, k.Attach, k.Logs, k.Stop, k.Kill, k.Remove}
}

func (p *sessionsPane) list(env *Env) []api.Session {
	list, _ := env.Store.Sessions(p.vm)
	return list
}

func (p *sessionsPane) current(env *Env) (api.Session, bool) {
	list := p.list(env)
	if len(list) == 0 {
		return api.Session{}, false
	}
	for _, s := range list {
		if s.ID == p.selected {
			return s, true
		}
	}
	return list[0], true
}

// sessionStartedMsg is the daemon's answer to a session start.
type sessionStartedMsg struct {
	pane *sessionsPane
	ses  api.Session
	err  error
}

// attachDoneMsg: the terminal came back from an attach.
type attachDoneMsg struct {
	res frontend.AttachResult
	ses api.Session
	err error
}

func (p *sessionsPane) update(env *Env, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case sessionStartedMsg:
		if msg.pane != p {
			return nil
		}
		p.sending = false
		if msg.err != nil {
			return p.form.setError(msg.err)
		}
		p.form = nil
		p.selected = msg.ses.ID
		return status("started session " + termsafe.Line(sessionLabel(msg.ses)))
	case logChunkMsg:
		if p.logs != nil && msg.id == p.streamID {
			p.logs.write(msg.data)
		}
		return nil
	case logEndMsg:
		if p.logs != nil && msg.id == p.streamID && msg.err != nil && !errors.Is(msg.err, context.Canceled) {
			p.logs.write([]byte("\n[output: " + errorText(msg.err) + "]\n"))
		}
		return nil
	case tea.KeyPressMsg:
		return p.key(env, msg)
	}
	return nil
}

func (p *sessionsPane) key(env *Env, msg tea.KeyPressMsg) tea.Cmd {
	k := p.keys
	if p.form != nil {
		if p.sending {
			return nil
		}
		act, cmd := p.form.update(msg)
		switch act {
		case formCancel:
			p.form = nil
			return nil
		case formSubmit:
			return p.submit(env)
		}
		return cmd
	}
	if p.confirm != "" {
		id, vm := p.confirm, p.vm
		switch {
		case key.Matches(msg, k.Yes):
			p.confirm = ""
			return env.Do("removed the session", func(ctx context.Context, cl *client.Client) error {
				_, err := frontend.RemoveSession(ctx, cl, env.opts.Cursors, vm, id)
				return err
			}, nil)
		case key.Matches(msg, k.No):
			p.confirm = ""
		}
		return nil
	}
	if p.logs != nil {
		if key.Matches(msg, k.Close) {
			p.close()
			p.logs = nil
			return nil
		}
		p.logs.key(msg, max(env.Height-5, 1))
		return nil
	}
	list := p.list(env)
	cur, ok := p.current(env)
	switch {
	case key.Matches(msg, k.New):
		p.form = newSessionForm()
		themeInputs(env, p.form)
		return p.form.setFocus(0)
	case key.Matches(msg, k.Up), key.Matches(msg, k.Down):
		for i, s := range list {
			if s.ID != cur.ID {
				continue
			}
			if key.Matches(msg, k.Up) && i > 0 {
				p.selected = list[i-1].ID
			}
			if key.Matches(msg, k.Down) && i+1 < len(list) {
				p.selected = list[i+1].ID
			}
			break
		}
		return nil
	}
	if !ok {
		return nil
	}
	p.selected = cur.ID
	vm, id, label := p.vm, cur.ID, termsafe.Line(sessionLabel(cur))
	switch {
	case key.Matches(msg, k.Attach):
		return attachTo(env, vm, cur)
	case key.Matches(msg, k.Logs):
		p.showLogs(env, cur)
		return nil
	case key.Matches(msg, k.Stop):
		return tea.Batch(status("stopping session "+label+" (SIGTERM, then SIGKILL after "+stopTimeout.String()+")…"),
			env.Do("stopped session "+label, func(ctx context.Context, cl *client.Client) error {
				_, err := frontend.StopSession(ctx, cl, vm, id, frontend.StopOptions{Signal: "TERM", Timeout: stopTimeout})
				return err
			}, nil))
	case key.Matches(msg, k.Kill):
		return env.Do("killed session "+label, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.SignalSession(ctx, vm, id, "KILL")
			return err
		}, nil)
	case key.Matches(msg, k.Remove):
		p.confirm = id
	}
	return nil
}

// showLogs shows what the session printed (everything still buffered),
// then its live output, in a scrollable pane; it never touches stdin.
func (p *sessionsPane) showLogs(env *Env, ses api.Session) {
	p.close()
	p.logs = newTextLog()
	p.logsOf = sessionLabel(ses)
	id := nextStreamID()
	p.streamID = id
	vm, ref := p.vm, ses.ID
	p.stopLogs = env.Stream(func(ctx context.Context, cl *client.Client, send func(tea.Msg)) error {
		a, _, err := cl.Attach(ctx, vm, ref, client.AttachOptions{Since: -1})
		if err != nil {
			send(logEndMsg{id: id, err: err})
			return nil
		}
		defer a.Close()
		stop := context.AfterFunc(ctx, func() { a.Close() })
		defer stop()
		w := logWriter{id: id, send: send}
		for {
			ch, err := a.Next()
			if err != nil {
				if errors.Is(err, io.EOF) || ctx.Err() != nil {
					err = nil
				}
				send(logEndMsg{id: id, err: err})
				return nil
			}
			switch ch.Stream {
			case "gap":
				w.Write(fmt.Appendf(nil, "[%d bytes of output are no longer buffered]\n", ch.Dropped))
			default:
				w.Write(ch.Data)
			}
		}
	})
}

func newSessionForm() *form {
	f := newForm(
		newTextField("Command", "argv", "", "e.g. bash, or python3 -u app.py"),
		newTextField("Name", "name", "", "optional"),
		newTextField("Cwd", "cwd", "", "default /root/repo, else /root"),
		newTextField("Env", "env", "", "KEY=VALUE KEY2=VALUE2"),
		newToggleField("TTY", "tty", true),
	)
	f.field("tty").hint = "a terminal (ctrl+] detaches); off: pipes (ctrl+c detaches)"
	return f
}

func (p *sessionsPane) submit(env *Env) tea.Cmd {
	f := p.form
	f.clearErrors()
	argv, err := splitWords(f.field("argv").value())
	if err != nil {
		return f.setFieldError("argv", err.Error())
	}
	if len(argv) == 0 {
		return f.setFieldError("argv", "type the command to run, e.g. bash")
	}
	envv, err := splitWords(f.field("env").value())
	if err != nil {
		return f.setFieldError("env", err.Error())
	}
	for _, kv := range envv {
		if !strings.Contains(kv, "=") {
			return f.setFieldError("env", fmt.Sprintf("%q is not KEY=VALUE", kv))
		}
	}
	req := api.StartSessionRequest{
		Name: f.field("name").value(),
		Argv: argv,
		Cwd:  f.field("cwd").value(),
		Env:  envv,
		TTY:  f.field("tty").on,
	}
	if req.TTY {
		req.Rows, req.Cols = uint16(max(env.Height+3, 24)), uint16(max(env.Width, 80))
	}
	p.sending = true
	cl, ctx, vm := env.client, env.ctx, p.vm
	return func() tea.Msg {
		if cl == nil {
			return sessionStartedMsg{pane: p, err: errNotConnected}
		}
		ses, err := cl.StartSession(ctx, vm, req)
		return sessionStartedMsg{pane: p, ses: ses, err: err}
	}
}

// splitWords splits a command line the way a shell splits words: spaces
// separate, single and double quotes group, a backslash escapes.
func splitWords(s string) ([]string, error) {
	var (
		out   []string
		cur   strings.Builder
		in    bool
		quote rune
		esc   bool
	)
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc, in = false, true
		case r == '\\' && quote != '\'':
			esc = true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("a %c quote is not closed", quote)
	}
	if esc {
		cur.WriteRune('\\')
	}
	if in || esc {
		out = append(out, cur.String())
	}
	return out, nil
}

// sessionLabel is a session's name, else its ID.
func sessionLabel(s api.Session) string {
	if s.Name != "" {
		return s.Name
	}
	return s.ID
}

func (p *sessionsPane) render(env *Env, height int) string {
	t := env.Theme
	if p.form != nil {
		lines := []string{t.Bold.Render(" Start a session in " + termsafe.Line(p.vm)), ""}
		lines = append(lines, p.form.render(env)...)
		if p.sending {
			lines = append(lines, "", "  starting…")
		}
		return strings.Join(lines, "\n")
	}
	if p.logs != nil {
		head := t.Bold.Render(" Output of " + termsafe.Line(p.logsOf))
		body := p.logs.render(env.Width, height-1)
		if body == "" {
			body = t.Faint.Render("  (no output)")
		}
		return head + "\n" + body
	}
	list, listed := env.Store.Sessions(p.vm)
	if len(list) == 0 {
		if !listed {
			return t.Faint.Render("  listing sessions…")
		}
		return "  No sessions. Press n to start one."
	}
	cur, _ := p.current(env)
	lines := []string{t.Header.Render(" " + fit("NAME", 16) + " " + fit("STATE", 8) + " " + fit("TTY", 3) + " " + fit("AGE", 4) + " COMMAND")}
	for _, s := range list {
		mark := " "
		if s.ID == cur.ID {
			mark = ">"
		}
		state := s.State
		if s.ExitCode != nil {
			state += fmt.Sprintf(" %d", *s.ExitCode)
		} else if s.Signal != "" {
			state += " " + s.Signal
		}
		tty := "no"
		if s.TTY {
			tty = "yes"
		}
		line := mark + fit(termsafe.Line(sessionLabel(s)), 16) + " " + fit(state, 8) + " " + fit(tty, 3) + " " +
			fitLeft(env.Format.Age(s.StartedAt), 4) + " " + forkedMark(s) + termsafe.Line(strings.Join(s.Argv, " "))
		if s.ID == cur.ID {
			line = t.Selected.Render(fit(line, env.Width))
		}
		lines = append(lines, line)
	}
	if p.confirm != "" {
		lines = append(lines, "", t.Error.Render("Remove this session and its output?")+" y remove · n keep")
	}
	return strings.Join(lines, "\n")
}

// forkedMark says, before a session's command, that it was copied from
// another VM by a fork.
func forkedMark(s api.Session) string {
	if s.ForkedFrom == "" {
		return ""
	}
	return "(forked from " + termsafe.Line(s.ForkedFrom) + ") "
}
