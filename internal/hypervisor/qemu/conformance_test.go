package qemu

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guestinit/boottest"
	"github.com/bangerdev/banger/internal/hypervisor"
	"github.com/bangerdev/banger/internal/hypervisor/hvtest"
)

// testLog logs to stderr with -v, else nowhere. (Not t.Log: the console
// keepers may outlive a test.)
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// TestConformance runs the hypervisor conformance suite against QEMU with
// software emulation (this host's KVM cannot boot a guest) on both
// machines: q35, the TCG default, and microvm, the KVM default, so the
// microvm command line (virtio-mmio devices, ELF kernel, ACPI power
// button) is proven by a real boot; only accel=kvm and -cpu host differ.
func TestConformance(t *testing.T) {
	bin := boottest.RequireQEMU(t)
	guest := hvtest.LightGuest(t)
	for _, m := range []Machine{Q35, Microvm} {
		t.Run(string(m), func(t *testing.T) {
			hvtest.Run(t, func(t *testing.T) hypervisor.Hypervisor {
				d, err := New(bin, AccelTCG, testLog())
				if err != nil {
					t.Fatal(err)
				}
				d.Machine = m
				d.ConsoleTrimInterval = 100 * time.Millisecond
				return d
			}, guest)
		})
	}
}
