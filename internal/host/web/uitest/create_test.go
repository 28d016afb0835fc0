package uitest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
)

// opState is the JavaScript that reads the followed operation's state.
const opState = `document.querySelector("#op-state")?.dataset.state`

// The create form: a value the daemon refuses (vcpus 999) comes back as an
// error next to the vCPUs field, the form keeps everything typed, and no
// VM is made; corrected, the create runs with its stages shown, ends
// succeeded, links to the new VM, and the VM is on the dashboard.
func TestCreateForm(t *testing.T) {
	u := start(t)
	u.login()
	p := u.p
	p.Click("#nav-create")
	p.WaitVisible("#create-form")
	p.WaitTrue("the image list", `[...document.querySelectorAll('#create-form [name="image"] option')].some(o => o.value === "base")`)

	p.Type("name", "webvm")
	p.Select("image", "base")
	p.Type("vcpus", "999")
	p.Type("memory_mib", "1GiB")
	p.Click("#create-submit")

	msg := p.WaitText(`[data-field="vcpus"] [data-error-for="vcpus"]`, "999")
	if !strings.Contains(msg, "vCPUs 999 is out of range") {
		t.Errorf("the vCPUs field's error says %q, want the daemon's reason in the field's words", msg)
	}
	var invalid []string
	p.Eval(`[...document.querySelectorAll('#create-form [aria-invalid="true"]')].map(e => e.name)`, &invalid)
	if len(invalid) != 1 || invalid[0] != "vcpus" {
		t.Errorf("fields marked invalid: %q, want only vcpus", invalid)
	}
	var shown []string
	p.Eval(`[...document.querySelectorAll('#create-form [data-error-for]')].filter(e => !e.hidden).map(e => e.dataset.errorFor)`, &shown)
	if len(shown) != 1 || shown[0] != "vcpus" {
		t.Errorf("errors shown for %q, want only vcpus", shown)
	}
	for field, want := range map[string]string{"name": "webvm", "image": "base", "vcpus": "999", "memory_mib": "1GiB"} {
		if got := p.Value(field); got != want {
			t.Errorf("after the error, %s = %q, want %q as typed", field, got, want)
		}
	}
	ctx := context.Background()
	if _, err := u.d.Client.VM(ctx, "webvm"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("a refused create left VM webvm: %v", err)
	}

	p.Type("vcpus", "2")
	p.Click("#create-submit")
	p.WaitTrue("the create to succeed", opState+` === "succeeded"`)
	if p.Has(`[data-error-for="vcpus"]:not([hidden])`) {
		t.Error("the vCPUs error is still shown after a good create")
	}
	var stages []string
	p.Eval(`[...document.querySelectorAll("#op-stages li")].map(li => li.dataset.stage + "=" + li.dataset.state)`, &stages)
	if len(stages) < 3 {
		t.Errorf("the create shows stages %q; want each stage of the create", stages)
	}
	for _, s := range stages {
		if !strings.HasSuffix(s, "=done") {
			t.Errorf("stage %s after success, want done", s)
		}
	}
	v, err := u.d.Client.VM(ctx, "webvm")
	if err != nil || v.VCPUs != 2 || v.MemoryMiB != 1024 || v.Image != "base" {
		t.Errorf("the VM made: %+v, %v; want webvm with 2 vCPUs, 1024 MiB, image base", v, err)
	}

	p.Click("#create-open-vm")
	p.WaitTrue("webvm's page", `document.querySelector("#vm-header")?.dataset.state === "running"`)
	p.WaitText("#vm-header", "VM webvm")
	p.WaitText(`#vm-spec dd[data-key="vCPUs"]`, "2")
	p.WaitTrue("the stage timeline", `document.querySelectorAll('[data-testid="stage-timeline"] [data-timeline-stage]').length > 0`)

	p.Click("#nav-dashboard")
	u.dashboard()
	p.WaitText(vmRow("webvm"), "webvm", "running")
}

// A create's stages show live while it runs: the fake agent does not
// answer health, so the create waits at that stage with the stages before
// it done; Cancel operation ends it, and the page says so.
func TestCreateStagesLive(t *testing.T) {
	u := start(t)
	u.d.Fake.HealthErr = errors.New("still booting (test)")
	u.login()
	p := u.p
	p.Navigate(u.origin + "/create")
	p.WaitVisible("#create-form")
	p.Type("name", "slowvm")
	p.Click("#create-submit")

	p.WaitTrue("agent health running", `document.querySelector('#op-stages li[data-stage="agent health"]')?.dataset.state === "running"`)
	var before []string
	p.Eval(`[...document.querySelectorAll("#op-stages li")].map(li => li.dataset.stage + "=" + li.dataset.state)`, &before)
	if len(before) < 2 || before[len(before)-1] != "agent health=running" {
		t.Errorf("stages while waiting: %q, want earlier stages done and agent health running last", before)
	}
	for _, s := range before[:len(before)-1] {
		if !strings.HasSuffix(s, "=done") {
			t.Errorf("stage %s before agent health, want done", s)
		}
	}
	p.WaitText("#op-state", "agent health")
	if st := p.Text("#op-state"); !strings.Contains(strings.ToLower(st), "running") {
		t.Errorf("#op-state = %q, want it running", st)
	}

	p.Click("#op-cancel")
	p.WaitTrue("the create to end", opState+` !== "running"`)
	var end string
	p.Eval(opState, &end)
	if end != "canceled" {
		t.Fatalf("a cancelled create ended %s, want canceled", end)
	}
	// The daemon finishes the stage it stopped at with the detail
	// "canceled": it must read as neither done nor failed.
	var health string
	p.Eval(`document.querySelector('#op-stages li[data-stage="agent health"]')?.dataset.state`, &health)
	if health != "canceled" {
		t.Errorf("agent health, where the cancelled create stopped, shows %q, want canceled (%q)", health, p.Text(`#op-stages li[data-stage="agent health"]`))
	}
	p.WaitVisible(`[data-error-for]:not([hidden])`)
	// Who canceled it: the web UI, as the daemon records a cancel from
	// its web listener whatever the page says.
	if msg, want := p.Text(`[data-error-for]:not([hidden])`), "vm create canceled by the web UI (uid"; !strings.Contains(msg, want) {
		t.Errorf("the page's error says %q, want it to contain %q", msg, want)
	}
	ops, err := u.d.Client.Operations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Kind == "vm.create" && op.Target == "slowvm" && op.State == api.OperationRunning {
			t.Errorf("operation %s still running after Cancel", op.ID)
		}
	}
}
