package tui

import (
	"context"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/charmbracelet/x/ansi"
)

// imagesTab opens the Images tab of a TUI on d and waits for its table.
func imagesTab(t *testing.T, d *daemontest.Daemon) *harness {
	t.Helper()
	h := newHarness(t, fakeOptions(d))
	h.waitText("1 VMs")
	h.key("2")
	h.waitText("NAME", daemontest.FakeImage)
	return h
}

func TestImagesListAndDetail(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.SeedImage(t, "tools")
	d.CreateVM(t, api.CreateVMRequest{Name: "web", Image: daemontest.FakeImage})
	h := imagesTab(t, d)
	h.waitText("tools")
	h.settle()
	viewGolden(h, "images-list")

	h.key("enter")
	h.waitText("Image base", "ARTIFACT", "rootfs")
	h.settle()
	viewGolden(h, "image-detail")
	screen := h.screen()
	for _, want := range []string{"6.1.0-fake", "used by     web", "qemu        ✓ yes", "firecracker ✓ yes", "32.0 MiB"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the detail lacks %q:\n%s", want, screen)
		}
	}
	h.key("esc")
	h.waitText("tools")
}

func TestImageRemoveRefusedWhileInUse(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "web"})
	h := imagesTab(t, d)
	h.key("d")
	h.waitText("Remove image base?")
	h.key("y")
	h.waitText("was not removed", "used by [web]")
	h.settle()
	viewGolden(h, "image-remove-refused")
	ctx := context.Background()
	if im, err := d.Client.Image(ctx, daemontest.FakeImage); err != nil || im.State != api.ImageReady {
		t.Fatalf("after the refusal the image is %+v (%v), want it ready", im, err)
	}
	h.key("f")
	h.waitText("removed image base (forced)")
	h.waitText("removed")
	h.settle()
	viewGolden(h, "image-removed-forced")
	im, err := d.Client.Image(ctx, daemontest.FakeImage)
	if err != nil || im.State != "removed" {
		t.Fatalf("after force the image is %+v (%v), want its removed record (web still uses it)", im, err)
	}
}

func TestImageRemoveUnused(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.SeedImage(t, "tools")
	h := imagesTab(t, d)
	h.waitText("tools")
	h.key("down")
	h.key("d")
	h.waitText("Remove image tools?")
	h.key("n")
	h.waitText("kept image tools")
	h.key("d")
	h.key("y")
	h.waitText("removed image tools")
	h.waitFor("tools to leave the table", func(s string) bool { return !strings.Contains(s, "tools      ready") })
	if _, err := d.Client.Image(context.Background(), "tools"); err == nil {
		t.Fatal("the daemon still has tools")
	}
}

func TestBuildFormFieldErrors(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	h := imagesTab(t, d)
	h.key("n")
	h.waitText("Build an image")
	h.settle()
	viewGolden(h, "build-form")
	h.key("down")
	h.typeText("dev")
	h.key("down")
	h.typeText("gui")
	h.key("enter")
	h.waitText(`✗ presets: "gui" is unknown: use agents`)
	h.settle()
	viewGolden(h, "build-field-error")

	// A script the TUI cannot read is refused before anything is sent.
	h.key("backspace")
	h.key("backspace")
	h.key("backspace")
	h.typeText("agents")
	h.key("down")
	h.key("down")
	h.typeText("/nonexistent/setup.sh")
	h.key("enter")
	h.waitText("✗ cannot read the script")
	ops, err := d.Client.Operations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Kind != "vm.create" {
			t.Errorf("a refused form started operation %s %s", op.Kind, op.Target)
		}
	}
	h.key("esc")
	h.waitText("NAME", "base")
}

func TestBootstrapFormFieldError(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	h := imagesTab(t, d)
	h.key("b")
	h.waitText("Bootstrap a base image")
	h.key("down")
	h.key("down")
	h.typeText("Base Image")
	h.key("enter")
	h.waitText(`✗ invalid name "Base Image"`)
	h.settle()
	viewGolden(h, "bootstrap-field-error")
	h.key("down")
	h.key("down")
	h.key("down")
	h.typeText("x")
	if !strings.Contains(h.screen(), `invalid name "Base Image"`) {
		t.Error("typing in another field cleared the name's error")
	}
}

func TestPromoteFollowsTheOperation(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	h := imagesTab(t, d)
	h.key("p")
	h.waitText("Promoting image base", "succeeded")
	h.settle()
	viewGolden(h, "image-promote")
	h.key("esc")
	h.waitText("NAME", "base")
}

// TestImagesAndOperationsFollowTheFeed: an image registered and an
// operation begun while the TUI is open reach their tables by the event
// feed: the images and operations are listed once, at the start.
func TestImagesAndOperationsFollowTheFeed(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	p := startCountingProxy(t, d.Config.Paths.Socket())
	h := newHarness(t, proxiedOptions(d, p))
	h.waitText("1 VMs")
	h.key("2")
	h.waitText("NAME", daemontest.FakeImage)
	h.settle()
	d.SeedImage(t, "later")
	h.waitFor("the new image's row", func(s string) bool { return strings.Contains(s, " later      ready") })
	h.key("3")
	d.CreateVM(t, api.CreateVMRequest{Name: "fresh"})
	h.waitFor("the create's row", func(s string) bool { return strings.Contains(s, "fresh") && strings.Contains(s, "succeeded") })
	h.settle()
	counts := p.Counts()
	for _, once := range []string{"GET /v1/images", "GET /v1/operations"} {
		if counts[once] != 1 {
			t.Errorf("%s: %d requests, want 1 (the feed brings the changes)", once, counts[once])
		}
	}
	for k := range counts {
		if strings.Contains(k, "{name}") || strings.Contains(k, "{id}") || strings.HasPrefix(k, "GET /v1/images/") {
			t.Errorf("a request per image or operation: %s", k)
		}
	}
}

// TestImageDetailSaysWhyNot renders the detail of a derived, linked image
// whose kernel Firecracker cannot boot: the parent, the reason, the
// probes, services and provisioning, the VMs and images using it — and a
// guest-chosen probe name with an escape sequence drawn inert.
func TestImageDetailSaysWhyNot(t *testing.T) {
	env := &Env{Store: NewStore(), Theme: NewTheme(true), Format: testFormat, Width: 80, Height: 21}
	env.Store.SetImages([]api.Image{{
		Name: "dev", State: api.ImageUnmanaged, Distro: "debian", Suite: "bookworm", Libc: "glibc",
		AgentVersion: "0.9.0", Parent: "base", Source: "build",
		Kernel: api.KernelInfo{Release: "6.1.0-28-amd64", Compression: "zstd", QEMU: true,
			Firecracker: false, FirecrackerReason: "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is not set"},
		Probes:       []api.Probe{{Name: "sshd\x1b[2J", Kind: "tcp", Port: 22}},
		Services:     []api.Service{{Name: "agents", Port: 8080}, {Name: "cron"}},
		Provisioning: []string{"preset agents", "packages git"},
		UsedBy:       []string{"web-1", "image tools"},
		Artifacts: []api.Artifact{
			{Kind: "vmlinuz", Path: "/home/u/k/vmlinuz", SHA256: strings.Repeat("ab", 32), Size: 8 << 20},
			{Kind: "rootfs", Path: "/home/u/k/rootfs.ext4", SHA256: strings.Repeat("cd", 32), Size: 2 << 30},
		},
	}})
	d := newImageDetail("dev")
	raw := d.Render(env, env.Height)
	if c, at := controlChar(ansi.Strip(raw)); at >= 0 {
		t.Errorf("the detail has control character %q at %d", c, at)
	}
	goldenText(t, "image-detail-why-not", ansi.Strip(raw))
}

// TestBuildFormBackToTheFieldTheOperationRefused: a build the daemon
// accepted but whose operation then failed on a field (a package the
// suite does not have) goes back to the form with the error under that
// field, the other fields as they were typed.
func TestBuildFormBackToTheFieldTheOperationRefused(t *testing.T) {
	env := &Env{Store: NewStore(), Theme: NewTheme(true), Format: testFormat, Width: 80, Height: 21}
	env.Store.SetImages([]api.Image{{Name: "base", State: api.ImageReady}})
	c := newBuildForm(env, "base")
	c.form.field("name").input.SetValue("dev")
	c.form.field("packages").input.SetValue("git nosuchpkg")
	running := api.Operation{ID: "op-1", Kind: "image.build", Target: "dev", State: api.OperationRunning}
	c.name = "dev"
	c.follow = &opFollow{id: running.ID, last: running, log: newTextLog(), streamID: nextStreamID(), sawRunning: true}
	failed := running
	failed.State = api.OperationFailed
	failed.Error = &api.Error{Code: api.CodeInvalidArgument, Field: "packages", Allowed: "packages of the base image's suite",
		Message: `packages: "nosuchpkg" is not in bookworm`}
	c.Update(env, opEndMsg{stream: c.follow.streamID, op: failed, err: failed.Error})
	if c.follow != nil {
		t.Fatal("the form stayed on the progress screen")
	}
	screen := ansi.Strip(c.Render(env))
	want := `✗ packages: "nosuchpkg" is not in bookworm (allowed: packages of`
	if !strings.Contains(screen, want) {
		t.Errorf("the error is not under its field; want %q in:\n%s", want, screen)
	}
	if got := c.form.field("packages").value(); got != "git nosuchpkg" {
		t.Errorf("packages field holds %q, want what was typed", got)
	}
	if f := c.form.fields[c.form.focus]; f.api != "packages" {
		t.Errorf("focus on %q, want packages", f.api)
	}
	goldenText(t, "build-operation-field-error", screen)
}
