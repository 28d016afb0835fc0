package tui

import (
	"fmt"
	"math"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// Theme is the TUI's look. Under NO_COLOR every colour is left out but
// bold, faint and reverse stay (https://no-color.org asks for no colour,
// not no emphasis), so the selection and the active tab still show.
type Theme struct {
	Title    lipgloss.Style // the "banger" mark in the tab bar
	Tab      lipgloss.Style
	TabOn    lipgloss.Style
	Header   lipgloss.Style // table headers
	Selected lipgloss.Style // the selected row
	Faint    lipgloss.Style
	Bold     lipgloss.Style
	Error    lipgloss.Style // an error in the status line, next to a field
	Notice   lipgloss.Style // the daemon-away notice
	OK       lipgloss.Style
	Warn     lipgloss.Style
	Key      lipgloss.Style // a key in the help bar
	Desc     lipgloss.Style // its description
	// States colours a VM, session or operation state word.
	States map[string]lipgloss.Style
}

// NewTheme returns the look; noColor drops every colour.
func NewTheme(noColor bool) Theme {
	s := lipgloss.NewStyle
	color := func(st lipgloss.Style, c string) lipgloss.Style {
		if noColor {
			return st
		}
		return st.Foreground(lipgloss.Color(c))
	}
	t := Theme{
		Title:    color(s().Bold(true), "#FF8700"),
		Tab:      color(s(), "245"),
		TabOn:    color(s().Bold(true).Reverse(true), "#FF8700"),
		Header:   color(s().Bold(true), "245"),
		Selected: s().Reverse(true),
		Faint:    s().Faint(true),
		Bold:     s().Bold(true),
		Error:    color(s().Bold(true), "9"),
		Notice:   color(s().Bold(true).Reverse(true), "11"),
		OK:       color(s(), "10"),
		Warn:     color(s(), "11"),
		Key:      color(s().Bold(true), "252"),
		Desc:     color(s(), "245"),
	}
	t.States = map[string]lipgloss.Style{
		"running":   t.OK,
		"succeeded": t.OK,
		"creating":  t.Warn,
		"deleting":  t.Warn,
		"paused":    color(s(), "14"),
		"stopped":   color(s(), "245"),
		"exited":    color(s(), "245"),
		"failed":    t.Error,
		"canceled":  t.Warn,
		"lost":      t.Error,
	}
	return t
}

// State renders a state word in its colour.
func (t Theme) State(state string) string {
	if st, ok := t.States[state]; ok {
		return st.Render(state)
	}
	return state
}

// Format renders the figures that differ from run to run. Tests replace
// its functions so golden screens stay the same.
type Format struct {
	// Age renders how long ago t was ("42s", "5m", "3h", "2d").
	Age func(t time.Time) string
	// Duration renders a stage's or an operation's length ("850ms", "2.4s").
	Duration func(d time.Duration) string
	// Percent renders a CPU figure ("12%").
	Percent func(p float64) string
}

// DefaultFormat measures ages from now.
func DefaultFormat(now func() time.Time) Format {
	return Format{
		Age:      func(t time.Time) string { return age(now().Sub(t)) },
		Duration: duration,
		Percent: func(p float64) string {
			if p < 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f%%", p)
		},
	}
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

// mib renders a size in MiB as "512M", "2G", "1.5G".
func mib(n int) string {
	if n >= 1024 {
		g := float64(n) / 1024
		if g == math.Trunc(g) {
			return fmt.Sprintf("%.0fG", g)
		}
		return fmt.Sprintf("%.1fG", g)
	}
	return fmt.Sprintf("%dM", n)
}

// bytesText renders a byte count with a binary unit ("1.5 GiB").
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// sparkline draws values (0..100, one core = 100) as block characters,
// the newest on the right, in width cells.
func sparkline(values []float64, width int) string {
	const bars = "▁▂▃▄▅▆▇█"
	runes := []rune(bars)
	if len(values) > width {
		values = values[len(values)-width:]
	}
	var b strings.Builder
	for range width - len(values) {
		b.WriteByte(' ')
	}
	for _, v := range values {
		if v < 0 {
			b.WriteByte(' ')
			continue
		}
		i := int(v / 100 * float64(len(runes)-1))
		b.WriteRune(runes[min(max(i, 0), len(runes)-1)])
	}
	return b.String()
}

// fit pads or cuts s (which may hold styles) to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n := ansi.StringWidth(s)
	if n > w {
		return ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-n)
}

// fitLeft is fit with the text aligned right.
func fitLeft(s string, w int) string {
	n := ansi.StringWidth(s)
	if n >= w {
		return fit(s, w)
	}
	return strings.Repeat(" ", w-n) + s
}

// box makes s exactly w×h cells: each line fitted, lines cut or added.
func box(s string, w, h int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	for i, l := range lines {
		lines[i] = fit(l, w)
	}
	return strings.Join(lines, "\n")
}
