package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/charmbracelet/x/ansi"
)

// maxLogLines is how many lines a textLog keeps (the oldest go first).
const maxLogLines = 5000

// textLog is a scrollable tail of text from a stream (the serial console,
// a session's output). Each line is escaped with termsafe when it is
// complete (see clean), so a guest's escape sequences never drive the
// terminal. It follows the end until scrolled up; End follows again.
type textLog struct {
	lines   []string
	partial []byte
	// offset is the first line shown when not following.
	offset int
	follow bool
	keys   logKeys
}

type logKeys struct {
	Up, Down, PageUp, PageDown, Top, End key.Binding
}

func newTextLog() *textLog {
	return &textLog{
		follow: true,
		keys: logKeys{
			Up:       key.NewBinding(key.WithKeys("up"), key.WithHelp("↑/↓", "scroll")),
			Down:     key.NewBinding(key.WithKeys("down")),
			PageUp:   key.NewBinding(key.WithKeys("pgup", "b"), key.WithHelp("pgup/pgdn", "page")),
			PageDown: key.NewBinding(key.WithKeys("pgdown", "f")),
			Top:      key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g/G", "top/follow")),
			End:      key.NewBinding(key.WithKeys("end", "G")),
		},
	}
}

// reset forgets everything (a stream begins again from the start).
func (l *textLog) reset() {
	l.lines, l.partial, l.offset, l.follow = nil, nil, 0, true
}

// write adds bytes from the stream.
func (l *textLog) write(p []byte) {
	l.partial = append(l.partial, p...)
	for {
		i := strings.IndexByte(string(l.partial), '\n')
		if i < 0 {
			break
		}
		l.addLine(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 64<<10 { // a line without end: show it in pieces
		l.addLine(string(l.partial))
		l.partial = nil
	}
}

func (l *textLog) addLine(s string) {
	s = strings.TrimRight(s, "\r")
	// A carriage return redraws the line: keep what was drawn last.
	if i := strings.LastIndexByte(s, '\r'); i >= 0 {
		s = s[i+1:]
	}
	l.lines = append(l.lines, clean(s))
	if n := len(l.lines) - maxLogLines; n > 0 {
		l.lines = l.lines[n:]
		l.offset = max(l.offset-n, 0)
	}
}

// all is every line, the unfinished one included.
func (l *textLog) all() []string {
	if len(l.partial) == 0 {
		return l.lines
	}
	return append(l.lines[:len(l.lines):len(l.lines)], clean(strings.TrimRight(string(l.partial), "\r")))
}

// clean makes one line of a guest's output safe to draw: well-formed
// escape sequences (colours, cursor moves, titles) are dropped, since a
// pane does not play them, and whatever control is left is shown escaped
// by termsafe; tabs become spaces.
func clean(s string) string {
	s = strings.ReplaceAll(s, "\t", "    ")
	return termsafe.Line(ansi.Strip(s))
}

// key scrolls; height is the lines on screen.
func (l *textLog) key(msg tea.KeyPressMsg, height int) bool {
	k := l.keys
	lines := l.all()
	bottom := max(len(lines)-height, 0)
	if l.follow {
		l.offset = bottom
	}
	switch {
	case key.Matches(msg, k.Up):
		l.offset--
	case key.Matches(msg, k.Down):
		l.offset++
	case key.Matches(msg, k.PageUp):
		l.offset -= height
	case key.Matches(msg, k.PageDown):
		l.offset += height
	case key.Matches(msg, k.Top):
		l.offset = 0
	case key.Matches(msg, k.End):
		l.offset = bottom
	default:
		return false
	}
	l.offset = min(max(l.offset, 0), bottom)
	l.follow = l.offset == bottom
	return true
}

func (l *textLog) help() []key.Binding {
	return []key.Binding{l.keys.Up, l.keys.PageUp, l.keys.Top}
}

// render shows height lines: the tail when following.
func (l *textLog) render(width, height int) string {
	lines := l.all()
	start := l.offset
	if l.follow {
		start = max(len(lines)-height, 0)
	}
	start = min(max(start, 0), max(len(lines)-height, 0))
	end := min(start+height, len(lines))
	out := make([]string, 0, height)
	for _, s := range lines[start:end] {
		out = append(out, fit(s, width))
	}
	return strings.Join(out, "\n")
}

// logWriter hands a stream's bytes to the program as logChunkMsg values.
type logWriter struct {
	id   int
	send func(tea.Msg)
}

func (w logWriter) Write(p []byte) (int, error) {
	w.send(logChunkMsg{id: w.id, data: append([]byte(nil), p...)})
	return len(p), nil
}

// logChunkMsg is bytes for the textLog whose stream has id.
type logChunkMsg struct {
	id   int
	data []byte
}

// logEndMsg: the stream with id ended.
type logEndMsg struct {
	id  int
	err error
}

// streamIDs numbers streams so a chunk of a stream that was replaced is
// not shown. Only the UI goroutine uses it.
var streamIDs int

func nextStreamID() int {
	streamIDs++
	return streamIDs
}
