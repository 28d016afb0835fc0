package uitest

import (
	"context"
	"errors"
	"testing"

	"github.com/bangerdev/banger/api"
)

// The dashboard lists the daemon's VMs and follows the event stream: a VM
// created, stopped or deleted through the API (as the CLI would) shows on
// the open page without a reload.
func TestDashboardLive(t *testing.T) {
	u := start(t)
	u.createVMs(api.CreateVMRequest{Name: "alpha"}, api.CreateVMRequest{Name: "bravo", VCPUs: 2}, api.CreateVMRequest{Name: "charlie"})
	u.login()
	p := u.p
	p.WaitText("#vm-count", "(3)")
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		p.WaitText(vmRow(name), name, "running", "base")
	}
	if got := p.Text(vmRow("bravo") + " td.num"); got != "2" {
		t.Errorf("bravo's vCPUs cell = %q, want 2", got)
	}
	p.WaitText("#image-table", "base")
	// A mark on the page: a reload would drop it. And a watch on the
	// feed's state (html[data-live]): it must not drop meanwhile.
	p.Eval(`window.notReloaded = true;
		window.feedWentDown = false;
		new MutationObserver(() => { if (document.documentElement.dataset.live === "down") window.feedWentDown = true })
			.observe(document.documentElement, {attributes: true, attributeFilter: ["data-live"]})`, nil)

	u.createVMs(api.CreateVMRequest{Name: "delta"})
	p.WaitText(vmRow("delta"), "delta", "running")
	p.WaitText("#vm-count", "(4)")

	ctx := context.Background()
	if _, err := u.d.Client.StopVM(ctx, "bravo"); err != nil {
		t.Fatal(err)
	}
	p.WaitTrue("bravo stopped", `document.querySelector('`+vmRow("bravo")+`')?.dataset.state === "stopped"`)

	if err := u.d.Client.DeleteVM(ctx, "charlie"); err != nil {
		t.Fatal(err)
	}
	p.WaitGone(vmRow("charlie"), "")
	p.WaitText("#vm-count", "(3)")

	var kept, down bool
	p.Eval(`window.notReloaded === true`, &kept)
	if !kept {
		t.Error("the page reloaded: the updates must come live")
	}
	p.Eval(`window.feedWentDown || document.documentElement.dataset.live !== "up"`, &down)
	if down {
		t.Errorf("the event feed went down during the test: %q", p.Text("#conn-status"))
	}
}

// Delete asks first: Cancel keeps the VM, Delete removes it (and the row
// goes); the other VMs stay.
func TestDelete(t *testing.T) {
	u := start(t)
	u.createVMs(api.CreateVMRequest{Name: "doomed"}, api.CreateVMRequest{Name: "kept"})
	u.login()
	p := u.p
	p.WaitText(vmRow("doomed"), "running")

	p.Click("#vm-doomed-delete")
	p.WaitText("#confirm-dialog", "Delete VM doomed?")
	p.Click("#confirm-cancel")
	p.WaitGone("#confirm-dialog", "")
	ctx := context.Background()
	if _, err := u.d.Client.VM(ctx, "doomed"); err != nil {
		t.Fatalf("after Cancel: %v, want the VM kept", err)
	}
	p.WaitText(vmRow("doomed"), "doomed")

	p.Click("#vm-doomed-delete")
	p.WaitText("#confirm-dialog", "Delete VM doomed?")
	p.Click("#confirm-ok")
	p.WaitGone(vmRow("doomed"), "")
	p.WaitText("#flash", "deleted doomed")
	if _, err := u.d.Client.VM(ctx, "doomed"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("after Delete, the daemon has doomed: %v", err)
	}
	p.WaitText(vmRow("kept"), "running")
	p.WaitText("#vm-count", "(1)")
}
