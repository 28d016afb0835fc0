package tui

import (
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/charmbracelet/x/ansi"
)

// TestImageOpsDoctorScreensFollowResize opens each screen of the Images,
// Operations and Doctor tabs and checks that at every size it fills
// exactly the terminal, and that under NO_COLOR it has no colour.
func TestImageOpsDoctorScreensFollowResize(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true, Host: doctorHost{}})
	d.CreateVM(t, api.CreateVMRequest{Name: "a-rather-long-vm-name-for-the-tables", Image: daemontest.FakeImage})
	screens := []struct {
		name  string
		keys  []string
		shows string
	}{
		{"images list", []string{"2"}, "NAME"},
		{"image detail", []string{"2", "enter"}, "ARTIFACT"},
		{"remove refused", []string{"2", "d", "y"}, "was not removed"},
		{"build form", []string{"2", "n"}, "Build an image"},
		{"bootstrap form", []string{"2", "b"}, "Bootstrap a base image"},
		{"operations list", []string{"3"}, "KIND"},
		{"operation watch", []string{"3", "enter"}, "succeeded in"},
		{"doctor", []string{"4"}, "Quick checks"},
	}
	for _, sc := range screens {
		t.Run(sc.name, func(t *testing.T) {
			h := newHarness(t, fakeOptions(d))
			h.waitText("1 VMs", "a-rather-long")
			for _, k := range sc.keys {
				h.key(k)
			}
			h.waitText(sc.shows)
			h.settle()
			if raw := h.app.Screen(); strings.Contains(raw, "\x1b[38") || strings.Contains(raw, "\x1b[48") {
				t.Errorf("NO_COLOR screen has colour sequences: %q", raw)
			}
			for _, size := range []struct{ w, h int }{{100, 30}, {60, 20}, {80, 24}} {
				h.process(tea.WindowSizeMsg{Width: size.w, Height: size.h})
				lines := strings.Split(h.screen(), "\n")
				if len(lines) != size.h {
					t.Errorf("%dx%d: %d lines", size.w, size.h, len(lines))
				}
				for i, l := range lines {
					if w := ansi.StringWidth(l); w != size.w {
						t.Errorf("%dx%d: line %d is %d cells: %q", size.w, size.h, i, w, l)
					}
				}
				if !strings.Contains(h.screen(), sc.shows) {
					t.Errorf("%dx%d: %q is gone:\n%s", size.w, size.h, sc.shows, h.screen())
				}
			}
		})
	}
}
