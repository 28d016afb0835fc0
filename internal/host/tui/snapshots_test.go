package tui

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// warmSizeOnScreen is the SIZE cell of the fake's warm snapshot row.
var warmSizeOnScreen = regexp.MustCompile(`(  fake +2 +1G +1\.0 GiB) +[0-9.]+ [KMG]?i?B`)

// vmState is a VM's state as the daemon has it.
func vmState(t *testing.T, d *daemontest.Daemon, name string) api.VM {
	t.Helper()
	v, err := d.Client.VM(context.Background(), name)
	if err != nil {
		t.Fatalf("vm %s: %v", name, err)
	}
	return v
}

// rowState is the state word of VM name's row in the VMs table.
func rowState(screen, name string) string {
	for _, l := range strings.Split(screen, "\n") {
		if f := strings.Fields(strings.TrimLeft(l, ">")); len(f) > 1 && f[0] == name && hasRow(screen, name) {
			return f[1]
		}
	}
	return ""
}

// TestPauseResumeFork: p pauses a running VM and resumes a paused one, s
// resumes it too; x on a paused VM asks first (its saved state would be
// discarded) and n keeps it paused; f asks the fork's name and forks.
func TestPauseResumeFork(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "src"})
	h := newHarness(t, fakeOptions(d))
	h.waitText(">src", "running")

	h.key("p")
	h.waitText("pause src: done")
	h.waitFor("src paused in the table", func(s string) bool { return rowState(s, "src") == api.VMPaused })
	h.settle()
	h.golden("vms-paused")
	if v := vmState(t, d, "src"); v.State != api.VMPaused || v.StateBytes == 0 {
		t.Fatalf("after p: %s with %d bytes of state, want paused with some", v.State, v.StateBytes)
	}

	h.key("enter")
	h.waitText("VM src", "saved state", "Last pause", "vm.pause succeeded")
	h.settle()
	h.golden("detail-paused")
	h.key("esc")
	h.waitText(">src")

	h.key("x")
	h.waitText("Stop paused VM src?", "y stop · n keep")
	h.golden("stop-paused-confirm")
	h.key("n")
	h.waitText("kept src paused")
	if v := vmState(t, d, "src"); v.State != api.VMPaused {
		t.Fatalf("n stopped the VM: it is %s", v.State)
	}

	h.key("s")
	h.waitText("resume src: done")
	h.waitFor("src running in the table", func(s string) bool { return rowState(s, "src") == api.VMRunning })

	h.key("f")
	h.waitText("Fork src:")
	h.typeText("twin")
	h.settle()
	h.golden("fork-name")
	h.key("enter")
	h.waitText("fork src → twin: done")
	h.waitFor("twin in the table", func(s string) bool { return hasRow(s, "twin") })
	if v := vmState(t, d, "twin"); v.ForkedFrom != "src" || v.State != api.VMRunning {
		t.Fatalf("the fork: %s, forked from %q; want running, forked from src", v.State, v.ForkedFrom)
	}

	// p on a running VM pauses it; x then y discards its state.
	h.key("p")
	h.waitText("pause src: done")
	h.key("x")
	h.waitText("Stop paused VM src?")
	h.key("y")
	h.waitText("stopped src")
	if v := vmState(t, d, "src"); v.State != api.VMStopped {
		t.Fatalf("after x y on a paused VM: %s, want stopped", v.State)
	}
}

// TestForkCancelled: esc leaves the fork's name unasked and forks
// nothing.
func TestForkCancelled(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "src"})
	h := newHarness(t, fakeOptions(d))
	h.waitText(">src", "running")
	h.key("f")
	h.waitText("Fork src:")
	h.typeText("x")
	h.key("esc")
	h.waitText("no fork of src")
	h.settle()
	vms, err := d.Client.VMs(context.Background())
	if err != nil || len(vms) != 1 {
		t.Fatalf("after esc the daemon has %d VMs (%v), want 1", len(vms), err)
	}
}

// TestImageWarmAndUnwarm: w warms the image (its operation followed on
// screen), the detail lists the snapshot, u asks and then removes it.
func TestImageWarmAndUnwarm(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "web", Image: daemontest.FakeImage})
	h := imagesTab(t, d)
	h.key("u")
	h.waitText("image base has no warm snapshot: w warms it")
	h.key("enter")
	h.waitText("Image base", "no warm snapshot: its VMs boot")
	h.key("w")
	h.waitText("Warming image base", "save state", "succeeded")
	h.key("esc")
	h.waitText("Image base", "WARM", "restores instead of booting")
	h.settle()
	// What the snapshot occupies depends on the filesystem.
	goldenText(t, "image-detail-warm", warmSizeOnScreen.ReplaceAllString(digestOnScreen.ReplaceAllString(h.screen(), "################…"), "$1    <USED>"))
	img, err := d.Client.Image(context.Background(), daemontest.FakeImage)
	if err != nil || len(img.Warm) != 1 {
		t.Fatalf("after w the image has %d warm snapshots (%v), want 1", len(img.Warm), err)
	}
	h.key("esc")
	h.waitText("base (warm)")

	h.key("u")
	h.waitText("Remove the warm snapshots of base?")
	h.key("n")
	h.waitText("kept the warm snapshots of base")
	h.key("u")
	h.key("y")
	h.waitText("image base is cold: its VMs boot")
	// The table's warm mark goes when the daemon announces the image's
	// change on the feed (DELETE /v1/images/{name}/warm does not yet).
	if img, err := d.Client.Image(context.Background(), daemontest.FakeImage); err != nil || len(img.Warm) != 0 {
		t.Fatalf("after u y the image has %d warm snapshots (%v), want none", len(img.Warm), err)
	}
}
