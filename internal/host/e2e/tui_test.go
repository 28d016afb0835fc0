package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bangerdev/banger/api"
)

// TestTUI drives `banger tui` in a real terminal (tmux, 80×24) against a
// real QEMU VM in a test namespace, as a user would: create a VM through
// the form and watch its stages, see it running, ssh in and come back,
// survive a SIGKILL of bangerd, start a session, attach, type a line and
// see the session's answer, detach back to the TUI, delete the VM, quit;
// then `banger verify` finds nothing leaked.
func TestTUI(t *testing.T) {
	e := vmEnv(t)
	envv := []string{
		"BANGER_HOME=" + e.home,
		"HOME=" + filepath.Join(e.home, "home"),
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"TERM=tmux-256color",
		"NO_COLOR=1",
	}
	envv = append(envv, e.extra...)
	s := newScreen(t, 80, 24, envv, "ip", "netns", "exec", e.netns, filepath.Join(e.bin, "banger"), "tui")
	s.waitFor("1 VMs", "No VMs yet. Press c to create one.")

	// Create through the form: the name field holds a suggestion; replace
	// it, keep the defaults, submit, and watch the stages.
	s.keys("c")
	s.waitFor("Create a VM")
	s.keys("C-u")
	s.typeText("tui1")
	s.keys("Enter")
	s.waitFor("Creating VM tui1", "launch")
	s.waitFor("tui1 is running")
	// After Escape, wait for the next screen before another key: a key
	// right behind an Escape reads as alt+key.
	s.keys("Escape")
	s.waitGone("Creating VM")
	scr := s.waitFor("STATE", "tui1", "running")
	if !strings.Contains(scr, "172.30.0.") {
		t.Errorf("the VMs table shows no address for tui1:\n%s", scr)
	}

	// ssh: the terminal goes to ssh and comes back.
	s.keys("e")
	s.waitFor("root@tui1")
	s.typeText("echo via-ssh-$((40+2))")
	s.keys("Enter")
	s.waitFor("via-ssh-42")
	s.typeText("exit")
	s.keys("Enter")
	s.waitFor("back from ssh into tui1")

	// bangerd dies (SIGKILL) under the open TUI: a notice, then a new
	// daemon that re-adopts the VM.
	pid := daemonPID(t, e)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitFor("reconnected to bangerd")
	if np := daemonPID(t, e); np == pid {
		t.Fatalf("bangerd pid %d still recorded after SIGKILL", pid)
	}
	s.waitFor("tui1", "running")

	// A session: the detail's Sessions pane, the start form, attach.
	s.keys("Enter")
	s.waitFor("VM tui1 · running")
	s.keys("Right", "Right")
	s.waitFor("No sessions. Press n to start one.")
	s.keys("n")
	s.waitFor("Command")
	s.typeText(`sh -c 'while read l; do echo "got:$l"; done'`)
	s.keys("Tab")
	s.typeText("echo")
	s.keys("Enter")
	s.waitFor("started session")
	s.keys("a")
	s.waitFor("attached to session")
	s.typeText("hello-from-tui")
	s.keys("Enter")
	s.waitFor("got:hello-from-tui")
	s.keys("C-]")
	s.waitFor("detached from")
	var ses api.Session
	if err := json.Unmarshal([]byte(e.must("vm", "session", "show", "tui1", "echo", "--json").stdout), &ses); err != nil {
		t.Fatal(err)
	}
	if ses.State != api.SessionRunning {
		t.Errorf("after detaching, the session is %s, want running", ses.State)
	}

	// Delete from the table, with its confirmation; then quit.
	s.keys("Escape")
	s.waitGone("VM tui1 ·")
	s.waitFor("STATE", "tui1")
	s.keys("d")
	s.waitFor("Delete VM tui1?")
	s.keys("y")
	s.waitFor("No VMs yet")
	s.keys("q")
	s.waitExit()

	r := e.must("verify")
	if !strings.Contains(r.stdout, "nothing leaked") {
		t.Errorf("verify: %s", r.stdout)
	}
}

// daemonPID reads the running bangerd's pid from its pid file.
func daemonPID(t *testing.T, e *env) int {
	t.Helper()
	b, err := os.ReadFile(e.pidFile())
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	return pid
}
