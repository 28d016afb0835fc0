package tui

import (
	"errors"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/charmbracelet/x/ansi"
)

// form is a column of labelled fields with an error under each: the
// create and session forms. A field is a text input, a choice among values
// (←/→), or a yes/no toggle (space). Errors are set per API field name
// (api.Error.Field), so what the daemon refused shows under the field the
// user typed it in.
//
// It is built on bubbles' textinput rather than huh: huh validates a field
// when it loses the focus and has no way to show an error that arrives
// later from the daemon next to the field it names, which is the point of
// api.Error.Field.
type form struct {
	fields []*field
	focus  int
	// err is an error no field owns.
	err  string
	keys formKeys
}

type fieldKind int

const (
	textField fieldKind = iota
	choiceField
	toggleField
)

type field struct {
	label string
	// api is the request field's JSON name, as api.Error.Field names it.
	api     string
	kind    fieldKind
	input   textinput.Model
	choices []string
	choice  int
	on      bool
	hint    string
	err     string
}

type formKeys struct {
	Next, Prev, Left, Right, Toggle, Submit, Cancel key.Binding
}

func newFormKeys() formKeys {
	return formKeys{
		Next:   key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab/↓", "next field")),
		Prev:   key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("shift+tab/↑", "previous")),
		Left:   key.NewBinding(key.WithKeys("left"), key.WithHelp("←/→", "choose")),
		Right:  key.NewBinding(key.WithKeys("right")),
		Toggle: key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "toggle")),
		Submit: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "submit")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}
}

func newTextField(label, apiName, value, placeholder string) *field {
	in := textinput.New()
	in.Prompt = ""
	in.Placeholder = placeholder
	in.CharLimit = 256
	in.SetValue(value)
	return &field{label: label, api: apiName, kind: textField, input: in}
}

func newChoiceField(label, apiName string, choices []string, value string) *field {
	f := &field{label: label, api: apiName, kind: choiceField, choices: choices}
	for i, c := range choices {
		if c == value {
			f.choice = i
		}
	}
	return f
}

func newToggleField(label, apiName string, on bool) *field {
	return &field{label: label, api: apiName, kind: toggleField, on: on}
}

// value is what the field holds, trimmed.
func (f *field) value() string {
	switch f.kind {
	case choiceField:
		if len(f.choices) == 0 {
			return ""
		}
		return f.choices[f.choice]
	case toggleField:
		if f.on {
			return "yes"
		}
		return "no"
	}
	return strings.TrimSpace(f.input.Value())
}

func newForm(fields ...*field) *form {
	f := &form{fields: fields, keys: newFormKeys()}
	f.setFocus(0)
	return f
}

func (f *form) setFocus(i int) tea.Cmd {
	f.focus = i
	var cmd tea.Cmd
	for j, fl := range f.fields {
		if fl.kind != textField {
			continue
		}
		if j == i {
			cmd = fl.input.Focus()
		} else {
			fl.input.Blur()
		}
	}
	return cmd
}

// field returns the field with the API name.
func (f *form) field(apiName string) *field {
	for _, fl := range f.fields {
		if fl.api == apiName {
			return fl
		}
	}
	return nil
}

// clearErrors forgets every error (before a new submit).
func (f *form) clearErrors() {
	f.err = ""
	for _, fl := range f.fields {
		fl.err = ""
	}
}

// setError puts err under the field it names (api.Error.Field), with what
// the field allows, or at the form's foot; it focuses that field.
func (f *form) setError(err error) tea.Cmd {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Field != "" {
		for i, fl := range f.fields {
			if fl.api != ae.Field {
				continue
			}
			msg := ae.Message
			if ae.Allowed != "" && !strings.Contains(msg, ae.Allowed) {
				msg += " (allowed: " + ae.Allowed + ")"
			}
			fl.err = termsafe.Line(msg)
			return f.setFocus(i)
		}
	}
	f.err = termsafe.Line(errorText(err))
	return nil
}

// setFieldError is a check made before sending, under the field.
func (f *form) setFieldError(apiName, msg string) tea.Cmd {
	for i, fl := range f.fields {
		if fl.api == apiName {
			fl.err = msg
			return f.setFocus(i)
		}
	}
	f.err = msg
	return nil
}

func (f *form) hasErrors() bool {
	if f.err != "" {
		return true
	}
	for _, fl := range f.fields {
		if fl.err != "" {
			return true
		}
	}
	return false
}

// formAction is what a key did to the form.
type formAction int

const (
	formNone formAction = iota
	formSubmit
	formCancel
)

// update handles a key.
func (f *form) update(msg tea.KeyPressMsg) (formAction, tea.Cmd) {
	k := f.keys
	cur := f.fields[f.focus]
	switch {
	case key.Matches(msg, k.Cancel):
		return formCancel, nil
	case key.Matches(msg, k.Submit):
		return formSubmit, nil
	case key.Matches(msg, k.Next):
		return formNone, f.setFocus((f.focus + 1) % len(f.fields))
	case key.Matches(msg, k.Prev):
		return formNone, f.setFocus((f.focus + len(f.fields) - 1) % len(f.fields))
	}
	switch cur.kind {
	case choiceField:
		if len(cur.choices) == 0 {
			return formNone, nil
		}
		switch {
		case key.Matches(msg, k.Left):
			cur.choice = (cur.choice + len(cur.choices) - 1) % len(cur.choices)
			cur.err = ""
		case key.Matches(msg, k.Right), key.Matches(msg, k.Toggle):
			cur.choice = (cur.choice + 1) % len(cur.choices)
			cur.err = ""
		}
		return formNone, nil
	case toggleField:
		if key.Matches(msg, k.Toggle) || key.Matches(msg, k.Left) || key.Matches(msg, k.Right) {
			cur.on = !cur.on
		}
		return formNone, nil
	}
	before := cur.input.Value()
	var cmd tea.Cmd
	cur.input, cmd = cur.input.Update(msg)
	if cur.input.Value() != before {
		cur.err = ""
	}
	return formNone, cmd
}

// keyHelp is the help bar of a form.
func (f *form) keyHelp() []key.Binding {
	k := f.keys
	out := []key.Binding{k.Submit, k.Cancel, k.Next}
	switch f.fields[f.focus].kind {
	case choiceField:
		out = append(out, k.Left)
	case toggleField:
		out = append(out, k.Toggle)
	}
	return out
}

// render draws the fields, one per line, each error on the line below it.
func (f *form) render(env *Env) []string {
	t := env.Theme
	labelW := 0
	for _, fl := range f.fields {
		labelW = max(labelW, len(fl.label))
	}
	var lines []string
	for i, fl := range f.fields {
		mark := "  "
		label := fit(fl.label, labelW)
		if i == f.focus {
			mark = "> "
			label = t.Bold.Render(label)
		}
		var val string
		switch fl.kind {
		case textField:
			fl.input.SetWidth(max(env.Width-labelW-8, 10))
			val = fl.input.View()
		case choiceField:
			if len(fl.choices) == 0 {
				val = t.Faint.Render("(none)")
			} else {
				val = "‹ " + termsafe.Line(fl.choices[fl.choice]) + " ›"
			}
		case toggleField:
			if fl.on {
				val = "[x]"
			} else {
				val = "[ ]"
			}
		}
		line := mark + label + "  " + val
		if fl.hint != "" {
			line += "  " + t.Faint.Render(fl.hint)
		}
		lines = append(lines, line)
		if fl.err != "" {
			pad := strings.Repeat(" ", labelW+4)
			for i, l := range wrapLines("✗ "+fl.err, env.Width-len(pad)-2, maxErrorLines) {
				if i > 0 {
					l = "  " + l
				}
				lines = append(lines, pad+t.Error.Render(l))
			}
		}
	}
	if f.err != "" {
		lines = append(lines, "")
		for i, l := range wrapLines("✗ "+f.err, env.Width-6, maxErrorLines) {
			if i > 0 {
				l = "  " + l
			}
			lines = append(lines, "  "+t.Error.Render(l))
		}
	}
	return lines
}

// maxErrorLines is how many lines an error in a form may take.
const maxErrorLines = 3

// wrapLines breaks s into lines of at most width cells at spaces, n lines at
// most (the last cut with an ellipsis).
func wrapLines(s string, width, n int) []string {
	width = max(width, 10)
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case ansi.StringWidth(line)+1+ansi.StringWidth(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	if len(lines) > n {
		lines = lines[:n]
		lines[n-1] = fit(lines[n-1]+" …", width)
	}
	return lines
}
