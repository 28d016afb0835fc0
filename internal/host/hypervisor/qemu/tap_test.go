package qemu

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guest/guestinit/boottest"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
)

// TestTAPPassed launches QEMU as the VM user with a NIC: the daemon
// attaches the pool's TAP (which belongs to nobody in particular) and QEMU
// gets the queue as a descriptor, so the TAP needs no owner for the VM
// user. It runs in a network namespace of its own.
func TestTAPPassed(t *testing.T) {
	u := requireVMUser(t)
	bin := boottest.RequireQEMU(t)
	guest := hvtest.LightGuest(t)
	ns := hvtest.NewNetns(t)
	hvtest.IP(t, "-n", ns, "tuntap", "add", "dev", "bgtap0", "mode", "tap")
	hvtest.IP(t, "-n", ns, "link", "set", "bgtap0", "up")
	if out := hvtest.IP(t, "-n", ns, "link", "show", "bgtap0"); !strings.Contains(out, "NO-CARRIER") {
		t.Fatalf("a TAP nobody attached has a carrier: %s", out)
	}

	dir, err := os.MkdirTemp("", "hvn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	spec := hypervisor.Spec{
		ID: "hvn-" + ns[len(ns)-8:], Dir: dir + "/run", VCPUs: 1, MemoryMiB: 256,
		Boot:  hypervisor.Boot{Vmlinuz: guest.Vmlinuz, Initrd: guest.Initrd, Cmdline: guest.Cmdline},
		Disks: []hypervisor.Disk{{ID: "root", Path: guest.Root, ReadOnly: true}},
		NIC:   &hypervisor.NIC{TAP: "bgtap0", MAC: "52:54:00:12:34:56"},
	}
	d := &Driver{Bin: bin, Accel: AccelTCG, Log: testLog(), User: &u}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var h hypervisor.Handle
	var launchErr, missingErr error
	hvtest.InNetns(t, ns, func() {
		h, launchErr = d.Launch(ctx, spec)
		_, missingErr = openTAP("bgtap-missing")
	})
	if launchErr != nil {
		t.Fatal(launchErr)
	}
	defer d.Kill(h)
	if st, err := d.Status(ctx, h); err != nil || st != hypervisor.Running {
		t.Fatalf("Status = %s, %v", st, err)
	}
	// QEMU, running as the VM user, holds the TAP's queue.
	if out := hvtest.IP(t, "-n", ns, "link", "show", "bgtap0"); strings.Contains(out, "NO-CARRIER") || !strings.Contains(out, "LOWER_UP") {
		t.Errorf("the TAP has no carrier with QEMU running: %s", out)
	}
	if missingErr == nil || !strings.Contains(missingErr.Error(), "take a TAP from the pool") {
		t.Errorf("openTAP of a missing TAP = %v, want it refused", missingErr)
	}
	if out := hvtest.IP(t, "-n", ns, "link", "show"); strings.Contains(out, "bgtap-missing") {
		t.Errorf("openTAP created the missing TAP: %s", out)
	}
	if err := d.Kill(h); err != nil {
		t.Fatal(err)
	}
	// The last of QEMU's threads closes the queue a moment after the
	// process leader is reaped.
	var out string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if out = hvtest.IP(t, "-n", ns, "link", "show", "bgtap0"); strings.Contains(out, "NO-CARRIER") {
			return
		}
	}
	t.Errorf("the TAP keeps a carrier after QEMU was killed: %s", out)
}
