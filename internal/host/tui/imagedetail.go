package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// imageDetail is one image from the Store: where it came from, its
// kernel and whether each hypervisor can boot it (and why not), its
// probes and services, what uses it, and its artifacts with sizes and
// digests. Promote, remove and build are the Images tab's keys.
type imageDetail struct {
	name   string
	offset int
	keys   imageDetailKeys
}

type imageDetailKeys struct {
	Back, Up, Down key.Binding
}

func newImageDetail(name string) *imageDetail {
	return &imageDetail{name: name, keys: imageDetailKeys{
		Back: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Up:   key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/↓", "scroll")),
		Down: key.NewBinding(key.WithKeys("down", "j")),
	}}
}

func (d *imageDetail) Keys() []key.Binding { return []key.Binding{d.keys.Back, d.keys.Up} }

// key handles the detail's own keys; it reports whether the user left.
func (d *imageDetail) key(env *Env, msg tea.KeyPressMsg) bool {
	switch {
	case key.Matches(msg, d.keys.Back):
		return true
	case key.Matches(msg, d.keys.Up):
		d.offset = max(d.offset-1, 0)
	case key.Matches(msg, d.keys.Down):
		d.offset++
	}
	return false
}

// digestText shortens a SHA-256 to what identifies it on screen.
func digestText(sum string) string {
	if len(sum) > 16 {
		return sum[:16] + "…"
	}
	return dash(sum)
}

// suitability says whether a hypervisor boots the kernel, and why not.
func suitability(t Theme, ok bool, reason, note string) string {
	if ok {
		s := t.OK.Render("✓ yes")
		if note != "" {
			s += " " + note
		}
		return s
	}
	if reason == "" {
		reason = "not suitable"
	}
	return t.Error.Render("✗ no") + " " + termsafe.Line(reason)
}

func (d *imageDetail) lines(env *Env, im api.Image) []string {
	t := env.Theme
	kv := func(k, v string) string { return t.Faint.Render(fit(k, 12)) + v }
	origin := strings.TrimSpace(strings.Join([]string{im.Distro, im.Suite, im.Libc}, " "))
	lines := []string{
		"  " + kv("origin", termsafe.Line(dash(origin))),
		"  " + kv("parent", termsafe.Line(dash(im.Parent))),
	}
	if im.Source != "" {
		lines = append(lines, "  "+kv("source", termsafe.Line(im.Source)))
	}
	kernel := dash(im.Kernel.Release)
	if im.Kernel.Compression != "" {
		kernel += " (" + im.Kernel.Compression + ")"
	}
	fcNote := ""
	if im.Kernel.FirecrackerMinVersion != "" {
		fcNote = "(Firecracker ≥ " + im.Kernel.FirecrackerMinVersion + ")"
	}
	lines = append(lines,
		"  "+kv("kernel", termsafe.Line(kernel)),
		"  "+kv("qemu", suitability(t, im.Kernel.QEMU, im.Kernel.QEMUReason, "")),
		"  "+kv("firecracker", suitability(t, im.Kernel.Firecracker, im.Kernel.FirecrackerReason, termsafe.Line(fcNote))),
		"  "+kv("agent", termsafe.Line(dash(im.AgentVersion))),
		"  "+kv("created", env.Format.Age(im.CreatedAt)+" ago"),
	)
	var probes []string
	for _, p := range im.Probes {
		probes = append(probes, fmt.Sprintf("%s (%s :%d)", termsafe.Line(p.Name), termsafe.Line(p.Kind), p.Port))
	}
	lines = append(lines, "  "+kv("probes", dash(strings.Join(probes, ", "))))
	if len(im.Services) > 0 {
		var svcs []string
		for _, s := range im.Services {
			if s.Port != 0 {
				svcs = append(svcs, fmt.Sprintf("%s :%d", termsafe.Line(s.Name), s.Port))
			} else {
				svcs = append(svcs, termsafe.Line(s.Name))
			}
		}
		lines = append(lines, "  "+kv("services", strings.Join(svcs, ", ")))
	}
	if len(im.Provisioning) > 0 {
		lines = append(lines, "  "+kv("provisioned", termsafe.Line(strings.Join(im.Provisioning, ", "))))
	}
	used := "nothing"
	if len(im.UsedBy) > 0 {
		used = termsafe.Line(strings.Join(im.UsedBy, ", "))
	}
	lines = append(lines, "  "+kv("used by", used), "")
	lines = append(lines, warmLines(env, im)...)
	// A linked image's files live where the user keeps them: say where.
	linked := im.State == api.ImageUnmanaged
	head := fit("ARTIFACT", 10) + " " + fitLeft("SIZE", 10) + "  " + fit("SHA-256", 17)
	if linked {
		head += "  PATH"
	}
	lines = append(lines, "  "+t.Header.Render(head))
	for _, a := range im.Artifacts {
		line := "  " + fit(termsafe.Line(a.Kind), 10) + " " + fitLeft(bytesText(a.Size), 10) + "  " + fit(digestText(a.SHA256), 17)
		if linked {
			line += "  " + fit(termsafe.Line(a.Path), max(env.Width-len([]rune(line))-2, 8))
		}
		lines = append(lines, strings.TrimRight(line, " "))
	}
	if len(im.Artifacts) == 0 {
		lines = append(lines, "  "+t.Faint.Render("no artifacts (the image was removed; VMs still use its record)"))
	}
	return lines
}

// Render draws the detail in env.Width × height.
func (d *imageDetail) Render(env *Env, height int) string {
	t := env.Theme
	im, ok := env.Store.Image(d.name)
	if !ok {
		return box(t.Bold.Render(" Image "+termsafe.Line(d.name))+" · gone", env.Width, height)
	}
	head := t.Bold.Render(" Image "+termsafe.Line(im.Name)) + " · " + t.State(imageState(im))
	switch im.State {
	case api.ImageReady:
		head += " · managed"
	case api.ImageUnmanaged:
		head += " · its files are linked: p copies them into banger's store"
	}
	body := d.lines(env, im)
	room := max(height-2, 1)
	d.offset = min(d.offset, max(len(body)-room, 0))
	out := append([]string{head, ""}, body[d.offset:]...)
	return box(strings.Join(out, "\n"), env.Width, height)
}

// warmLines are the image's warm snapshots, or a line saying it has none,
// and a blank line.
func warmLines(env *Env, im api.Image) []string {
	t := env.Theme
	if len(im.Warm) == 0 {
		return []string{"  " + t.Faint.Render("no warm snapshot: its VMs boot (w warms it)"), ""}
	}
	lines := []string{"  " + t.Header.Render(fit("WARM", 12)+" "+fitLeft("VCPUS", 5)+" "+fitLeft("MEMORY", 10)+" "+fitLeft("DISK", 10)+" "+fitLeft("SIZE", 10)+"  AGE")}
	for _, w := range im.Warm {
		hv := w.Hypervisor
		if w.Accel != "" {
			hv += "/" + w.Accel
		}
		lines = append(lines, "  "+fit(termsafe.Line(hv), 12)+" "+fitLeft(fmt.Sprint(w.VCPUs), 5)+" "+fitLeft(mib(w.MemoryMiB), 10)+" "+
			fitLeft(bytesText(w.DiskBytes), 10)+" "+fitLeft(bytesText(w.Bytes), 10)+"  "+env.Format.Age(w.CreatedAt))
	}
	return append(lines, "  "+t.Faint.Render("vm create of these shapes restores instead of booting (u removes them)"), "")
}
