package tui

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/charmbracelet/x/ansi"
)

// NoticeAway is the notice shown while the daemon is unreachable.
const NoticeAway = "daemon went away — reconnecting…"

// StatusReconnected is the status line once the daemon is back.
const StatusReconnected = "reconnected to bangerd"

// Options configure the program. Connect is required.
type Options struct {
	// Connect returns a client of a running, current daemon, starting it
	// the way the CLI does. It is called at start and by the event feed
	// whenever the daemon went away.
	Connect func(ctx context.Context) (*client.Client, error)
	// Feed runs the daemon-wide event feed until ctx ends, handing each
	// item to deliver (an api.Event, or a Disconnected / Reconnected
	// notice as the messages DisconnectedMsg and ReconnectedMsg). Nil
	// means the frontend package's reconnecting feed.
	Feed func(ctx context.Context, connect func(context.Context) (*client.Client, error), deliver func(tea.Msg)) error
	// NoColor drops every colour (NO_COLOR).
	NoColor bool
	// Format renders volatile figures; zero means DefaultFormat(Now).
	Format Format
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// StatsEvery is how often GET /v1/stats is called for every VM at
	// once: 0 means every 2s, negative never.
	StatsEvery time.Duration
	// SuggestName proposes a name for a new VM, given the names in use;
	// nil means banger's generator (internal/host/names).
	SuggestName func(taken func(string) bool) string
	// Cursors is where session attaches resume from and record how far
	// they delivered (the CLI's cursors, so both resume alike).
	Cursors *frontend.Cursors
	// Banger is the banger executable `vm ssh` runs through (e hands
	// the terminal to it); "" means this process's own executable.
	Banger string
}

// App is the Bubble Tea model: the tab bar, the active view's body, the
// status line and the help bar.
type App struct {
	opts  Options
	env   Env
	views []View
	// active is the index of the tab on screen.
	active        int
	width, height int
	status        string
	statusErr     bool
	notice        string
	fullHelp      bool
	help          help.Model
	keys          appKeys
	inbox         chan tea.Msg
	cancel        context.CancelFunc
	started       bool
	// reloading: the lists are on their way; held are the events that
	// came meanwhile.
	reloading bool
	held      []api.Event
	// reloadAgain: another reset came while reloading.
	reloadAgain bool
}

// New returns the program's model. Cancel stops its streams (Run does it
// on quit).
func New(opts Options) *App {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Format.Age == nil {
		opts.Format = DefaultFormat(opts.Now)
	}
	if opts.StatsEvery == 0 {
		opts.StatsEvery = 2 * time.Second
	}
	if opts.SuggestName == nil {
		opts.SuggestName = generatedName
	}
	if opts.Feed == nil {
		opts.Feed = frontendFeed
	}
	if opts.Banger == "" {
		opts.Banger, _ = os.Executable()
	}
	ctx, cancel := context.WithCancel(context.Background())
	inbox := make(chan tea.Msg, 256)
	a := &App{
		opts:   opts,
		inbox:  inbox,
		cancel: cancel,
		width:  80,
		height: 24,
		keys:   newAppKeys(),
		help:   help.New(),
		notice: "connecting to bangerd…",
	}
	a.env = Env{
		Store:  NewStore(),
		Theme:  NewTheme(opts.NoColor),
		Format: opts.Format,
		ctx:    ctx,
		inbox:  inbox,
		opts:   &a.opts,
	}
	a.help.Styles.ShortKey = a.env.Theme.Key
	a.help.Styles.ShortDesc = a.env.Theme.Desc
	a.help.Styles.FullKey = a.env.Theme.Key
	a.help.Styles.FullDesc = a.env.Theme.Desc
	a.help.Styles.ShortSeparator = a.env.Theme.Faint
	a.help.Styles.FullSeparator = a.env.Theme.Faint
	a.help.Styles.Ellipsis = a.env.Theme.Faint
	a.views = tabs()
	return a
}

// Close stops the program's feed and streams.
func (a *App) Close() { a.cancel() }

// Store is the state the program shows (tests read it).
func (a *App) Store() *Store { return a.env.Store }

// Messages of the App itself.
type (
	// inboxMsg wraps what a goroutine sent through Env.Send.
	inboxMsg     struct{ msg tea.Msg }
	connectedMsg struct {
		cl  *client.Client
		err error
	}
	reloadedMsg struct {
		vms    []api.VM
		images []api.Image
		ops    []api.Operation
		err    error
	}
	statsTickMsg struct{}
	statsMsg     struct {
		stats []api.VMStats
		err   error
	}
	feedEndedMsg struct{ err error }
)

// EventMsg is one event of the daemon-wide feed; views get it after the
// Store applied it.
type EventMsg api.Event

// ReloadedMsg tells the views the Store was listed afresh.
type ReloadedMsg struct{}

// DisconnectedMsg: the feed lost the daemon (it stopped, restarted or was
// killed); the feed keeps reconnecting.
type DisconnectedMsg struct{ Err error }

// ReconnectedMsg: the feed is up (First: for the first time); Reset means
// events were missed and the Store must be listed again. The App lists
// after it, not before the feed starts, so no change falls between the
// list and the stream.
type ReconnectedMsg struct{ Reset, First bool }

// Init connects to the daemon.
func (a *App) Init() tea.Cmd {
	return tea.Batch(a.waitInbox(), a.connect(0))
}

func (a *App) waitInbox() tea.Cmd {
	inbox, ctx := a.inbox, a.env.ctx
	return func() tea.Msg {
		select {
		case m := <-inbox:
			return inboxMsg{m}
		case <-ctx.Done():
			return nil
		}
	}
}

func (a *App) connect(after time.Duration) tea.Cmd {
	ctx, connect := a.env.ctx, a.opts.Connect
	return func() tea.Msg {
		if after > 0 {
			select {
			case <-time.After(after):
			case <-ctx.Done():
				return nil
			}
		}
		cl, err := connect(ctx)
		return connectedMsg{cl, err}
	}
}

// reload lists every kind the Store keeps, one call each; events that
// arrive meanwhile are held and applied over the lists.
func (a *App) reload() tea.Cmd {
	if a.reloading {
		a.reloadAgain = true
		return nil
	}
	a.reloading = true
	ctx, cl := a.env.ctx, a.env.client
	return func() tea.Msg {
		var m reloadedMsg
		if m.vms, m.err = cl.VMs(ctx); m.err != nil {
			return m
		}
		if m.images, m.err = cl.Images(ctx); m.err != nil {
			return m
		}
		m.ops, m.err = cl.Operations(ctx)
		return m
	}
}

func (a *App) runFeed() tea.Cmd {
	ctx, feed, connect := a.env.ctx, a.opts.Feed, a.opts.Connect
	deliver := a.env.Send
	return func() tea.Msg {
		return feedEndedMsg{feed(ctx, connect, deliver)}
	}
}

func (a *App) statsTick() tea.Cmd {
	if a.opts.StatsEvery < 0 {
		return nil
	}
	return tea.Tick(a.opts.StatsEvery, func(time.Time) tea.Msg { return statsTickMsg{} })
}

func (a *App) fetchStats() tea.Cmd {
	ctx, cl := a.env.ctx, a.env.client
	return func() tea.Msg {
		st, err := vmStats(ctx, cl)
		return statsMsg{st, err}
	}
}

// Update handles one message.
func (a *App) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	return a, a.update(msg)
}

func (a *App) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case inboxMsg:
		return tea.Batch(a.waitInbox(), a.update(msg.msg))
	case tea.WindowSizeMsg:
		a.width, a.height = max(msg.Width, 20), max(msg.Height, 6)
		return a.broadcast(msg)
	case connectedMsg:
		if msg.err != nil {
			if a.env.ctx.Err() != nil {
				return nil
			}
			a.setStatus("", msg.err)
			return a.connect(2 * time.Second)
		}
		a.env.client = msg.cl
		a.env.Connected = true
		a.notice = ""
		cmds := []tea.Cmd{a.statsTick()}
		if !a.started {
			a.started = true
			cmds = append(cmds, a.runFeed())
			for _, v := range a.views {
				cmds = append(cmds, v.Init(&a.env))
			}
		}
		return tea.Batch(cmds...)
	case reloadedMsg:
		held := a.held
		a.reloading, a.held = false, nil
		s := a.env.Store
		if msg.err != nil {
			a.setStatus("", msg.err)
		} else {
			s.SetVMs(msg.vms)
			s.SetImages(msg.images)
			s.SetOperations(msg.ops)
			s.Loaded = true
		}
		// The events that came during the lists, in order, over them:
		// each object ends as its newest event or the list left it.
		for _, ev := range held {
			s.Apply(ev)
		}
		cmds := []tea.Cmd{a.broadcast(ReloadedMsg{})}
		for _, ev := range held {
			cmds = append(cmds, a.broadcast(EventMsg(ev)))
		}
		if a.reloadAgain {
			a.reloadAgain = false
			cmds = append(cmds, a.reload())
		}
		return tea.Batch(cmds...)
	case api.Event:
		return a.update(EventMsg(msg))
	case EventMsg:
		switch msg.Kind {
		case api.EventHello:
			return nil
		case api.EventReset:
			return a.reload()
		}
		if a.reloading {
			a.held = append(a.held, api.Event(msg))
			return nil
		}
		a.env.Store.Apply(api.Event(msg))
		return a.broadcast(msg)
	case DisconnectedMsg:
		a.env.Connected = false
		a.notice = NoticeAway
		return a.broadcast(msg)
	case ReconnectedMsg:
		a.env.Connected = true
		a.notice = ""
		if !msg.First {
			// What failed while the daemon was away is old news.
			a.setStatus(StatusReconnected, nil)
		}
		var cmd tea.Cmd
		if msg.Reset {
			cmd = a.reload()
		}
		return tea.Batch(cmd, a.broadcast(msg))
	case feedEndedMsg:
		if msg.err != nil && a.env.ctx.Err() == nil {
			a.setStatus("", msg.err)
		}
		return nil
	case statsTickMsg:
		if !a.env.Connected || a.env.client == nil {
			return a.statsTick()
		}
		return a.fetchStats()
	case statsMsg:
		if msg.err == nil {
			a.env.Store.AddStats(msg.stats)
		}
		return tea.Batch(a.statsTick(), a.broadcast(msg))
	case StatusMsg:
		a.setStatus(msg.Text, msg.Err)
		return nil
	case sessionsListedMsg:
		if msg.err != nil {
			a.setStatus("", msg.err)
			return nil
		}
		a.env.Store.SetSessions(msg.vm, msg.list)
		return a.broadcast(msg)
	case attachDoneMsg:
		st := attachStatus(msg)
		a.setStatus(st.Text, st.Err)
		return a.broadcast(msg)
	case tea.KeyPressMsg:
		return a.key(msg)
	}
	return a.broadcast(msg)
}

// broadcast hands a message to every view.
func (a *App) broadcast(msg tea.Msg) tea.Cmd {
	a.sizeEnv()
	var cmds []tea.Cmd
	for _, v := range a.views {
		cmds = append(cmds, v.Update(&a.env, msg))
	}
	return tea.Batch(cmds...)
}

func (a *App) key(msg tea.KeyPressMsg) tea.Cmd {
	if key.Matches(msg, a.keys.ForceQuit) {
		a.cancel()
		return tea.Quit
	}
	if len(a.views) == 0 {
		return nil
	}
	v := a.views[a.active]
	if !v.Capturing() {
		switch {
		case key.Matches(msg, a.keys.Quit):
			a.cancel()
			return tea.Quit
		case key.Matches(msg, a.keys.Next):
			a.active = (a.active + 1) % len(a.views)
			return nil
		case key.Matches(msg, a.keys.Prev):
			a.active = (a.active + len(a.views) - 1) % len(a.views)
			return nil
		case key.Matches(msg, a.keys.Help):
			a.fullHelp = !a.fullHelp
			return nil
		case key.Matches(msg, a.keys.Tab):
			if i := int(msg.Code - '1'); i >= 0 && i < len(a.views) {
				a.active = i
			}
			return nil
		}
	}
	a.status, a.statusErr = "", false
	a.sizeEnv()
	return v.Update(&a.env, msg)
}

func (a *App) setStatus(text string, err error) {
	if err != nil {
		a.status, a.statusErr = termsafe.Line(errorText(err)), true
		return
	}
	a.status, a.statusErr = termsafe.Line(text), false
}

// errorText is an error as the status line shows it.
func errorText(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Field != "" && ae.Allowed != "" && !strings.Contains(err.Error(), ae.Allowed) {
		return err.Error() + " (allowed: " + ae.Allowed + ")"
	}
	if client.IsNotRunning(err) {
		return "bangerd is not running: " + err.Error()
	}
	return err.Error()
}

// The screen's fixed rows besides the help bar: the tab bar and the
// status line.
const chromeRows = 2

// shortHelpRows is how many lines the help bar may wrap to; fullHelpRows
// how many keys a column of the full help (?) holds.
const (
	shortHelpRows = 2
	fullHelpRows  = 4
)

func (a *App) sizeEnv() {
	a.env.Width, a.env.Height = a.width, max(a.height-chromeRows-a.helpRows(), 1)
}

// helpGroups is the help bar laid out: the keys of the moment wrapped to
// at most shortHelpRows lines (measured, not drawn), or, after ?, every
// key in columns of fullHelpRows.
func (a *App) helpGroups() [][]key.Binding {
	var all []key.Binding
	for _, b := range a.bindings() {
		if b.Enabled() && b.Help().Key != "" {
			all = append(all, b)
		}
	}
	if a.fullHelp {
		return chunk(all, fullHelpRows)
	}
	sep := ansi.StringWidth(a.help.ShortSeparator)
	var lines [][]key.Binding
	var cur []key.Binding
	w := 0
	for _, b := range all {
		bw := ansi.StringWidth(b.Help().Key) + 1 + ansi.StringWidth(b.Help().Desc)
		if len(cur) > 0 && w+sep+bw > a.width && len(lines) < shortHelpRows-1 {
			lines = append(lines, cur)
			cur, w = []key.Binding{b}, bw
			continue
		}
		if len(cur) > 0 {
			w += sep
		}
		cur, w = append(cur, b), w+bw
	}
	return append(lines, cur)
}

// helpRows is how many lines the help bar takes.
func (a *App) helpRows() int {
	g := a.helpGroups()
	if a.fullHelp {
		rows := 0
		for _, col := range g {
			rows = max(rows, len(col))
		}
		return max(rows, 1)
	}
	return len(g)
}

// helpLines draws the help bar.
func (a *App) helpLines() []string {
	g := a.helpGroups()
	if a.fullHelp {
		return strings.Split(a.help.FullHelpView(g), "\n")
	}
	lines := make([]string, len(g))
	for i, b := range g {
		lines[i] = a.help.ShortHelpView(b)
	}
	return lines
}

// View draws the whole screen.
func (a *App) View() tea.View {
	v := tea.NewView(a.Screen())
	v.AltScreen = true
	v.WindowTitle = "banger"
	return v
}

// Screen is the screen as text, exactly width × height cells (with
// styles; tests strip them).
func (a *App) Screen() string {
	a.sizeEnv()
	var b strings.Builder
	b.WriteString(fit(a.tabBar(), a.width))
	b.WriteByte('\n')
	body := ""
	if len(a.views) > 0 {
		body = a.views[a.active].Render(&a.env)
	}
	b.WriteString(box(body, a.env.Width, a.env.Height))
	b.WriteByte('\n')
	b.WriteString(fit(a.statusLine(), a.width))
	b.WriteByte('\n')
	b.WriteString(box(strings.Join(a.helpLines(), "\n"), a.width, a.helpRows()))
	return b.String()
}

func (a *App) tabBar() string {
	t := a.env.Theme
	parts := []string{t.Title.Render(" banger ")}
	for i, v := range a.views {
		label := " " + string(rune('1'+i)) + " " + v.Title() + " "
		if i == a.active {
			parts = append(parts, t.TabOn.Render(label))
		} else {
			parts = append(parts, t.Tab.Render(label))
		}
	}
	return strings.Join(parts, " ")
}

func (a *App) statusLine() string {
	t := a.env.Theme
	switch {
	case a.notice != "":
		return t.Notice.Render(" " + a.notice + " ")
	case a.statusErr:
		return t.Error.Render("error: ") + a.status
	default:
		return a.status
	}
}

// bindings is the short help: the view's keys, then the App's.
func (a *App) bindings() []key.Binding {
	var out []key.Binding
	capturing := false
	if len(a.views) > 0 {
		out = append(out, a.views[a.active].Keys()...)
		capturing = a.views[a.active].Capturing()
	}
	if !capturing {
		if len(a.views) > 1 {
			out = append(out, a.keys.Next)
		}
		out = append(out, a.keys.Help, a.keys.Quit)
	}
	return out
}

func chunk(b []key.Binding, n int) [][]key.Binding {
	var out [][]key.Binding
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	if len(b) > 0 {
		out = append(out, b)
	}
	return out
}

// appKeys are the keys the App takes whatever the view.
type appKeys struct {
	Quit, ForceQuit, Next, Prev, Help, Tab key.Binding
}

func newAppKeys() appKeys {
	return appKeys{
		Quit:      key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		ForceQuit: key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
		Next:      key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next tab")),
		Prev:      key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous tab")),
		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "all keys")),
		Tab:       key.NewBinding(key.WithKeys("1", "2", "3", "4", "5", "6", "7", "8", "9"), key.WithHelp("1-9", "tab")),
	}
}
