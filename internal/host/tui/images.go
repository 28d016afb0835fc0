package tui

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// imagesView is the Images tab: the table of images (from the Store, kept
// by image events), an image's detail, the bootstrap and build forms and
// their live operation, promote, and remove with its confirmation — and,
// when the daemon refuses because VMs or images still use it, the
// daemon's reason with the offer to force.
type imagesView struct {
	selected string
	top      int
	detail   *imageDetail
	form     *imageForm
	// watch is a promote followed on screen.
	watch *opWatch
	// confirm is the image a remove waits on y for.
	confirm string
	// unwarm is the image whose warm snapshots' removal waits on y.
	unwarm string
	// refused is a remove the daemon refused (the image is in use): its
	// reason stays on screen until f forces it or n keeps the image.
	refused *removeRefusal
	keys    imagesKeys
}

type removeRefusal struct {
	name, reason string
}

type imagesKeys struct {
	Up, Down, Detail, Bootstrap, Build, Promote, Warm, Unwarm, Remove, Yes, No, Force key.Binding
}

func newImagesView() *imagesView {
	return &imagesView{keys: imagesKeys{
		Up:        key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:      key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Detail:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "detail")),
		Bootstrap: key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "bootstrap")),
		Build:     key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "build from")),
		Promote:   key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "promote")),
		Warm:      key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "warm")),
		Unwarm:    key.NewBinding(key.WithKeys("u"), key.WithHelp("u", "unwarm")),
		Remove:    key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "remove")),
		Yes:       key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "remove it")),
		No:        key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n/esc", "keep it")),
		Force:     key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "remove anyway (force)")),
	}}
}

func (v *imagesView) Title() string { return "Images" }

func (v *imagesView) Init(env *Env) tea.Cmd { return nil }

func (v *imagesView) Capturing() bool {
	switch {
	case v.form != nil:
		return v.form.Capturing()
	case v.watch != nil:
		return false
	}
	return v.confirm != "" || v.unwarm != "" || v.refused != nil
}

func (v *imagesView) Keys() []key.Binding {
	k := v.keys
	switch {
	case v.form != nil:
		return v.form.Keys()
	case v.watch != nil:
		return v.watch.Keys()
	case v.confirm != "", v.unwarm != "":
		return []key.Binding{k.Yes, k.No}
	case v.refused != nil:
		return []key.Binding{k.Force, k.No}
	case v.detail != nil:
		return append(v.detail.Keys(), k.Promote, k.Warm, k.Unwarm, k.Remove, k.Build)
	}
	return []key.Binding{k.Up, k.Down, k.Detail, k.Bootstrap, k.Build, k.Promote, k.Warm, k.Unwarm, k.Remove}
}

// current is the selected image, or the nearest one.
func (v *imagesView) current(env *Env) (api.Image, int, []api.Image) {
	all := env.Store.Images()
	for i, im := range all {
		if im.Name == v.selected {
			return im, i, all
		}
	}
	if len(all) == 0 {
		return api.Image{}, 0, all
	}
	return all[0], 0, all
}

// removedMsg is the daemon's answer to a remove.
type removedMsg struct {
	name  string
	force bool
	err   error
}

// promoteBegunMsg is the daemon's answer to a promote or a warm (title
// names the operation on its watch screen).
type promoteBegunMsg struct {
	name, title string
	op          api.Operation
	err         error
}

func (v *imagesView) Update(env *Env, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case removedMsg:
		return v.removed(msg)
	case promoteBegunMsg:
		if msg.err != nil {
			return func() tea.Msg { return StatusMsg{Err: msg.err} }
		}
		if v.watch != nil {
			v.watch.close()
		}
		v.watch = newOpWatch(env, msg.op, msg.title+" image "+termsafe.Line(msg.name))
		return nil
	}
	var cmds []tea.Cmd
	_, isKey := msg.(tea.KeyPressMsg)
	if v.form != nil {
		done, cmd := v.form.Update(env, msg)
		cmds = append(cmds, cmd)
		if done {
			if v.form.made != "" {
				v.selected = v.form.made
			}
			v.form.close()
			v.form = nil
		}
		if isKey {
			return tea.Batch(cmds...)
		}
	}
	if v.watch != nil {
		done, cmd := v.watch.Update(env, msg)
		cmds = append(cmds, cmd)
		if done {
			v.watch.close()
			v.watch = nil
		}
		if isKey {
			return tea.Batch(cmds...)
		}
	}
	if ev, ok := msg.(EventMsg); ok && v.detail != nil && ev.Kind == api.EventImage && ev.Removed && ev.Name == v.detail.name {
		v.detail = nil
	}
	if k, ok := msg.(tea.KeyPressMsg); ok {
		cmds = append(cmds, v.key(env, k))
	}
	return tea.Batch(cmds...)
}

// removed shows the outcome of a remove: a refusal because the image is
// in use (the daemon names the force field) keeps its reason on screen
// and offers force.
func (v *imagesView) removed(msg removedMsg) tea.Cmd {
	var ae *api.Error
	if msg.err != nil && !msg.force && errors.As(msg.err, &ae) && ae.Field == "force" {
		v.refused = &removeRefusal{name: msg.name, reason: ae.Message}
		return nil
	}
	if msg.err != nil {
		return func() tea.Msg { return StatusMsg{Err: msg.err} }
	}
	if v.detail != nil && v.detail.name == msg.name {
		v.detail = nil
	}
	if msg.force {
		return status("removed image " + termsafe.Line(msg.name) + " (forced)")
	}
	return status("removed image " + termsafe.Line(msg.name))
}

func (v *imagesView) remove(env *Env, name string, force bool) tea.Cmd {
	what := "removing image " + name + "…"
	if force {
		what = "removing image " + name + " by force…"
	}
	cl, ctx := env.client, env.ctx
	return tea.Batch(status(what), func() tea.Msg {
		if cl == nil {
			return removedMsg{name: name, force: force, err: errNotConnected}
		}
		return removedMsg{name: name, force: force, err: cl.RemoveImage(ctx, name, force)}
	})
}

func (v *imagesView) promote(env *Env, name string) tea.Cmd {
	cl, ctx := env.client, env.ctx
	return tea.Batch(status("promoting image "+name+"…"), func() tea.Msg {
		if cl == nil {
			return promoteBegunMsg{name: name, err: errNotConnected}
		}
		op, err := cl.BeginPromoteImage(ctx, name)
		return promoteBegunMsg{name: name, title: "Promoting", op: op, err: err}
	})
}

// warm boots a VM of the image with the configured shape and keeps its
// snapshot, followed on screen as promote is.
func (v *imagesView) warm(env *Env, name string) tea.Cmd {
	cl, ctx := env.client, env.ctx
	return tea.Batch(status("warming image "+termsafe.Line(name)+"…"), func() tea.Msg {
		if cl == nil {
			return promoteBegunMsg{name: name, err: errNotConnected}
		}
		op, err := cl.BeginWarmImage(ctx, name, api.WarmImageRequest{})
		return promoteBegunMsg{name: name, title: "Warming", op: op, err: err}
	})
}

func (v *imagesView) key(env *Env, msg tea.KeyPressMsg) tea.Cmd {
	k := v.keys
	if v.confirm != "" {
		name := v.confirm
		switch {
		case key.Matches(msg, k.Yes):
			v.confirm = ""
			return v.remove(env, name, false)
		case key.Matches(msg, k.No):
			v.confirm = ""
			return status("kept image " + name)
		}
		return nil
	}
	if v.unwarm != "" {
		name := v.unwarm
		label := termsafe.Line(name)
		switch {
		case key.Matches(msg, k.Yes):
			v.unwarm = ""
			return tea.Batch(status("removing the warm snapshots of "+label+"…"),
				env.Do("image "+label+" is cold: its VMs boot", func(ctx context.Context, cl *client.Client) error {
					_, err := cl.UnwarmImage(ctx, name)
					return err
				}, nil))
		case key.Matches(msg, k.No):
			v.unwarm = ""
			return status("kept the warm snapshots of " + label)
		}
		return nil
	}
	if v.refused != nil {
		name := v.refused.name
		switch {
		case key.Matches(msg, k.Force):
			v.refused = nil
			return v.remove(env, name, true)
		case key.Matches(msg, k.No):
			v.refused = nil
			return status("kept image " + name)
		}
		return nil
	}
	if v.detail != nil {
		if v.detail.key(env, msg) {
			v.detail = nil
			return nil
		}
	}
	im, i, all := v.current(env)
	switch {
	case key.Matches(msg, k.Bootstrap):
		v.form = newBootstrapForm(env)
		return v.form.Init(env)
	case key.Matches(msg, k.Build):
		v.form = newBuildForm(env, im.Name)
		return v.form.Init(env)
	}
	if len(all) == 0 {
		return nil
	}
	if v.detail != nil {
		im, _ = env.Store.Image(v.detail.name)
		if im.Name == "" {
			return nil
		}
	}
	name := im.Name
	switch {
	case v.detail == nil && key.Matches(msg, k.Up):
		v.selected = all[max(i-1, 0)].Name
	case v.detail == nil && key.Matches(msg, k.Down):
		v.selected = all[min(i+1, len(all)-1)].Name
	case v.detail == nil && key.Matches(msg, k.Detail):
		v.selected = name
		v.detail = newImageDetail(name)
	case key.Matches(msg, k.Promote):
		return v.promote(env, name)
	case key.Matches(msg, k.Warm):
		return v.warm(env, name)
	case key.Matches(msg, k.Unwarm):
		if len(im.Warm) == 0 {
			return status("image " + termsafe.Line(name) + " has no warm snapshot: w warms it")
		}
		v.unwarm = name
	case key.Matches(msg, k.Remove):
		v.confirm = name
	}
	return nil
}

var imageColumns = []column{
	{title: "NAME", min: 10, flex: true},
	{title: "STATE", min: 9},
	{title: "SIZE", min: 9, right: true},
	{title: "KERNEL", min: 8, flex: true},
	{title: "PARENT", min: 6, flex: true},
	{title: "VMS", min: 3, right: true},
	{title: "AGE", min: 3, right: true},
}

// imageSize is the bytes of all an image's artifacts.
func imageSize(im api.Image) int64 {
	var n int64
	for _, a := range im.Artifacts {
		n += a.Size
	}
	return n
}

// imageState is the state word, "ready" being managed.
func imageState(im api.Image) string {
	if im.State == "" {
		return "-"
	}
	return termsafe.Line(im.State)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (v *imagesView) footer(env *Env) []string {
	t := env.Theme
	switch {
	case v.confirm != "":
		return []string{t.Error.Render("Remove image "+termsafe.Line(v.confirm)+"?") + " Its files go with it. y remove · n keep"}
	case v.unwarm != "":
		return []string{t.Error.Render("Remove the warm snapshots of "+termsafe.Line(v.unwarm)+"?") + " Its VMs then boot cold. y remove · n keep"}
	case v.refused != nil:
		lines := []string{t.Error.Render("Image " + termsafe.Line(v.refused.name) + " was not removed:")}
		for _, l := range wordWrap(termsafe.Line(v.refused.reason), env.Width-2) {
			lines = append(lines, "  "+l)
		}
		return append(lines, "f removes it anyway (force) · n/esc keeps it")
	}
	return nil
}

func (v *imagesView) Render(env *Env) string {
	switch {
	case v.form != nil:
		return v.form.Render(env)
	case v.watch != nil:
		return v.watch.Render(env)
	}
	foot := v.footer(env)
	h := max(env.Height-len(foot), 1)
	var body string
	switch {
	case v.detail != nil:
		body = v.detail.Render(env, h)
	case !env.Store.Loaded:
		body = box("\n  loading images…", env.Width, h)
	case len(env.Store.Images()) == 0:
		body = box("\n  No images yet. Press b to bootstrap one (debian).", env.Width, h)
	default:
		cur, _, all := v.current(env)
		rows := make([][]string, len(all))
		curRow := 0
		for i, im := range all {
			name := termsafe.Line(im.Name)
			if len(im.Warm) > 0 {
				name += " (warm)"
			}
			rows[i] = []string{name, imageState(im), bytesText(imageSize(im)),
				termsafe.Line(dash(im.Kernel.Release)), termsafe.Line(dash(im.Parent)),
				strconv.Itoa(len(im.UsedBy)), env.Format.Age(im.CreatedAt)}
			if im.Name == cur.Name {
				curRow = i
			}
		}
		body = renderTable(env, imageColumns, rows, 1, curRow, &v.top, h)
	}
	if len(foot) == 0 {
		return body
	}
	return body + "\n" + box(strings.Join(foot, "\n"), env.Width, len(foot))
}
