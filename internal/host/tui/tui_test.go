package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/hypervisor"
)

func TestVMListAfterCreates(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		d.CreateVM(t, api.CreateVMRequest{Name: name})
	}
	h := newHarness(t, fakeOptions(d))
	h.waitText("alpha", "bravo", "charlie")
	h.settle()
	h.golden("vms-list")
}

func TestVMFilter(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	for _, name := range []string{"web-1", "web-2", "db-1"} {
		d.CreateVM(t, api.CreateVMRequest{Name: name})
	}
	h := newHarness(t, fakeOptions(d))
	h.waitText("web-1", "web-2", "db-1")
	h.key("/")
	h.typeText("web")
	h.settle()
	h.golden("vms-filter-typing")
	h.key("enter")
	h.key("down")
	h.settle()
	h.golden("vms-filter-kept")
	h.key("/")
	h.key("esc")
	h.waitText("db-1")
}

func TestCreateFormFieldError(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	h := newHarness(t, fakeOptions(d))
	h.waitText("No VMs yet")
	h.key("c")
	h.waitText("Create a VM")
	h.settle()
	h.golden("create-form")
	h.key("down")
	h.key("down")
	h.typeText("99")
	h.key("enter")
	h.waitText("✗")
	h.settle()
	h.golden("create-field-error")
}

func TestCreateThroughTheForm(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	h := newHarness(t, fakeOptions(d))
	h.waitText("No VMs yet")
	h.key("c")
	h.waitText("Create a VM")
	h.key("enter")
	h.waitText("brisk-otter is running")
	h.settle()
	h.golden("create-stages")
	h.key("esc")
	h.waitText(">brisk-otter", "running")
	h.settle()
	h.golden("create-done-list")
}

func TestDeleteAsksFirst(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	for _, name := range []string{"keep", "doomed"} {
		d.CreateVM(t, api.CreateVMRequest{Name: name})
	}
	h := newHarness(t, fakeOptions(d))
	h.waitText(">doomed", "keep")
	h.key("d")
	h.settle()
	h.golden("delete-confirm")
	h.key("n")
	h.waitText("kept doomed")
	if _, err := d.Client.VM(context.Background(), "doomed"); err != nil {
		t.Fatalf("n deleted the VM: %v", err)
	}
	h.key("d")
	h.key("y")
	h.waitFor("doomed to leave the table", func(s string) bool { return !hasRow(s, "doomed") })
	h.waitText("deleted doomed")
	h.settle()
	h.golden("delete-done")
	if _, err := d.Client.VM(context.Background(), "doomed"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("after y the daemon still has the VM (err %v)", err)
	}
}

func TestDaemonRestartShowsNoticeAndReconnects(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "survivor"})
	h := newHarness(t, fakeOptions(d))
	h.waitText("survivor")
	h.settle()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	h.waitText(NoticeAway)
	h.golden("daemon-away")
	// Keys still work while the daemon is away: nothing freezes.
	h.key("enter")
	h.waitText("VM survivor")
	h.key("esc")
	d.Restart(t)
	h.waitText(StatusReconnected)
	// The feed is live again: a VM created now shows up.
	d.CreateVM(t, api.CreateVMRequest{Name: "newcomer"})
	h.waitText("newcomer", "survivor")
	h.settle()
	h.golden("daemon-back")
}

func TestVMDetail(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "inspect", VCPUs: 1, MemoryMiB: 512})
	h := newHarness(t, fakeOptions(d))
	h.waitText("inspect")
	h.key("enter")
	h.waitText("VM inspect", "Last create", "vm.create succeeded")
	h.settle()
	h.golden("detail-overview")
	h.key("right")
	h.waitText("[Console]")
	h.settle()
	h.golden("detail-console")
	h.key("right")
	h.waitText("No sessions. Press n to start one.")
	h.settle()
	h.golden("detail-sessions")
	h.key("n")
	h.waitText("Start a session in inspect")
	h.typeText("bash -l")
	h.key("enter")
	// The fake guest runs nothing: the daemon's refusal shows in the form.
	h.waitText("✗")
	h.settle()
	h.golden("session-start-refused")
	h.key("esc")
	h.key("esc")
	h.waitText("NAME", ">inspect")
}

func TestResizeAndNoColor(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	for _, name := range []string{"a-rather-long-vm-name-for-the-table", "short"} {
		d.CreateVM(t, api.CreateVMRequest{Name: name})
	}
	opts := fakeOptions(d)
	h := newHarness(t, opts)
	h.waitText("short")
	h.settle()
	if raw := h.app.Screen(); strings.Contains(raw, "\x1b[38") || strings.Contains(raw, "\x1b[48") {
		t.Errorf("NO_COLOR screen has colour sequences: %q", raw)
	}
	// The forms' text inputs too (bubbles colours placeholders by
	// default): the create form, and a VM's session form.
	h.key("c")
	h.waitText("Create a VM")
	noColour := func(what string) {
		t.Helper()
		if raw := h.app.Screen(); strings.Contains(raw, "\x1b[38") || strings.Contains(raw, "\x1b[48") {
			t.Errorf("NO_COLOR %s has colour sequences: %q", what, raw)
		}
	}
	noColour("create form")
	h.key("esc")
	h.waitText("short")
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
		h.golden(fmt.Sprintf("vms-%dx%d", size.w, size.h))
	}

	opts.NoColor = false
	colour := newHarness(t, opts)
	colour.waitText("short")
	if raw := colour.app.Screen(); !strings.Contains(raw, "\x1b[38") {
		t.Errorf("the colour screen has no colour: %q", raw)
	}
}

// hasRow reports whether the screen has a table row for name (selected or
// not).
func hasRow(screen, name string) bool {
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, " "+name+" ") || strings.HasPrefix(l, ">"+name+" ") {
			return true
		}
	}
	return false
}

func TestPowerKeys(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "toggle"})
	h := newHarness(t, fakeOptions(d))
	h.waitText(">toggle", "running")
	h.key("x")
	h.waitText("stopped toggle")
	h.waitFor("toggle stopped in the table", func(s string) bool { return strings.Contains(s, ">toggle     stopped") })
	h.key("s")
	h.waitText("start toggle: done")
	h.waitFor("toggle running in the table", func(s string) bool { return strings.Contains(s, ">toggle     running") })
	h.key("r")
	h.waitText("restart toggle: done")
	h.key("enter")
	h.waitText("Last restart", "vm.restart succeeded")
	h.settle()
	h.golden("detail-after-restart")
}

// A field error met inside the create operation (a disk the filesystem
// cannot back) brings the form back with the error under that field.
func TestCreateOperationFieldError(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.Root, &st); err != nil {
		t.Fatal(err)
	}
	if free := st.Bavail * uint64(st.Bsize); free >= 4<<40 {
		t.Skipf("%s has %d bytes free: a 4TiB disk would fit, so no create fails on it here", d.Root, free)
	}
	h := newHarness(t, fakeOptions(d))
	h.waitText("No VMs yet")
	h.key("c")
	h.waitText("Create a VM")
	for range 4 {
		h.key("down")
	}
	h.typeText("4T")
	h.key("enter")
	h.waitFor("the disk error under Disk", func(s string) bool {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "> Disk") && i+1 < len(lines) && strings.Contains(lines[i+1], "✗") {
				return true
			}
		}
		return false
	})
	t.Logf("the form:\n%s", h.screen())
}

// A create whose guest never answers stays on its running stage; ctrl+x
// cancels it through the daemon, the form says who canceled it at which
// stage, and the half-made VM is gone.
func TestCreateCancel(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.Fake.HealthErr = errors.New("still booting (test)")
	h := newHarness(t, fakeOptions(d))
	h.waitText("No VMs yet")
	h.key("c")
	h.waitText("Create a VM")
	h.key("enter")
	h.waitText("Creating VM brisk-otter", "… agent health", "ctrl+x cancels the create")
	h.settle()
	h.golden("create-running")
	h.key("ctrl+x")
	h.waitText("vm create canceled by banger tui (uid", "at stage agent health")
	h.settle()
	op, ok := h.app.Store().LastOperation("brisk-otter", "vm.create")
	if !ok || op.State != api.OperationCanceled {
		t.Fatalf("after ctrl+x the store has %+v, want the create canceled", op)
	}
	h.key("esc")
	h.waitText("No VMs yet")
}

// TestVMDetailLastExit: a VM whose hypervisor was killed shows why it
// stopped and the end of its console, escaped.
func TestVMDetailLastExit(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "crashy"})
	d.EndVM(t, "crashy", "[    5.0] out of memory?\x1b]0;pwned\x07\n", hypervisor.Exit{Code: -1, Signal: syscall.SIGKILL})
	h := newHarness(t, fakeOptions(d))
	h.waitFor("crashy stopped in the table", func(s string) bool { return strings.Contains(s, "crashy     stopped") })
	h.key("enter")
	h.waitText("last exit: the hypervisor", "out of memory?")
	h.settle()
	h.golden("detail-last-exit")
}
