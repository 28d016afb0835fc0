package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/web/browsertest"
)

// TestWebUI drives the web UI in headless Chromium against a real QEMU VM
// in a test namespace, as a user would: `banger web` prints the login URL;
// the browser (run inside the namespace, where the daemon's loopback
// listener is) logs in; the create form refuses vcpus 999 next to its
// field and keeps what was typed; the corrected create boots a VM with its
// stages shown live; a TTY session running bash opens in the in-browser
// terminal, `echo hi` answers hi, a second browser attached to the same
// session gets the output replayed and types into it too, and the
// shell's exit shows in both; the VM is deleted after its
// confirmation; then `banger verify` finds nothing leaked.
func TestWebUI(t *testing.T) {
	if _, err := browsertest.Chromium(); err != nil {
		t.Skip(err.Error())
	}
	e := vmEnv(t)
	r := e.must("web")
	url := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(url, "http://127.0.0.1:7180/login?token=") {
		t.Fatalf("banger web printed %q, want the login URL on the default listener\nstderr: %s", url, r.stderr)
	}
	p := browsertest.New(t, browsertest.Options{Netns: e.netns})
	p.Navigate(url)
	p.WaitText("#app", "Dashboard")
	p.WaitText("#vm-count", "(0)")
	p.WaitText(`#image-table tr[data-image="base"]`, "ready")

	// The create form: a refused value, then the create.
	p.Click("#nav-create")
	p.WaitVisible("#create-form")
	p.WaitTrue("the image list", `[...document.querySelectorAll('#create-form [name="image"] option')].some(o => o.value === "base")`)
	p.Type("name", "web1")
	p.Type("vcpus", "999")
	p.Type("memory_mib", "1GiB")
	p.Type("disk_bytes", "2GiB")
	p.Click("#create-submit")
	if msg := p.WaitText(`[data-field="vcpus"] [data-error-for="vcpus"]`, "999"); !strings.Contains(msg, "out of range") {
		t.Errorf("the vCPUs error says %q", msg)
	}
	for field, want := range map[string]string{"name": "web1", "vcpus": "999", "memory_mib": "1GiB", "disk_bytes": "2GiB"} {
		if got := p.Value(field); got != want {
			t.Errorf("after the error %s = %q, want %q as typed", field, got, want)
		}
	}
	p.Type("vcpus", "") // the configuration's default
	// Every state a stage is drawn in, as the page draws it.
	p.Eval(`window.stagesSeen = new Set();
		new MutationObserver(() => document.querySelectorAll("#op-stages li").forEach(li => stagesSeen.add(li.dataset.stage + "=" + li.dataset.state)))
			.observe(document.querySelector("#create-progress"), {subtree: true, childList: true, attributes: true})`, nil)
	p.Click("#create-submit")

	// Live stages: the guest's boot (agent health) takes seconds, under
	// software emulation tens of seconds; the page shows it running.
	boot := p.Within(10 * time.Minute)
	boot.WaitTrue("agent health shown running", `document.querySelector('#op-stages li[data-stage="agent health"]')?.dataset.state === "running"`)
	running := p.Text("#op-stages")
	boot.WaitTrue("the create to end", `document.querySelector("#op-state")?.dataset.state !== "running"`)
	var state string
	p.Eval(`document.querySelector("#op-state").dataset.state`, &state)
	stages := p.Text("#op-stages")
	t.Logf("while running:\n%s\nat the end (%s):\n%s", running, state, stages)
	if state != "succeeded" {
		t.Fatalf("the create ended %s: %s", state, p.Text("#create-progress"))
	}
	for _, stage := range []string{"allocate", "upper disk", "work disk", "acquire tap", "launch qemu", "agent health"} {
		if !strings.Contains(stages, stage) {
			t.Errorf("the stages lack %q", stage)
		}
	}
	var seen []string
	p.Eval(`[...stagesSeen]`, &seen)
	t.Logf("stage states drawn: %q", seen)
	for _, want := range []string{"agent health=running", "agent health=done"} {
		if !slices.Contains(seen, want) {
			t.Errorf("the page never drew %s", want)
		}
	}

	// The VM's page, a TTY session running bash, its terminal.
	p.Click("#create-open-vm")
	p.WaitTrue("web1 running", `document.querySelector("#vm-header")?.dataset.state === "running"`)
	p.WaitText(`#vm-spec dd[data-key="IP"]`, "172.")
	p.TypeIn("#session-form", "argv", "bash")
	p.TypeIn("#session-form", "name", "shell")
	if !p.Has(`#session-form [name="tty"]:checked`) {
		t.Fatal("the session form's TTY box is not checked by default")
	}
	p.Click("#session-submit")
	p.WaitText("#session-started", "Started session shell")
	p.Click("#session-started-open")
	p.WaitTrue("the terminal attached", `document.querySelector("#terminal-status")?.dataset.state === "attached"`)
	p.WaitTrue("bash's prompt", `/[#$]\s*$/m.test(document.querySelector("#terminal .xterm-rows")?.innerText ?? "")`)
	p.Press("#terminal .xterm-helper-textarea", "echo hi\r")
	p.WaitTrue("a line that is just hi", lineIs("hi"))

	// A second viewer (another browser, its own login): the buffered
	// output is replayed to it, and what it types shows in both.
	sessionURL := p.Location()
	r = e.must("web")
	p2 := browsertest.New(t, browsertest.Options{Netns: e.netns})
	p2.Navigate(strings.TrimSpace(r.stdout))
	p2.WaitText("#app", "Dashboard")
	p2.Navigate(sessionURL)
	p2.WaitTrue("the second viewer attached", `document.querySelector("#terminal-status")?.dataset.state === "attached"`)
	p2.WaitTrue("hi replayed to the second viewer", lineIs("hi"))
	p2.Press("#terminal .xterm-helper-textarea", "echo from-$((6*7))\r")
	p2.WaitTrue("from-42 in the second viewer", lineIs("from-42"))
	p.WaitTrue("from-42 in the first viewer", lineIs("from-42"))

	// The shell exits: both terminals say the session ended.
	p.Press("#terminal .xterm-helper-textarea", "exit\r")
	for _, v := range []*browsertest.Page{p, p2} {
		v.WaitTrue("the session shown exited", `document.querySelector("#terminal-status")?.dataset.state === "exited"`)
	}

	// Delete from the VM's page, after its confirmation.
	p.Navigate(strings.Replace(url, url[strings.Index(url, "/login"):], "/vm/web1", 1))
	p.WaitTrue("web1 running", `document.querySelector("#vm-header")?.dataset.state === "running"`)
	p.Click("#vm-web1-delete")
	p.WaitText("#confirm-dialog", "Delete VM web1?")
	p.Click("#confirm-ok")
	p.Within(3*time.Minute).WaitText("#app", "Dashboard")
	p.WaitText("#vm-count", "(0)")

	verifyClean(t, e)
}

// lineIs is the JavaScript that is true when a line of the page's terminal
// reads exactly text.
func lineIs(text string) string {
	return `[...document.querySelectorAll("#terminal .xterm-rows > div")].some(d => d.innerText.trim() === "` + text + `")`
}
