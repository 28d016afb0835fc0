package qemu

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guest/guestinit/boottest"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
)

// testLog logs to stderr with -v, else nowhere. (Not t.Log: the console
// keepers may outlive a test.)
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// microvmEnv opts in to the conformance suite on microvm under TCG.
const microvmEnv = "BANGER_TEST_MICROVM_TCG"

// TestConformance runs the hypervisor conformance suite against QEMU with
// software emulation (this host's KVM cannot boot a guest) on q35, the
// TCG default. microvm, the KVM default, differs only in accel=kvm and
// -cpu host from what runs here: QEMU must accept its command line and
// answer QMP (always checked), and with BANGER_TEST_MICROVM_TCG=1 the
// whole suite boots the guest on it too.
func TestConformance(t *testing.T) {
	bin := boottest.RequireQEMU(t)
	guest := hvtest.LightGuest(t)
	newDriver := func(m Machine) func(t *testing.T) hypervisor.Hypervisor {
		return func(t *testing.T) hypervisor.Hypervisor {
			d, err := New(bin, AccelTCG, testLog())
			if err != nil {
				t.Fatal(err)
			}
			d.Machine = m
			d.ConsoleTrimInterval = 100 * time.Millisecond
			return d
		}
	}
	t.Run("q35", func(t *testing.T) { hvtest.Run(t, newDriver(Q35), guest) })
	// As a daemon running as root runs it: QEMU as the VM user, every
	// file passed as a descriptor.
	t.Run("q35-vmuser", func(t *testing.T) {
		u := requireVMUser(t)
		hvtest.Run(t, func(t *testing.T) hypervisor.Hypervisor {
			d := newDriver(Q35)(t).(*Driver)
			d.User = &u
			return d
		}, guest)
	})
	t.Run("microvm-starts", func(t *testing.T) {
		d := newDriver(Microvm)(t)
		dir := t.TempDir()
		spec := hypervisor.Spec{
			ID: "microvm-starts", Dir: dir, VCPUs: 1, MemoryMiB: 256,
			Boot:  hypervisor.Boot{Vmlinux: guest.Vmlinux, Initrd: guest.Initrd, Cmdline: guest.Cmdline},
			Disks: []hypervisor.Disk{{ID: "root", Path: guest.Root, ReadOnly: true}},
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h, err := d.Launch(ctx, spec)
		if err != nil {
			t.Fatalf("QEMU refused the microvm command line: %v", err)
		}
		defer d.Kill(h)
		if st, err := d.Status(ctx, h); err != nil || st != hypervisor.Running {
			t.Errorf("Status = %s, %v; want running", st, err)
		}
		if err := d.Kill(h); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("microvm", func(t *testing.T) {
		if os.Getenv(microvmEnv) == "" {
			t.Skipf("set %s=1 to boot the suite on microvm under TCG: it boots in about 2 s on an idle host, but on a busy one its guest can hang calibrating the TSC (microvm has no HPET or PM timer; under KVM kvmclock avoids this)", microvmEnv)
		}
		hvtest.Run(t, newDriver(Microvm), guest)
	})
}
