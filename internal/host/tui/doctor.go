package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// doctorView is the Doctor tab: the quick checks (GET /v1/doctor) with
// each one's status, detail and fix, and the deep checks (a doctor
// operation that boots a probe guest) followed live, whose report then
// replaces the quick one.
type doctorView struct {
	report  *api.DoctorReport
	deep    bool // report came from the deep checks
	loading bool
	err     error
	// running is the deep checks' operation while it is followed.
	running *opFollow
	// offset is the first line of the report shown (scrolling).
	offset int
	keys   doctorKeys
}

type doctorKeys struct {
	Up, Down, Quick, Deep, Cancel key.Binding
}

func newDoctorView() *doctorView {
	return &doctorView{keys: doctorKeys{
		Up:     key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/↓", "scroll")),
		Down:   key.NewBinding(key.WithKeys("down", "j")),
		Quick:  key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "run quick checks")),
		Deep:   key.NewBinding(key.WithKeys("D"), key.WithHelp("D", "run deep checks")),
		Cancel: key.NewBinding(key.WithKeys("ctrl+x"), key.WithHelp("ctrl+x", "cancel deep checks")),
	}}
}

func (v *doctorView) Title() string { return "Doctor" }

// doctorMsg is a quick doctor report.
type doctorMsg struct {
	report api.DoctorReport
	err    error
}

// deepBegunMsg is the daemon's answer to the deep checks' request.
type deepBegunMsg struct {
	op  api.Operation
	err error
}

// Init runs the quick checks once, when the program has a client.
func (v *doctorView) Init(env *Env) tea.Cmd { return v.quick(env) }

func (v *doctorView) quick(env *Env) tea.Cmd {
	v.loading = true
	cl, ctx := env.client, env.ctx
	return func() tea.Msg {
		if cl == nil {
			return doctorMsg{err: errNotConnected}
		}
		r, err := cl.Doctor(ctx)
		return doctorMsg{report: r, err: err}
	}
}

func (v *doctorView) Capturing() bool { return false }

func (v *doctorView) Keys() []key.Binding {
	k := v.keys
	if v.running != nil && !v.running.ended {
		return []key.Binding{k.Cancel}
	}
	return []key.Binding{k.Quick, k.Deep, k.Up}
}

func (v *doctorView) Update(env *Env, msg tea.Msg) tea.Cmd {
	if v.running != nil && v.running.update(msg) {
		if v.running.ended {
			return v.deepEnded(env)
		}
		return nil
	}
	switch msg := msg.(type) {
	case ReconnectedMsg:
		// A daemon that came back may see the host differently (it
		// restarted, was upgraded): the quick checks are cheap.
		if !msg.First && v.running == nil {
			return v.quick(env)
		}
		return nil
	case doctorMsg:
		v.loading = false
		v.err = msg.err
		if msg.err == nil {
			v.report, v.deep, v.offset = &msg.report, false, 0
		}
		return nil
	case deepBegunMsg:
		if msg.err != nil {
			v.err = msg.err
			return nil
		}
		v.err = nil
		v.running = followOp(env, msg.op)
		return nil
	case tea.KeyPressMsg:
		return v.key(env, msg)
	}
	return nil
}

// deepEnded shows the deep report once the operation finished.
func (v *doctorView) deepEnded(env *Env) tea.Cmd {
	op := v.running.op(env)
	if op.State != api.OperationSucceeded {
		return v.running.endStatus(env) // its stages and error stay on screen
	}
	var r api.DoctorReport
	if err := frontend.DecodeResult(op, &r); err != nil {
		v.err = err
		return nil
	}
	v.running.close()
	v.running = nil
	v.report, v.deep, v.offset = &r, true, 0
	return status("deep checks done: " + string(r.Worst()))
}

func (v *doctorView) key(env *Env, msg tea.KeyPressMsg) tea.Cmd {
	k := v.keys
	if v.running != nil && !v.running.ended {
		if key.Matches(msg, k.Cancel) {
			return v.running.cancel(env, "the deep checks")
		}
		return nil
	}
	switch {
	case key.Matches(msg, k.Up):
		v.offset = max(v.offset-1, 0)
	case key.Matches(msg, k.Down):
		v.offset++
	case key.Matches(msg, k.Quick):
		if v.running != nil {
			v.running.close()
			v.running = nil
		}
		return tea.Batch(status("running the quick checks…"), v.quick(env))
	case key.Matches(msg, k.Deep):
		if v.running != nil {
			v.running.close()
			v.running = nil
		}
		v.err = nil
		cl, ctx := env.client, env.ctx
		return tea.Batch(status("starting the deep checks (they boot a probe guest)…"), func() tea.Msg {
			if cl == nil {
				return deepBegunMsg{err: errNotConnected}
			}
			op, err := cl.BeginDeepDoctor(ctx, api.DeepDoctorRequest{})
			return deepBegunMsg{op: op, err: err}
		})
	}
	return nil
}

// checkMark is a check's status as a mark and a word.
func checkMark(t Theme, s api.CheckStatus) string {
	switch s {
	case api.CheckOK:
		return t.OK.Render("✓ ok  ")
	case api.CheckWarn:
		return t.Warn.Render("! warn")
	case api.CheckFail:
		return t.Error.Render("✗ fail")
	}
	return t.Faint.Render("- skip")
}

// reportLines is every check: its mark, name and detail on one line, and
// the fix of one that is not ok on the next.
func (v *doctorView) reportLines(env *Env) []string {
	t := env.Theme
	r := v.report
	nameW := 0
	for _, c := range r.Checks {
		nameW = max(nameW, len(c.Name))
	}
	nameW = min(nameW, 18)
	indent := strings.Repeat(" ", 10+nameW)
	textW := max(env.Width-len(indent), 20)
	var lines []string
	for _, c := range r.Checks {
		detail := wordWrap(termsafe.Line(c.Detail), textW)
		lines = append(lines, " "+checkMark(t, c.Status)+" "+fit(termsafe.Line(c.Name), nameW)+"  "+detail[0])
		for _, l := range detail[1:] {
			lines = append(lines, indent+l)
		}
		if c.Status != api.CheckOK && c.Fix != "" {
			for i, l := range wordWrap("fix: "+termsafe.Line(c.Fix), textW) {
				if i == 0 {
					l = t.Faint.Render("fix:") + strings.TrimPrefix(l, "fix:")
				}
				lines = append(lines, indent+l)
			}
		}
	}
	return lines
}

func (v *doctorView) summary(env *Env) string {
	counts := map[api.CheckStatus]int{}
	for _, c := range v.report.Checks {
		counts[c.Status]++
	}
	kind := "Quick checks"
	if v.deep {
		kind = "Deep checks"
	}
	return fmt.Sprintf("%s: %d ok, %d warn, %d fail, %d skipped", kind,
		counts[api.CheckOK], counts[api.CheckWarn], counts[api.CheckFail], counts[api.CheckSkip])
}

func (v *doctorView) Render(env *Env) string {
	t := env.Theme
	var lines []string
	if v.running != nil {
		lines = append(lines, t.Bold.Render(" Deep checks")+" · "+t.State(string(v.running.op(env).State)), "")
		lines = append(lines, v.running.render(env, env.Height-2)...)
		if v.err != nil {
			lines = append(lines, "  "+t.Error.Render("✗ ")+termsafe.Line(errorText(v.err)))
		}
		return box(strings.Join(lines, "\n"), env.Width, env.Height)
	}
	switch {
	case v.report == nil && v.err != nil:
		return box("\n  "+t.Error.Render("✗ ")+termsafe.Line(errorText(v.err))+"\n  r runs the checks again", env.Width, env.Height)
	case v.report == nil:
		return box("\n  running the quick checks…", env.Width, env.Height)
	}
	head := " " + t.Bold.Render(v.summary(env))
	if v.loading {
		head += t.Faint.Render("  (running again…)")
	}
	lines = append(lines, head)
	if v.err != nil {
		lines = append(lines, "  "+t.Error.Render("✗ ")+termsafe.Line(errorText(v.err)))
	}
	body := v.reportLines(env)
	room := max(env.Height-len(lines), 1)
	v.offset = min(v.offset, max(len(body)-room, 0))
	lines = append(lines, body[v.offset:]...)
	return box(strings.Join(lines, "\n"), env.Width, env.Height)
}

// wordWrap breaks s at spaces into lines of at most w cells (a word longer
// than w is cut by the caller's fit).
func wordWrap(s string, w int) []string {
	words := strings.Fields(s)
	if len(words) == 0 {
		return []string{""}
	}
	var lines []string
	cur := words[0]
	for _, word := range words[1:] {
		if len([]rune(cur))+1+len([]rune(word)) > w {
			lines = append(lines, cur)
			cur = word
			continue
		}
		cur += " " + word
	}
	return append(lines, cur)
}
