package tui

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// vmsView is the VMs tab: the table, its filter, the delete confirmation,
// and the create form and VM detail it opens.
type vmsView struct {
	keys vmsKeys
	// selected is the selected VM's name: the selection follows the VM,
	// not the row, as VMs come and go.
	selected string
	// top is the first row shown (scrolling).
	top       int
	filter    textinput.Model
	filtering bool
	// confirm is the VM a delete waits on y for.
	confirm string
	// ask is a question before a stop of a paused VM or a fork.
	ask    *vmAsk
	create *createForm
	detail *vmDetail
	// diff is the changes in a VM's workspace (D, from the table or the
	// detail, which it covers until esc).
	diff *vmDiff
	ops  pendingOps
}

type vmsKeys struct {
	Up, Down, Filter, Create, Start, Stop, Restart, Pause, Fork, Delete, Detail, Shell, Console, Diff, Yes, No, Apply, Clear key.Binding
}

func newVMsView() *vmsView {
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "filter by name, state, image, IP"
	f.CharLimit = 64
	return &vmsView{
		ops:    pendingOps{},
		filter: f,
		keys: vmsKeys{
			Up:      key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
			Down:    key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
			Filter:  key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
			Create:  key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "create")),
			Start:   key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "start")),
			Stop:    key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "stop")),
			Restart: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "restart")),
			Pause:   key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pause")),
			Fork:    key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "fork")),
			Delete:  key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "delete")),
			Detail:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "detail")),
			Shell:   key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "ssh")),
			Console: key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "console")),
			Diff:    key.NewBinding(key.WithKeys("D"), key.WithHelp("D", "diff")),
			Yes:     key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "delete it")),
			No:      key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n/esc", "keep it")),
			Apply:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "keep filter")),
			Clear:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
		},
	}
}

func (v *vmsView) Title() string { return "VMs" }

func (v *vmsView) Init(env *Env) tea.Cmd { return nil }

func (v *vmsView) Capturing() bool {
	switch {
	case v.create != nil:
		return v.create.Capturing()
	case v.diff != nil:
		return v.diff.Capturing()
	case v.detail != nil:
		return v.detail.Capturing()
	}
	return v.filtering || v.confirm != "" || v.ask != nil
}

func (v *vmsView) Keys() []key.Binding {
	k := v.keys
	switch {
	case v.create != nil:
		return v.create.Keys()
	case v.diff != nil:
		return v.diff.Keys()
	case v.detail != nil:
		return v.detail.Keys()
	case v.confirm != "":
		return []key.Binding{k.Yes, k.No}
	case v.ask != nil:
		return v.ask.Keys()
	case v.filtering:
		return []key.Binding{k.Apply, k.Clear}
	}
	return []key.Binding{k.Create, k.Start, k.Stop, k.Restart, k.Pause, k.Fork, k.Delete, k.Diff, k.Detail, k.Shell, k.Console, k.Filter}
}

// rows is the VMs the filter lets through, in name order.
func (v *vmsView) rows(env *Env) []api.VM {
	all := env.Store.VMs()
	q := strings.ToLower(strings.TrimSpace(v.filter.Value()))
	if q == "" {
		return all
	}
	out := all[:0:0]
	for _, vm := range all {
		hay := strings.ToLower(strings.Join([]string{vm.Name, vm.State, vm.Image, vm.IP, vm.Hypervisor}, " "))
		if strings.Contains(hay, q) {
			out = append(out, vm)
		}
	}
	return out
}

// cursor is the selected row's index in rows, or the nearest row.
func (v *vmsView) cursor(rows []api.VM) int {
	for i, vm := range rows {
		if vm.Name == v.selected {
			return i
		}
	}
	return 0
}

func (v *vmsView) current(env *Env) (api.VM, bool) {
	rows := v.rows(env)
	if len(rows) == 0 {
		return api.VM{}, false
	}
	return rows[v.cursor(rows)], true
}

func (v *vmsView) Update(env *Env, msg tea.Msg) tea.Cmd {
	cmds := []tea.Cmd{v.ops.update(env, msg)}
	// Sub-screens get every message; keys only when on screen.
	if v.create != nil {
		done, cmd := v.create.Update(env, msg)
		cmds = append(cmds, cmd)
		if done {
			if v.create.created != "" {
				v.selected = v.create.created
			}
			v.create = nil
		}
		if _, isKey := msg.(tea.KeyPressMsg); isKey {
			return tea.Batch(cmds...)
		}
	}
	if m, ok := msg.(openDiffMsg); ok {
		if v.diff != nil {
			v.diff.Close()
		}
		v.diff = newVMDiff(m.name)
		cmds = append(cmds, v.diff.Init(env))
	}
	if v.diff != nil {
		done, cmd := v.diff.Update(env, msg)
		cmds = append(cmds, cmd)
		if done {
			v.diff.Close()
			v.diff = nil
		}
		if _, isKey := msg.(tea.KeyPressMsg); isKey {
			return tea.Batch(cmds...)
		}
	}
	if v.detail != nil {
		done, cmd := v.detail.Update(env, msg)
		cmds = append(cmds, cmd)
		if done {
			v.detail.Close()
			v.detail = nil
		}
		if _, isKey := msg.(tea.KeyPressMsg); isKey {
			return tea.Batch(cmds...)
		}
	}
	if k, ok := msg.(tea.KeyPressMsg); ok {
		cmds = append(cmds, v.key(env, k))
	}
	return tea.Batch(cmds...)
}

func (v *vmsView) key(env *Env, msg tea.KeyPressMsg) tea.Cmd {
	k := v.keys
	if v.confirm != "" {
		name := v.confirm
		switch {
		case key.Matches(msg, k.Yes):
			v.confirm = ""
			return tea.Batch(status("deleting "+name+"…"),
				env.Do("deleted "+name, func(ctx context.Context, cl *client.Client) error {
					return cl.DeleteVM(ctx, name)
				}, nil))
		case key.Matches(msg, k.No):
			v.confirm = ""
			return status("kept " + name)
		}
		return nil
	}
	if v.ask != nil {
		done, cmd := v.ask.key(env, msg)
		if done {
			v.ask = nil
		}
		return cmd
	}
	if v.filtering {
		switch {
		case key.Matches(msg, k.Clear):
			v.filter.SetValue("")
			v.filter.Blur()
			v.filtering = false
			return nil
		case key.Matches(msg, k.Apply):
			v.filter.Blur()
			v.filtering = false
			return nil
		}
		var cmd tea.Cmd
		v.filter, cmd = v.filter.Update(msg)
		v.top = 0
		return cmd
	}
	rows := v.rows(env)
	i := v.cursor(rows)
	switch {
	case key.Matches(msg, k.Up):
		if i > 0 {
			v.selected = rows[i-1].Name
		}
		return nil
	case key.Matches(msg, k.Down):
		if i+1 < len(rows) {
			v.selected = rows[i+1].Name
		}
		return nil
	case key.Matches(msg, k.Filter):
		v.filtering = true
		return v.filter.Focus()
	case key.Matches(msg, k.Clear):
		v.filter.SetValue("")
		return nil
	case key.Matches(msg, k.Create):
		v.create = newCreateForm(env)
		return v.create.Init(env)
	}
	if len(rows) == 0 {
		return nil
	}
	vm := rows[i]
	v.selected = vm.Name
	name := vm.Name
	switch {
	case key.Matches(msg, k.Stop), key.Matches(msg, k.Fork):
		if v.ask = askStopOrFork(env, msg, name); v.ask != nil {
			return v.ask.Init()
		}
		return power(env, msg, name)
	case key.Matches(msg, k.Start), key.Matches(msg, k.Restart):
		return power(env, msg, name)
	case key.Matches(msg, k.Pause):
		return pauseOrResume(env, name)
	case key.Matches(msg, k.Delete):
		v.confirm = name
		return nil
	case key.Matches(msg, k.Detail):
		v.detail = newVMDetail(env, name, paneOverview)
		return v.detail.Init(env)
	case key.Matches(msg, k.Console):
		v.detail = newVMDetail(env, name, paneConsole)
		return v.detail.Init(env)
	case key.Matches(msg, k.Shell):
		return sshInto(env, name)
	case key.Matches(msg, k.Diff):
		return openDiff(name)
	}
	return nil
}

// openDiff opens the diff view of a VM's workspace.
func openDiff(name string) tea.Cmd {
	return func() tea.Msg { return openDiffMsg{name: name} }
}

// power starts (s), stops (x) or restarts (r) a VM; s on a paused VM
// resumes it. A start or restart is an operation: its stages arrive as
// events, and the status line says how it ended (pendingOps).
func power(env *Env, msg tea.KeyPressMsg, name string) tea.Cmd {
	label := termsafe.Line(name)
	switch msg.String() {
	case "s":
		if vm, _ := env.Store.VM(name); vm.State == api.VMPaused {
			return pauseOrResume(env, name)
		}
		return beginOp(env, "starting "+label+"…", "start "+label, func(ctx context.Context, cl *client.Client) (api.Operation, error) {
			return cl.BeginStartVM(ctx, name)
		})
	case "r":
		return beginOp(env, "restarting "+label+"…", "restart "+label, func(ctx context.Context, cl *client.Client) (api.Operation, error) {
			return cl.BeginRestartVM(ctx, name)
		})
	}
	return stopVM(env, name)
}

// stopVM stops a VM (a paused one's saved state is discarded).
func stopVM(env *Env, name string) tea.Cmd {
	label := termsafe.Line(name)
	return tea.Batch(status("stopping "+label+"…"), env.Do("stopped "+label, func(ctx context.Context, cl *client.Client) error {
		_, err := cl.StopVM(ctx, name)
		return err
	}, nil))
}

// opBegunMsg: an operation the user began from a key (a start, a restart)
// is running; what names it for the status line.
type opBegunMsg struct {
	id, what string
}

// pendingOps remembers the operations begun from keys and says on the
// status line how each ended, when its last event arrives.
type pendingOps map[string]string

// update returns the status of an operation that ended.
func (w pendingOps) update(env *Env, msg tea.Msg) tea.Cmd {
	var id string
	switch msg := msg.(type) {
	case opBegunMsg:
		w[msg.id] = msg.what
		id = msg.id // it may have ended before its answer came
	case EventMsg:
		if msg.Kind != api.EventOperation {
			return nil
		}
		id = msg.ID
		if msg.OperationState != nil {
			id = msg.OperationState.ID
		}
	default:
		return nil
	}
	what, ok := w[id]
	op, known := env.Store.Operation(id)
	if !ok || !known || !op.State.Terminal() {
		return nil
	}
	delete(w, id)
	if op.State == api.OperationFailed || op.State == api.OperationCanceled {
		var err error = op.Error
		if op.Error == nil {
			err = fmt.Errorf("failed")
		}
		return func() tea.Msg { return StatusMsg{Err: fmt.Errorf("%s: %w", what, err)} }
	}
	return status(what + ": done")
}

// status is a command that sets the status line.
func status(text string) tea.Cmd {
	return func() tea.Msg { return StatusMsg{Text: text} }
}

// sshInto hands the terminal to `banger vm ssh NAME` and takes it back
// when that exits.
func sshInto(env *Env, name string) tea.Cmd {
	c := exec.Command(env.opts.Banger, "vm", "ssh", name)
	return tea.ExecProcess(c, func(err error) tea.Msg {
		if err != nil {
			return StatusMsg{Err: fmt.Errorf("ssh into %s: %w", name, err)}
		}
		return StatusMsg{Text: "back from ssh into " + name}
	})
}

// column is a table column: its header, least width, whether it takes
// spare width, alignment, and when it goes on a narrow screen (0 never;
// the highest goes first).
type column struct {
	title string
	min   int
	flex  bool
	right bool
	drop  int
}

var vmColumns = []column{
	{title: "NAME", min: 10, flex: true},
	{title: "STATE", min: 8},
	{title: "IMAGE", min: 6, flex: true, drop: 3},
	{title: "IP", min: 11, drop: 4},
	{title: "CPU", min: 3, right: true, drop: 6},
	{title: "MEM", min: 5, right: true, drop: 5},
	{title: "HV", min: 8, drop: 7},
	{title: "CPU%", min: 6, drop: 9},
	{title: "SES", min: 3, right: true, drop: 2},
	{title: "AGE", min: 3, right: true, drop: 8},
}

// layout returns each column's width for a table of the given width (one
// cell for the selection mark, one space between columns); a column that
// does not fit gets 0 and is not drawn. natural is each column's widest
// cell.
func layout(cols []column, width int, natural []int) []int {
	w := make([]int, len(cols))
	used := 1
	for i, c := range cols {
		w[i] = max(c.min, len(c.title))
		if !c.flex && natural[i] > w[i] {
			w[i] = natural[i]
		}
		used += w[i] + 1
	}
	// Too narrow: drop columns, the least needed first.
	for used-1 > width {
		worst := -1
		for i, c := range cols {
			if w[i] > 0 && c.drop > 0 && (worst < 0 || c.drop > cols[worst].drop) {
				worst = i
			}
		}
		if worst < 0 {
			break
		}
		used -= w[worst] + 1
		w[worst] = 0
	}
	// Spare width goes to the flexible columns, up to their widest cell.
	spare := width - (used - 1)
	for pass := 0; pass < 2 && spare > 0; pass++ {
		flex := 0
		for i, c := range cols {
			if c.flex && w[i] > 0 && natural[i] > w[i] {
				flex++
			}
		}
		for i, c := range cols {
			if !c.flex || w[i] == 0 || natural[i] <= w[i] || spare <= 0 {
				continue
			}
			give := min(natural[i]-w[i], spare)
			if pass == 0 {
				give = min(give, max(spare/flex, 1))
			}
			w[i] += give
			spare -= give
		}
	}
	return w
}

func (v *vmsView) cells(env *Env, vm api.VM) []string {
	f := env.Format
	hv := vm.Hypervisor
	if vm.Accel != "" {
		hv += "/" + vm.Accel
	}
	ip := vm.IP
	if ip == "" {
		ip = "-"
	}
	spark := ""
	if h := env.Store.Stats(vm.Name); len(h) > 0 && vm.State == api.VMRunning {
		vals := make([]float64, len(h))
		for i, s := range h {
			vals[i] = s.CPUPercent
		}
		spark = sparkline(vals, 6)
	}
	// Running sessions, as the daemon last saw them (kept current by vm
	// events); a stopped VM has none.
	ses := "-"
	if vm.State == api.VMRunning {
		ses = strconv.Itoa(vm.Sessions)
	}
	return []string{
		termsafe.Line(vm.Name), vm.State, termsafe.Line(vm.Image), ip,
		strconv.Itoa(vm.VCPUs), mib(vm.MemoryMiB), hv, spark, ses, f.Age(vm.CreatedAt),
	}
}

func (v *vmsView) Render(env *Env) string {
	switch {
	case v.create != nil:
		return v.create.Render(env)
	case v.diff != nil:
		return v.diff.Render(env)
	case v.detail != nil:
		return v.detail.Render(env)
	}
	t := env.Theme
	var lines []string
	footer := ""
	switch {
	case v.confirm != "":
		footer = t.Error.Render("Delete VM "+termsafe.Line(v.confirm)+"?") + " Its disks and sessions go with it. y delete · n keep"
	case v.ask != nil:
		footer = v.ask.footer(env)
	case v.filtering || v.filter.Value() != "":
		footer = v.filter.View()
	}
	rows := v.rows(env)
	height := env.Height
	if footer != "" {
		height--
	}
	switch {
	case !env.Store.Loaded:
		lines = append(lines, "", "  loading VMs…")
	case env.Store.VMCount() == 0:
		lines = append(lines, "", "  No VMs yet. Press c to create one.")
	default:
		all := make([][]string, len(rows))
		natural := make([]int, len(vmColumns))
		for i, vm := range rows {
			all[i] = v.cells(env, vm)
			for j, c := range all[i] {
				natural[j] = max(natural[j], len([]rune(c)))
			}
		}
		w := layout(vmColumns, env.Width, natural)
		head := " "
		for j, c := range vmColumns {
			if w[j] == 0 {
				continue
			}
			if c.right {
				head += fitLeft(c.title, w[j]) + " "
			} else {
				head += fit(c.title, w[j]) + " "
			}
		}
		lines = append(lines, t.Header.Render(strings.TrimRight(head, " ")))
		visible := max(height-1, 1)
		cur := v.cursor(rows)
		if cur < v.top {
			v.top = cur
		}
		if cur >= v.top+visible {
			v.top = cur - visible + 1
		}
		if v.top > max(len(rows)-visible, 0) {
			v.top = max(len(rows)-visible, 0)
		}
		for i := v.top; i < len(rows) && i < v.top+visible; i++ {
			mark := " "
			if i == cur {
				mark = ">"
			}
			line := mark
			for j, c := range all[i] {
				if w[j] == 0 {
					continue
				}
				cell := fit(c, w[j])
				if vmColumns[j].right {
					cell = fitLeft(c, w[j])
				}
				if j == 1 && i != cur {
					cell = t.State(c) + strings.Repeat(" ", max(w[j]-len(c), 0))
				}
				line += cell + " "
			}
			line = strings.TrimRight(line, " ")
			if i == cur {
				line = t.Selected.Render(fit(line, env.Width))
			}
			lines = append(lines, line)
		}
		if len(rows) == 0 {
			lines = append(lines, "  no VM matches the filter")
		}
	}
	body := box(strings.Join(lines, "\n"), env.Width, height)
	if footer != "" {
		body += "\n" + fit(footer, env.Width)
	}
	return body
}
