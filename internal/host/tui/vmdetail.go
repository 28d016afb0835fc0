package tui

import (
	"context"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// Panes of the VM detail.
const (
	paneOverview = iota
	paneConsole
	paneSessions
)

var paneNames = []string{"Overview", "Console", "Sessions"}

// vmDetail is one VM: its spec, figures and last create/start stages
// (Overview), its live serial console (Console), and its sessions.
type vmDetail struct {
	name     string
	pane     int
	console  *textLog
	streamID int
	stop     func()
	sessions *sessionsPane
	// ask is a question before a stop of a paused VM or a fork.
	ask  *vmAsk
	keys detailKeys
}

type detailKeys struct {
	Back, Left, Right, Start, Stop, Restart, Pause, Fork, Shell, Diff key.Binding
}

func newVMDetail(env *Env, name string, pane int) *vmDetail {
	return &vmDetail{
		name:     name,
		pane:     pane,
		console:  newTextLog(),
		sessions: newSessionsPane(name),
		keys: detailKeys{
			Back:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
			Left:    key.NewBinding(key.WithKeys("left"), key.WithHelp("←/→", "pane")),
			Right:   key.NewBinding(key.WithKeys("right")),
			Start:   key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "start")),
			Stop:    key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "stop")),
			Restart: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "restart")),
			Pause:   key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pause")),
			Fork:    key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "fork")),
			Shell:   key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "ssh")),
			Diff:    key.NewBinding(key.WithKeys("D"), key.WithHelp("D", "diff")),
		},
	}
}

// Init starts the console stream and lists the VM's sessions (one call,
// when the detail opens).
func (d *vmDetail) Init(env *Env) tea.Cmd {
	d.startConsole(env)
	return d.sessions.load(env)
}

// startConsole follows the serial console from its start.
func (d *vmDetail) startConsole(env *Env) {
	if d.stop != nil {
		d.stop()
	}
	d.console.reset()
	id := nextStreamID()
	d.streamID = id
	name := d.name
	d.stop = env.Stream(func(ctx context.Context, cl *client.Client, send func(tea.Msg)) error {
		err := cl.Console(ctx, name, true, logWriter{id: id, send: send})
		send(logEndMsg{id: id, err: err})
		return nil
	})
}

// Close stops the detail's streams.
func (d *vmDetail) Close() {
	if d.stop != nil {
		d.stop()
		d.stop = nil
	}
	d.sessions.close()
}

func (d *vmDetail) Capturing() bool {
	return d.ask != nil || d.pane == paneSessions && d.sessions.capturing()
}

func (d *vmDetail) Keys() []key.Binding {
	k := d.keys
	if d.ask != nil {
		return d.ask.Keys()
	}
	switch d.pane {
	case paneConsole:
		return append([]key.Binding{k.Back, k.Left}, d.console.help()...)
	case paneSessions:
		if d.sessions.capturing() || d.sessions.logs != nil {
			return d.sessions.keyHelp()
		}
		return append([]key.Binding{k.Back, k.Left}, d.sessions.keyHelp()...)
	}
	return []key.Binding{k.Back, k.Left, k.Start, k.Stop, k.Restart, k.Pause, k.Fork, k.Shell, k.Diff}
}

// Update returns true when the user left the detail.
func (d *vmDetail) Update(env *Env, msg tea.Msg) (bool, tea.Cmd) {
	switch msg := msg.(type) {
	case logChunkMsg:
		if msg.id == d.streamID {
			d.console.write(msg.data)
		}
	case logEndMsg:
		if msg.id == d.streamID && msg.err != nil {
			d.console.write([]byte("\n[console: " + errorText(msg.err) + "]\n"))
		}
	case ReconnectedMsg:
		// The console stream died with the daemon: read it again.
		d.startConsole(env)
	case EventMsg:
		if msg.Kind == api.EventVM && msg.Removed && msg.Name == d.name {
			return true, status("VM " + termsafe.Line(d.name) + " was deleted")
		}
	case tea.KeyPressMsg:
		return d.key(env, msg)
	}
	return false, d.sessions.update(env, msg)
}

func (d *vmDetail) key(env *Env, msg tea.KeyPressMsg) (bool, tea.Cmd) {
	k := d.keys
	if d.ask != nil {
		done, cmd := d.ask.key(env, msg)
		if done {
			d.ask = nil
		}
		return false, cmd
	}
	if d.pane == paneSessions && (d.sessions.capturing() || d.sessions.logs != nil) {
		return false, d.sessions.update(env, msg)
	}
	switch {
	case key.Matches(msg, k.Back):
		return true, nil
	case key.Matches(msg, k.Left):
		d.pane = (d.pane + len(paneNames) - 1) % len(paneNames)
		return false, nil
	case key.Matches(msg, k.Right):
		d.pane = (d.pane + 1) % len(paneNames)
		return false, nil
	}
	switch d.pane {
	case paneConsole:
		d.console.key(msg, d.bodyHeight(env))
		return false, nil
	case paneSessions:
		return false, d.sessions.update(env, msg)
	}
	switch {
	case key.Matches(msg, k.Stop), key.Matches(msg, k.Fork):
		if d.ask = askStopOrFork(env, msg, d.name); d.ask != nil {
			return false, d.ask.Init()
		}
		return false, power(env, msg, d.name)
	case key.Matches(msg, k.Start), key.Matches(msg, k.Restart):
		return false, power(env, msg, d.name)
	case key.Matches(msg, k.Pause):
		return false, pauseOrResume(env, d.name)
	case key.Matches(msg, k.Shell):
		return false, sshInto(env, d.name)
	case key.Matches(msg, k.Diff):
		return false, openDiff(d.name)
	}
	return false, nil
}

// bodyHeight is the lines under the header and the pane bar.
func (d *vmDetail) bodyHeight(env *Env) int { return max(env.Height-3, 1) }

func (d *vmDetail) Render(env *Env) string {
	t := env.Theme
	vm, ok := env.Store.VM(d.name)
	state := "gone"
	if ok {
		state = t.State(vm.State)
	}
	head := t.Bold.Render(" VM "+termsafe.Line(d.name)) + " · " + state
	var bar []string
	for i, p := range paneNames {
		if i == d.pane {
			bar = append(bar, t.TabOn.Render("["+p+"]"))
		} else {
			bar = append(bar, t.Tab.Render(" "+p+" "))
		}
	}
	lines := []string{head, " " + strings.Join(bar, " "), ""}
	h := d.bodyHeight(env)
	footer := ""
	if d.ask != nil {
		footer = "\n" + fit(d.ask.footer(env), env.Width)
		h = max(h-1, 1)
	}
	var body string
	switch d.pane {
	case paneConsole:
		body = d.console.render(env.Width, h)
		if body == "" {
			body = t.Faint.Render("  (the console is empty so far)")
		}
	case paneSessions:
		body = d.sessions.render(env, h)
	default:
		body = strings.Join(d.overview(env, vm), "\n")
	}
	return strings.Join(lines, "\n") + "\n" + box(body, env.Width, h) + footer
}

// overview is the spec, the figures and the last create/start stages.
func (d *vmDetail) overview(env *Env, vm api.VM) []string {
	t := env.Theme
	f := env.Format
	hv := vm.Hypervisor
	if vm.Accel != "" {
		hv += "/" + vm.Accel
	}
	kv := func(k, v string) string { return t.Faint.Render(k) + " " + v }
	ip := vm.IP
	if ip == "" {
		ip = "-"
	}
	lines := []string{
		"  " + strings.Join([]string{kv("image", termsafe.Line(vm.Image)), kv("hypervisor", hv), kv("ip", ip)}, "   "),
		"  " + strings.Join([]string{kv("vcpus", fmt.Sprint(vm.VCPUs)), kv("memory", mib(vm.MemoryMiB)), kv("disk", bytesText(vm.DiskBytes)), kv("age", f.Age(vm.CreatedAt))}, "   "),
	}
	if st, ok := env.Store.LatestStats(vm.Name); ok && vm.State == api.VMRunning {
		vals := []float64{}
		for _, s := range env.Store.Stats(vm.Name) {
			vals = append(vals, s.CPUPercent)
		}
		guest := "-"
		if st.GuestMemUsedBytes != nil && st.GuestMemTotalBytes != nil {
			guest = bytesText(*st.GuestMemUsedBytes) + " of " + bytesText(*st.GuestMemTotalBytes)
		}
		lines = append(lines,
			"  "+strings.Join([]string{kv("cpu", f.Percent(st.CPUPercent)+" "+sparkline(vals, 12)), kv("host rss", bytesText(st.HostRSSBytes)), kv("guest mem", guest)}, "   "),
			"  "+kv("net", "rx "+bytesText(st.NetRxBytes)+" tx "+bytesText(st.NetTxBytes)))
		var disks []string
		for _, dk := range st.Disks {
			disks = append(disks, termsafe.Line(dk.Name)+" "+bytesText(dk.UsedBytes)+" of "+bytesText(dk.SizeBytes))
		}
		if len(disks) > 0 {
			lines = append(lines, "  "+kv("disks", strings.Join(disks, ", ")))
		}
	}
	var made []string
	if vm.State == api.VMPaused {
		made = append(made, kv("saved state", bytesText(vm.StateBytes)+" on disk (p or s resumes, x discards it)"))
	}
	if vm.ForkedFrom != "" {
		made = append(made, kv("forked from", termsafe.Line(vm.ForkedFrom)))
	}
	if vm.Warm {
		made = append(made, kv("warm", "restored from its image's snapshot"))
	}
	if len(made) > 0 {
		lines = append(lines, "  "+strings.Join(made, "   "))
	}
	for _, w := range vm.Warnings {
		lines = append(lines, "  "+t.Warn.Render("! ")+termsafe.Line(w))
	}
	if x := vm.LastExit; x != nil {
		lines = append(lines, "  "+t.Warn.Render("! ")+"last exit: "+termsafe.Line(x.Reason))
		if tail := strings.Split(strings.TrimRight(x.ConsoleTail, "\n"), "\n"); x.ConsoleTail != "" {
			for _, l := range tail[max(0, len(tail)-3):] {
				lines = append(lines, "    "+t.Faint.Render(termsafe.Line(l)))
			}
		}
	}
	lines = append(lines, "")
	if op, ok := env.Store.LastOperation(vm.Name, "vm.create", "vm.start", "vm.restart", "vm.pause", "vm.resume"); ok {
		lines = append(lines, "  "+t.Bold.Render("Last "+opVerb(op.Kind)))
		lines = append(lines, stageLines(env, op)...)
	} else {
		lines = append(lines, t.Faint.Render("  no create or start operation is kept for this VM"))
	}
	return lines
}

// opVerb is the last word of an operation kind ("vm.create" → "create").
func opVerb(kind string) string {
	if i := strings.LastIndexByte(kind, '.'); i >= 0 {
		return kind[i+1:]
	}
	return kind
}
