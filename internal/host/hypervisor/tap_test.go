package hypervisor

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// GiveTAP hands an existing pool TAP to an unprivileged user, which may
// then attach it by name (as a jailed Firecracker does), and never
// creates a TAP. It runs in a network namespace of its own.
func TestGiveTAP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, TUNSETOWNER)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
	b := make([]byte, 4)
	rand.Read(b)
	ns := "banger-test-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "tuntap", "add", "dev", "bgtap0", "mode", "tap").CombinedOutput(); err != nil {
		t.Fatalf("ip tuntap add: %v: %s", err, out)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		if details(t, ns, "bgtap0") != "" {
			t.Errorf("a fresh TAP has an owner")
		}
		if err := GiveTAP("bgtap0", 65534, 65534); err != nil {
			t.Errorf("GiveTAP: %v", err)
			return
		}
		if err := GiveTAP("bgtap9", 65534, 65534); err == nil || !strings.Contains(err.Error(), "take a TAP from the pool") {
			t.Errorf("a missing TAP: %v", err)
		}
	}()
	<-done
	if got := details(t, ns, "bgtap0"); got != "user 65534 group 65534" && got != "user nobody group nogroup" {
		t.Errorf("after GiveTAP: %q, want user 65534 (nobody) group 65534 (nogroup)", got)
	}
	if out, _ := exec.Command("ip", "-n", ns, "link", "show", "bgtap9").CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("GiveTAP created a TAP: %s", out)
	}
}

// details returns the owner part of `ip -d link show tap` ("user U group
// G", names where the host has them), "" for a TAP without an owner.
func details(t *testing.T, ns, tap string) string {
	out, err := exec.Command("ip", "-d", "-n", ns, "link", "show", tap).CombinedOutput()
	if err != nil {
		t.Errorf("ip -d link show %s: %v: %s", tap, err, out)
		return ""
	}
	_, tun, ok := strings.Cut(string(out), "tun type tap")
	if !ok {
		t.Errorf("%s is not a TAP: %s", tap, out)
		return ""
	}
	f := strings.Fields(tun)
	var parts []string
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "user" || f[i] == "group" {
			parts = append(parts, f[i], f[i+1])
			i++
		}
	}
	return strings.Join(parts, " ")
}
