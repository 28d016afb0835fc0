package uitest

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/web/browsertest"
)

// EnvScreenshots names the directory TestScreenshots writes to; `make
// screenshots` sets it to docs/screenshots.
const EnvScreenshots = "BANGER_SCREENSHOTS"

// TestScreenshots draws the README's pictures of the web UI at 1280×800
// from a fake-hypervisor daemon with a few VMs: dashboard.png, vm.png (a
// VM's page) and create.png (the create form showing a field error). It
// runs only when BANGER_SCREENSHOTS names the directory, and then fails,
// rather than skips, without chromium.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv(EnvScreenshots)
	if dir == "" {
		t.Skip("set " + EnvScreenshots + "=DIR to draw the web UI's screenshots (make screenshots)")
	}
	if _, err := browsertest.Chromium(); err != nil {
		t.Fatal(err)
	}
	u := start(t)
	u.createVMs(
		api.CreateVMRequest{Name: "agent-claude", VCPUs: 2, MemoryMiB: 2048},
		api.CreateVMRequest{Name: "agent-codex", VCPUs: 4, MemoryMiB: 4096},
		api.CreateVMRequest{Name: "review-bot", VCPUs: 1, MemoryMiB: 1024},
		api.CreateVMRequest{Name: "scratch", VCPUs: 2, MemoryMiB: 1024},
	)
	if _, err := u.d.Client.StopVM(context.Background(), "scratch"); err != nil {
		t.Fatal(err)
	}
	u.login()
	p := u.p
	shots := []struct {
		file string
		draw func()
	}{
		{"dashboard.png", func() {
			p.WaitText("#vm-count", "(4)")
			p.WaitTrue("the doctor summary", `!/reading/.test(document.querySelector("#doctor-summary")?.innerText ?? "reading")`)
			p.WaitText("#image-table", "base")
		}},
		{"vm.png", func() {
			p.Click(`#vm-table tr[data-vm="agent-claude"] th a`)
			p.WaitText("#vm-header", "VM agent-claude")
			p.WaitTrue("the stage timeline", `document.querySelectorAll('[data-testid="stage-timeline"] [data-timeline-stage]').length > 0`)
			p.WaitText("#stats-status", "sampled every")
			p.WaitTrue("the stats graphs", `document.querySelector("#stat-rss svg")`)
		}},
		{"create.png", func() {
			p.Click("#nav-create")
			p.WaitVisible("#create-form")
			p.Type("name", "agent-gemini")
			p.Type("vcpus", "999")
			p.Type("memory_mib", "4GiB")
			p.Click("#create-submit")
			p.WaitText(`[data-error-for="vcpus"]`, "999")
			p.Eval(`document.activeElement.blur(); window.scrollTo(0, 0)`, nil)
		}},
	}
	for _, s := range shots {
		s.draw()
		path := filepath.Join(dir, s.file)
		p.Screenshot(path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil || cfg.Width != 1280 || cfg.Height != 800 {
			t.Errorf("%s: %dx%d (%v), want a 1280x800 PNG", path, cfg.Width, cfg.Height, err)
		}
		t.Logf("wrote %s (%d KiB)", path, len(b)>>10)
	}
}
