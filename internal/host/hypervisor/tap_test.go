package hypervisor_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
)

// GiveTAP hands an existing pool TAP to an unprivileged user, which may
// then attach it by name (as a jailed Firecracker does), and never
// creates a TAP. It runs in a network namespace of its own.
func TestGiveTAP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, TUNSETOWNER)")
	}
	ns := hvtest.NewNetns(t)
	hvtest.IP(t, "-n", ns, "tuntap", "add", "dev", "bgtap0", "mode", "tap")
	hvtest.InNetns(t, ns, func() {
		if details(t, ns, "bgtap0") != "" {
			t.Errorf("a fresh TAP has an owner")
		}
		if err := hypervisor.GiveTAP("bgtap0", 65534, 65534); err != nil {
			t.Errorf("GiveTAP: %v", err)
			return
		}
		if err := hypervisor.GiveTAP("bgtap9", 65534, 65534); err == nil || !strings.Contains(err.Error(), "take a TAP from the pool") {
			t.Errorf("a missing TAP: %v", err)
		}
	})
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
