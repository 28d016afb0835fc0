package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// maxPatchShown bounds the patch the diff view reads (`banger vm diff
// NAME -p` prints it whole): what is past it is cut, and the view says so.
const maxPatchShown = 8 << 20

// vmDiff is what changed in a VM's workspace since it was sent (`banger
// vm diff`): where it came from, the guest's commits, whether anything is
// left uncommitted, a table of the changed files, and on p the whole
// patch. All of it is the guest's account: every string from it goes
// through termsafe.
type vmDiff struct {
	name string
	// seq numbers the loads, so an answer to a load that was replaced
	// (a refresh) is dropped.
	seq     int
	loading bool
	diff    *api.WorkspaceDiff
	err     error
	summary pager

	showPatch    bool
	patch        *pager // nil until read
	patchLoading bool
	patchErr     error
	patchCut     bool
	stopPatch    func()

	keys diffKeys
}

type diffKeys struct {
	Back, Patch, Refresh key.Binding
}

func newVMDiff(name string) *vmDiff {
	return &vmDiff{
		name:    name,
		summary: newPager(),
		keys: diffKeys{
			Back:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
			Patch:   key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "patch/summary")),
			Refresh: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "refresh")),
		},
	}
}

// openDiffMsg asks the VMs view to open the diff of a VM (the detail
// sends it on D).
type openDiffMsg struct{ name string }

// diffMsg is the answer to a summary load.
type diffMsg struct {
	seq  int
	diff api.WorkspaceDiff
	err  error
}

// patchMsg is the answer to a patch load: the text read, whether it was
// cut at maxPatchShown, and the error that ended it otherwise.
type patchMsg struct {
	seq  int
	text string
	cut  bool
	err  error
}

// errPatchCut stops reading a patch at maxPatchShown.
var errPatchCut = errors.New("the patch is longer than the view shows")

// Init loads the summary.
func (d *vmDiff) Init(env *Env) tea.Cmd { return d.load(env) }

// load asks for the summary, and the patch too when it is on screen.
func (d *vmDiff) load(env *Env) tea.Cmd {
	d.seq++
	seq, name := d.seq, d.name
	d.loading = true
	var res api.WorkspaceDiff
	cmd := env.Do("", func(ctx context.Context, cl *client.Client) error {
		var err error
		res, err = cl.WorkspaceDiff(ctx, name)
		return err
	}, func(err error) tea.Msg { return diffMsg{seq: seq, diff: res, err: err} })
	d.patch, d.patchErr, d.patchCut = nil, nil, false
	if d.showPatch {
		d.loadPatch(env)
	}
	return cmd
}

// loadPatch reads the patch, at most maxPatchShown bytes, in the
// background.
func (d *vmDiff) loadPatch(env *Env) {
	if d.stopPatch != nil {
		d.stopPatch()
	}
	seq, name := d.seq, d.name
	d.patchLoading = true
	d.stopPatch = env.Stream(func(ctx context.Context, cl *client.Client, send func(tea.Msg)) error {
		w := &capWriter{left: maxPatchShown}
		err := cl.WorkspacePatch(ctx, name, 0, w)
		cut := errors.Is(err, errPatchCut)
		if cut {
			err = nil
		}
		send(patchMsg{seq: seq, text: w.buf.String(), cut: cut, err: err})
		return nil
	})
}

// Close stops a patch being read.
func (d *vmDiff) Close() {
	if d.stopPatch != nil {
		d.stopPatch()
		d.stopPatch = nil
	}
}

func (d *vmDiff) Capturing() bool { return false }

func (d *vmDiff) Keys() []key.Binding {
	k := d.keys
	return append([]key.Binding{k.Back, k.Patch, k.Refresh}, d.summary.help()...)
}

// Update returns true when the user left the view.
func (d *vmDiff) Update(env *Env, msg tea.Msg) (bool, tea.Cmd) {
	switch msg := msg.(type) {
	case diffMsg:
		if msg.seq == d.seq {
			d.loading = false
			d.err = msg.err
			d.diff = nil
			if msg.err == nil {
				d.diff = &msg.diff
				d.summary.lines = summaryLines(env, msg.diff)
			}
		}
	case patchMsg:
		if msg.seq == d.seq {
			d.patchLoading = false
			d.patchErr, d.patchCut = msg.err, msg.cut
			p := newPager()
			p.lines = patchLines(msg.text)
			p.style = patchStyle(env.Theme)
			d.patch = &p
		}
	case EventMsg:
		if msg.Kind == api.EventVM && msg.Removed && msg.Name == d.name {
			return true, status("VM " + termsafe.Line(d.name) + " was deleted")
		}
	case tea.KeyPressMsg:
		k := d.keys
		switch {
		case key.Matches(msg, k.Back):
			d.Close()
			return true, nil
		case key.Matches(msg, k.Patch):
			d.showPatch = !d.showPatch
			if d.showPatch && d.patch == nil && !d.patchLoading {
				d.loadPatch(env)
			}
		case key.Matches(msg, k.Refresh):
			return false, d.load(env)
		default:
			if d.showPatch && d.patch != nil {
				h := d.bodyHeight(env)
				if d.patchCut {
					h-- // the note's line
				}
				d.patch.key(msg, h)
			} else if !d.showPatch {
				d.summary.key(msg, d.bodyHeight(env))
			}
		}
	}
	return false, nil
}

// bodyHeight is the lines under the header and the pane bar.
func (d *vmDiff) bodyHeight(env *Env) int { return max(env.Height-4, 1) }

func (d *vmDiff) Render(env *Env) string {
	t := env.Theme
	vm, ok := env.Store.VM(d.name)
	state := "gone"
	if ok {
		state = t.State(vm.State)
	}
	ws := vm.Workspace
	if d.diff != nil {
		ws = &d.diff.Workspace
	}
	sent := t.Faint.Render(" nothing was sent into this VM's workspace")
	if ws != nil {
		sent = " " + sentLine(env, *ws)
	}
	var bar []string
	for i, p := range []string{"Summary", "Patch"} {
		if i == 1 == d.showPatch {
			bar = append(bar, t.TabOn.Render("["+p+"]"))
		} else {
			bar = append(bar, t.Tab.Render(" "+p+" "))
		}
	}
	head := []string{
		t.Bold.Render(" Changes in VM "+termsafe.Line(d.name)) + " · " + state,
		sent,
		" " + strings.Join(bar, " "),
		"",
	}
	h := d.bodyHeight(env)
	var body string
	switch {
	case d.err != nil:
		lines := []string{}
		for _, l := range wrapLines(termsafe.Line(errorText(d.err)), env.Width-4, h-1) {
			lines = append(lines, "  "+t.Error.Render(l))
		}
		body = strings.Join(lines, "\n")
	case d.showPatch:
		body = d.patchBody(env, h)
	case d.diff == nil:
		body = t.Faint.Render("  asking the guest what changed…")
	default:
		body = d.summary.render(env.Width, h)
	}
	return strings.Join(head, "\n") + "\n" + box(body, env.Width, h)
}

// patchBody is the patch, or what stands in for it.
func (d *vmDiff) patchBody(env *Env, h int) string {
	t := env.Theme
	switch {
	case d.patchErr != nil:
		var lines []string
		for _, l := range wrapLines(termsafe.Line(errorText(d.patchErr)), env.Width-4, h) {
			lines = append(lines, "  "+t.Error.Render(l))
		}
		return strings.Join(lines, "\n")
	case d.patch == nil:
		return t.Faint.Render("  reading the patch…")
	case len(d.patch.lines) == 0:
		return t.Faint.Render("  the patch is empty: nothing changed since it was sent")
	}
	if d.patchCut {
		// The last line shown is the note, the patch above it.
		out := d.patch.render(env.Width, h-1)
		return out + "\n" + t.Warn.Render(fit(fmt.Sprintf("  … cut at %s: `banger vm diff %s -p` prints it whole", bytesText(maxPatchShown), termsafe.Line(d.name)), env.Width))
	}
	return d.patch.render(env.Width, h)
}

// sentLine says where a workspace came from: "/root/repo sent from
// /home/me/proj at 0123456789ab (git mode, 5m ago)".
func sentLine(env *Env, ws api.Workspace) string {
	from := termsafe.Line(ws.HostPath)
	if ws.Head != "" {
		from += " at " + shortID(ws.Head)
	}
	return termsafe.Line(ws.Dir) + " sent from " + from + " (" + termsafe.Line(ws.Mode) + " mode, " + env.Format.Age(ws.PreparedAt) + " ago)"
}

// summaryLines are the guest's commits, the uncommitted flag and the
// diffstat table (the layout of `banger vm diff`), escaped.
func summaryLines(env *Env, d api.WorkspaceDiff) []string {
	t := env.Theme
	if len(d.Commits) == 0 && len(d.Files) == 0 {
		return []string{"  nothing changed since it was sent"}
	}
	var lines []string
	switch len(d.Commits) {
	case 0:
		lines = append(lines, "  no commits in the guest")
	case 1:
		lines = append(lines, "  1 commit in the guest:")
	default:
		lines = append(lines, fmt.Sprintf("  %d commits in the guest:", len(d.Commits)))
	}
	for _, c := range d.Commits {
		lines = append(lines, "    "+t.Warn.Render(shortID(c.ID))+" "+termsafe.Line(c.Subject)+
			t.Faint.Render(" ("+termsafe.Line(c.Author)+", "+env.Format.Age(c.Time)+" ago)"))
	}
	if d.Uncommitted {
		lines = append(lines, "  "+t.Bold.Render("uncommitted changes")+" in the guest (untracked files included)")
	}
	lines = append(lines, "")
	// The table: status, lines added, lines deleted, path (last, so a
	// long one is what is cut).
	plus, minus := len("+"), len("-")
	for _, f := range d.Files {
		plus = max(plus, len(strconv.Itoa(f.Added)))
		minus = max(minus, len(strconv.Itoa(f.Deleted)))
	}
	lines = append(lines, t.Header.Render(fmt.Sprintf("  %-12s %*s %*s  %s", "STATUS", plus, "+", minus, "-", "PATH")))
	for _, f := range d.Files {
		name := termsafe.Line(f.Path)
		if f.Status == api.FileRenamed {
			name = termsafe.Line(f.OldPath) + " => " + name
		}
		a, del := strconv.Itoa(f.Added), strconv.Itoa(f.Deleted)
		if f.Binary {
			a, del = "bin", ""
		}
		status := termsafe.Line(strings.ReplaceAll(f.Status, "_", " "))
		lines = append(lines, fmt.Sprintf("  %-12s %s %s  %s", status,
			t.OK.Render(fmt.Sprintf("%*s", plus, a)), t.Error.Render(fmt.Sprintf("%*s", minus, del)), name))
	}
	lines = append(lines, fmt.Sprintf("  %d %s changed, %d %s(+), %d %s(-)", len(d.Files), plural(len(d.Files), "file", "files"),
		d.Added, plural(d.Added, "insertion", "insertions"), d.Deleted, plural(d.Deleted, "deletion", "deletions")))
	if d.Truncated {
		lines = append(lines, t.Warn.Render(fmt.Sprintf("  more files changed than the %d listed: `banger vm diff %s -- PATHSPEC` narrows it", len(d.Files), termsafe.Line(d.VM))))
	}
	return lines
}

// patchLines splits a patch into lines for the screen: tabs become
// spaces and every control character is escaped (termsafe.Text).
func patchLines(patch string) []string {
	if patch == "" {
		return nil
	}
	return strings.Split(termsafe.Text(strings.ReplaceAll(strings.TrimSuffix(patch, "\n"), "\t", "    ")), "\n")
}

// patchStyle colours a patch line (already escaped) as git does: file
// headers bold, hunk headers faint, added lines green, removed red.
func patchStyle(t Theme) func(string) string {
	return func(l string) string {
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"), strings.HasPrefix(l, "diff "):
			return t.Bold.Render(l)
		case strings.HasPrefix(l, "@@"):
			return t.Faint.Render(l)
		case strings.HasPrefix(l, "+"):
			return t.OK.Render(l)
		case strings.HasPrefix(l, "-"):
			return t.Error.Render(l)
		}
		return l
	}
}

// shortID is a commit id's first 12 digits, escaped (the guest chose it,
// though the daemon checked it is hex).
func shortID(id string) string {
	if len(id) > 12 {
		id = id[:12]
	}
	return termsafe.Line(id)
}

// plural is one or many by n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// capWriter keeps at most left bytes and then fails with errPatchCut.
type capWriter struct {
	buf  bytes.Buffer
	left int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		w.buf.Write(p[:w.left])
		w.left = 0
		return 0, errPatchCut
	}
	w.left -= len(p)
	return w.buf.Write(p)
}

// pager is lines scrolled by a screen's height, from the top; style,
// when set, draws each line shown.
type pager struct {
	lines  []string
	offset int
	style  func(string) string
	keys   logKeys
}

func newPager() pager {
	return pager{keys: logKeys{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/↓", "scroll")),
		Down:     key.NewBinding(key.WithKeys("down", "j")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "b"), key.WithHelp("pgup/pgdn", "page")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "f", "space")),
		Top:      key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g/G", "top/end")),
		End:      key.NewBinding(key.WithKeys("end", "G")),
	}}
}

func (p *pager) help() []key.Binding { return []key.Binding{p.keys.Up, p.keys.PageUp, p.keys.Top} }

// key scrolls; height is the lines on screen.
func (p *pager) key(msg tea.KeyPressMsg, height int) {
	k := p.keys
	bottom := max(len(p.lines)-height, 0)
	switch {
	case key.Matches(msg, k.Up):
		p.offset--
	case key.Matches(msg, k.Down):
		p.offset++
	case key.Matches(msg, k.PageUp):
		p.offset -= height
	case key.Matches(msg, k.PageDown):
		p.offset += height
	case key.Matches(msg, k.Top):
		p.offset = 0
	case key.Matches(msg, k.End):
		p.offset = bottom
	}
	p.offset = min(max(p.offset, 0), bottom)
}

// render shows height lines from the offset.
func (p *pager) render(width, height int) string {
	p.offset = min(max(p.offset, 0), max(len(p.lines)-height, 0))
	end := min(p.offset+height, len(p.lines))
	out := make([]string, 0, height)
	for _, s := range p.lines[p.offset:end] {
		s = fit(s, width)
		if p.style != nil {
			s = p.style(s)
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n")
}
