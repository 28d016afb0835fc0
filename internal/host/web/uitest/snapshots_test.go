package uitest

import (
	"context"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// The dashboard's Pause, Resume and Fork buttons: a paused VM reads as
// paused, with its saved state on its page; Stop of a paused VM says its
// state is lost and Cancel keeps it; Fork asks the new VM's name; the
// image page warms the image and lists the snapshot, and Unwarm asks
// first.
func TestPauseResumeForkWarm(t *testing.T) {
	u := start(t)
	u.createVMs(api.CreateVMRequest{Name: "src"})
	u.login()
	p := u.p
	ctx := context.Background()
	p.WaitText(vmRow("src"), "running")

	p.Click("#vm-src-pause")
	p.WaitTrue("src paused", `document.querySelector('`+vmRow("src")+`')?.dataset.state === "paused"`)
	p.WaitText(vmRow("src"), "paused")

	p.Click("#vm-src-stop")
	p.WaitText("#confirm-dialog", "Stop paused VM src?", "saved state is discarded")
	p.Click("#confirm-cancel")
	p.WaitGone("#confirm-dialog", "")
	if v, err := u.d.Client.VM(ctx, "src"); err != nil || v.State != api.VMPaused {
		t.Fatalf("after Cancel: %+v, %v; want src paused", v.State, err)
	}

	p.Click(vmRow("src") + " a")
	p.WaitText("#vm-header", "VM src", "paused")
	p.WaitText(`#vm-spec dd[data-key="saved state"]`, "on disk")
	p.Click("#vm-src-resume")
	p.WaitTrue("src running", `document.querySelector('#vm-header')?.dataset.state === "running"`)

	p.Click("#vm-src-fork")
	p.WaitText("#prompt-dialog", "Fork VM src")
	p.Type("prompt", "twin")
	p.Click("#prompt-ok")
	p.WaitGone("#prompt-dialog", "")
	p.WaitText("#flash", "forking src into twin")
	p.Navigate(u.origin + "/vm/twin")
	p.WaitText(`#vm-spec dd[data-key="forked from"]`, "src")

	p.Navigate(u.origin + "/images/" + daemontest.FakeImage)
	p.WaitText("#image-detail", "Warm snapshots", "None")
	p.Click("#image-warm")
	p.WaitText("#image-op", "save state")
	p.WaitText("#image-warm-table", "fake")
	p.Click("#image-unwarm")
	p.WaitText("#confirm-dialog", "Remove the warm snapshots of base?")
	p.Click("#confirm-ok")
	p.WaitText("#flash", "no warm snapshot")
	if img, err := u.d.Client.Image(ctx, daemontest.FakeImage); err != nil || len(img.Warm) != 0 {
		t.Fatalf("after Unwarm the image has %d warm snapshots (%v), want none", len(img.Warm), err)
	}
}
