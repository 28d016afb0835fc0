package tui

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// imageForm is the bootstrap or the build form, then the live stages and
// the log of the operation it began. What the daemon refuses — at once,
// or when the operation fails on a field — shows under the field it
// names (api.Error.Field), with what the field allows.
type imageForm struct {
	title string
	// verb heads the progress screen ("Bootstrapping", "Building").
	verb string
	form *form
	// begin reads the form into a request and returns the call that
	// starts the operation and the image's name, or the field at fault.
	begin   func() (call func(ctx context.Context, cl *client.Client) (api.Operation, error), name, field, problem string)
	sending bool
	name    string
	follow  *opFollow
	// made is the image's name once the operation succeeded.
	made string
	keys createKeys
}

// Distros the bootstrap form offers (the daemon's allowed list).
var distroChoices = []string{"debian"}

func newBootstrapForm(env *Env) *imageForm {
	f := newForm(
		newChoiceField("Distro", "distro", distroChoices, "debian"),
		newTextField("Suite", "suite", "", "default, e.g. bookworm or trixie"),
		newTextField("Name", "name", "", "default: distro-suite"),
		newTextField("Mirror", "mirror", "", "default Debian mirror"),
	)
	themeInputs(env, f)
	c := &imageForm{title: "Bootstrap a base image", verb: "Bootstrapping", form: f, keys: imageFormKeys("bootstrap")}
	c.begin = func() (func(context.Context, *client.Client) (api.Operation, error), string, string, string) {
		req := api.BootstrapImageRequest{
			Distro: f.field("distro").value(),
			Suite:  f.field("suite").value(),
			Name:   f.field("name").value(),
			Mirror: f.field("mirror").value(),
		}
		name := req.Name
		if name == "" {
			name = strings.TrimSuffix(req.Distro+"-"+req.Suite, "-")
		}
		return func(ctx context.Context, cl *client.Client) (api.Operation, error) {
			return cl.BeginBootstrapImage(ctx, req)
		}, name, "", ""
	}
	return c
}

func newBuildForm(env *Env, from string) *imageForm {
	var images []string
	for _, im := range env.Store.Images() {
		if im.State != "removed" {
			images = append(images, im.Name)
		}
	}
	f := newForm(
		newChoiceField("From", "from", images, from),
		newTextField("Name", "name", "", "the new image's name"),
		newTextField("Presets", "presets", "", "comma-separated, e.g. agents"),
		newTextField("Packages", "packages", "", "Debian packages, space-separated"),
		newTextField("Script", "script", "", "path of a shell script run as root"),
	)
	themeInputs(env, f)
	c := &imageForm{title: "Build an image", verb: "Building", form: f, keys: imageFormKeys("build")}
	c.begin = func() (func(context.Context, *client.Client) (api.Operation, error), string, string, string) {
		req := api.BuildImageRequest{
			From:     f.field("from").value(),
			Name:     f.field("name").value(),
			Presets:  splitList(f.field("presets").value()),
			Packages: splitList(f.field("packages").value()),
		}
		if p := f.field("script").value(); p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, req.Name, "script", "cannot read the script: " + err.Error()
			}
			req.Script, req.ScriptName = string(b), filepath.Base(p)
		}
		return func(ctx context.Context, cl *client.Client) (api.Operation, error) {
			return cl.BeginBuildImage(ctx, req)
		}, req.Name, "", ""
	}
	return c
}

// themeInputs gives the form's text inputs the theme's look: bubbles'
// default styles colour the placeholder and the prompt, which NO_COLOR
// forbids; without colour the placeholder is faint instead.
func themeInputs(env *Env, f *form) {
	if _, none := env.Theme.OK.GetForeground().(lipgloss.NoColor); !none {
		return
	}
	plain := lipgloss.NewStyle()
	state := textinput.StyleState{Text: plain, Placeholder: env.Theme.Faint, Suggestion: env.Theme.Faint, Prompt: plain}
	for _, fl := range f.fields {
		if fl.kind != textField {
			continue
		}
		st := fl.input.Styles()
		st.Focused, st.Blurred = state, state
		st.Cursor.Color = nil
		fl.input.SetStyles(st)
	}
}

func imageFormKeys(what string) createKeys {
	return createKeys{
		CancelOp: key.NewBinding(key.WithKeys("ctrl+x"), key.WithHelp("ctrl+x", "cancel "+what)),
		Back:     key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back to images")),
	}
}

// splitList reads "a, b c" as [a b c].
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

func (c *imageForm) Init(env *Env) tea.Cmd { return c.form.setFocus(0) }

func (c *imageForm) close() { c.follow.close() }

// Capturing: the form takes every key; the progress screen leaves tab and
// q to the App.
func (c *imageForm) Capturing() bool { return c.follow == nil }

func (c *imageForm) Keys() []key.Binding {
	if c.follow == nil {
		return c.form.keyHelp()
	}
	out := []key.Binding{c.keys.Back}
	if !c.follow.ended {
		out = append(out, c.keys.CancelOp)
	}
	if len(c.follow.log.all()) > 0 {
		out = append(out, c.follow.log.help()...)
	}
	return out
}

// imageBegunMsg is the daemon's answer to the form's request.
type imageBegunMsg struct {
	form *imageForm
	op   api.Operation
	err  error
}

// Update returns true when the user left the form or its progress.
func (c *imageForm) Update(env *Env, msg tea.Msg) (bool, tea.Cmd) {
	if c.follow != nil && c.follow.update(msg) {
		op := c.follow.op(env)
		if op.State == api.OperationSucceeded {
			c.made = c.name
			if op.Target != "" {
				c.made = op.Target
			}
		}
		// A request the daemon checked only once the operation ran
		// comes back as a failed operation naming the field: back to
		// the form with the error under it.
		if c.follow.ended && op.State == api.OperationFailed && op.Error != nil && op.Error.Field != "" && c.form.field(op.Error.Field) != nil {
			c.follow.close()
			c.follow = nil
			return false, c.form.setError(op.Error)
		}
		if _, end := msg.(opEndMsg); end {
			return false, c.follow.endStatus(env)
		}
		return false, nil
	}
	switch msg := msg.(type) {
	case imageBegunMsg:
		if msg.form != c {
			return false, nil
		}
		c.sending = false
		if msg.err != nil {
			return false, c.form.setError(msg.err)
		}
		c.follow = followOp(env, msg.op)
		return false, nil
	case tea.KeyPressMsg:
		if c.follow != nil {
			switch {
			case key.Matches(msg, c.keys.CancelOp):
				return false, c.follow.cancel(env, strings.ToLower(c.verb)+" "+c.name)
			case key.Matches(msg, c.keys.Back):
				return true, nil
			}
			c.follow.log.key(msg, c.follow.logHeight(env, env.Height-2))
			return false, nil
		}
		if c.sending {
			return false, nil
		}
		act, cmd := c.form.update(msg)
		switch act {
		case formCancel:
			return true, nil
		case formSubmit:
			return false, c.submit(env)
		}
		return false, cmd
	}
	return false, nil
}

func (c *imageForm) submit(env *Env) tea.Cmd {
	c.form.clearErrors()
	call, name, fieldName, problem := c.begin()
	if problem != "" {
		return c.form.setFieldError(fieldName, problem)
	}
	c.sending = true
	c.name = name
	cl, ctx := env.client, env.ctx
	return func() tea.Msg {
		if cl == nil {
			return imageBegunMsg{form: c, err: errNotConnected}
		}
		op, err := call(ctx, cl)
		return imageBegunMsg{form: c, op: op, err: err}
	}
}

func (c *imageForm) Render(env *Env) string {
	t := env.Theme
	if c.follow == nil {
		lines := []string{t.Bold.Render(" " + c.title), ""}
		lines = append(lines, c.form.render(env)...)
		if c.sending {
			lines = append(lines, "", "  sending…")
		}
		return box(strings.Join(lines, "\n"), env.Width, env.Height)
	}
	op := c.follow.op(env)
	name := c.name
	if op.Target != "" {
		name = op.Target
	}
	head := t.Bold.Render(" "+c.verb+" image "+termsafe.Line(name)) + " · " + t.State(string(op.State))
	lines := []string{head, ""}
	lines = append(lines, c.follow.render(env, env.Height-3)...)
	if op.State == api.OperationSucceeded {
		lines = append(lines, "", t.OK.Render("  image "+termsafe.Line(name)+" is ready.")+" esc: back to the images")
	}
	return box(strings.Join(lines, "\n"), env.Width, env.Height)
}
