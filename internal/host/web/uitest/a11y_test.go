package uitest

import (
	"context"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/web/browsertest"
)

// unlabelled is the JavaScript that lists the page's visible form controls
// a screen reader could not name: no <label>, no aria-label(ledby).
const unlabelled = `[...document.querySelectorAll("#app input, #app select, #app textarea")]
	.filter(e => e.type !== "hidden" && !e.classList.contains("xterm-helper-textarea"))
	.filter(e => e.labels.length === 0 && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby"))
	.map(e => (e.closest("form")?.id || "?") + " " + (e.name || e.id || e.outerHTML.slice(0, 60)))`

// The accessible basics: every field of every form has a label;
// the create form works from the keyboard alone; pages fit a narrow
// window without scrolling sideways.
func TestAccessibleBasics(t *testing.T) {
	u := start(t)
	u.createVMs(api.CreateVMRequest{Name: "alpha"})
	u.login()
	p := u.p

	pages := []struct{ path, ready string }{
		{"/", "#vm-table"},
		{"/create", "#create-form"},
		{"/vm/alpha", "#session-form"},
		{"/images", "#app h1"},
		{"/images/bootstrap", "#app form"},
		{"/images/build", "#app form"},
		{"/images/register", "#app form"},
		{"/vm/alpha/diff", "#diff-header"},
	}
	t.Run("labels", func(t *testing.T) {
		// The check sees an unlabelled field when there is one.
		p.WaitVisible("#vm-table")
		var probe []string
		p.Eval(`document.querySelector("#app").append(Object.assign(document.createElement("input"), {name: "probe"}));`+unlabelled, &probe)
		if len(probe) != 1 || probe[0] != "? probe" {
			t.Fatalf("an unlabelled input added to the page is reported as %q", probe)
		}
		for _, pg := range pages {
			p.Navigate(u.origin + pg.path)
			p.WaitVisible(pg.ready)
			var bad []string
			p.Eval(unlabelled, &bad)
			if len(bad) > 0 {
				t.Errorf("%s: fields without a label: %q", pg.path, bad)
			}
		}
	})

	t.Run("keyboard", func(t *testing.T) {
		p.Navigate(u.origin + "/create")
		p.WaitVisible("#create-form")
		p.WaitTrue("the name field focused", `document.activeElement?.name === "name"`)
		p.Press("", "kbvm")
		p.Press("", "\t")
		var next string
		p.Eval(`document.activeElement?.name`, &next)
		if next != "image" {
			t.Errorf("Tab from name went to %q, want the image field", next)
		}
		p.Press(`#create-form [name="name"]`, "\r") // Enter submits
		p.WaitTrue("the create to succeed", opState+` === "succeeded"`)
		if _, err := u.d.Client.VM(context.Background(), "kbvm"); err != nil {
			t.Errorf("the keyboard's create: %v", err)
		}
	})

	t.Run("narrow", func(t *testing.T) {
		n := browsertest.New(t, browsertest.Options{Width: 390, Height: 844})
		n.Navigate(u.loginURL())
		u := &ui{t: t, d: u.d, p: n, origin: u.origin}
		u.dashboard()
		for _, pg := range pages[:3] {
			n.Navigate(u.origin + pg.path)
			n.WaitVisible(pg.ready)
			var over int
			n.Eval(`document.documentElement.scrollWidth - window.innerWidth`, &over)
			if over > 0 {
				t.Errorf("%s at 390px wide scrolls sideways by %dpx", pg.path, over)
			}
		}
	})
}
