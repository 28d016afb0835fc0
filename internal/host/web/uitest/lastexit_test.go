package uitest

import (
	"syscall"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// A VM whose hypervisor was killed shows, on its page, why it stopped and
// the end of its console, as inert text.
func TestVMPageLastExit(t *testing.T) {
	u := start(t)
	u.d.CreateVM(t, api.CreateVMRequest{Name: "crashy"})
	u.d.EndVM(t, "crashy", "[    5.0] out of memory?\x1b]0;pwned\x07\n", hypervisor.Exit{Code: -1, Signal: syscall.SIGKILL})

	u.login()
	p := u.p
	p.Click(vmRow("crashy") + " a")
	p.WaitText("#vm-header", "VM crashy")
	p.WaitText(`#vm-spec dd[data-key="last exit"]`, "killed by signal SIGKILL", "out of memory?")
	var title string
	p.Eval(`document.title`, &title)
	if title == "pwned" {
		t.Error("a console escape in the last exit retitled the page")
	}
}
