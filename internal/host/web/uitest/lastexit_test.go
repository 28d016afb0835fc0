package uitest

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/poll"
)

// A VM whose hypervisor was killed shows, on its page, why it stopped and
// the end of its console, as inert text.
func TestVMPageLastExit(t *testing.T) {
	u := start(t)
	v := u.d.CreateVM(t, api.CreateVMRequest{Name: "crashy"})
	var handle *hypervisor.Handle
	for _, r := range u.d.Fake.Running() {
		if r.PID == v.PID {
			handle = &r
		}
	}
	if handle == nil {
		t.Fatalf("the fake runs no VM with pid %d", v.PID)
	}
	f, err := os.OpenFile(handle.ConsoleLog, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("[    5.0] out of memory?\x1b]0;pwned\x07\n")
	f.Close()
	u.d.Fake.End(*handle, hypervisor.Exit{Code: -1, Signal: syscall.SIGKILL})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := poll.Until(ctx, 100*time.Millisecond, func() (bool, error) {
		got, err := u.d.Client.VM(ctx, "crashy")
		return err == nil && got.LastExit != nil, nil
	}); err != nil {
		t.Fatalf("the killed VM has no last exit: %v", err)
	}

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
