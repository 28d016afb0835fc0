package firecracker

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker/fctest"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
)

// TestConformance runs the hypervisor conformance suite against the
// driver with fctest standing in for Firecracker: a real, separate
// process per VM (the launch, the process group, adoption by PID and
// start time, the kill and the clean-up are real) that checks every API
// request against Firecracker's documented API, and a stand-in guest
// behind its hybrid vsock whose agent answers health and which powers off
// on Ctrl-Alt-Del. No kernel boots: this host cannot run Firecracker
// (ENVIRONMENT.md). The guest's files are placeholders, which the driver
// hands to Firecracker by path only.
func TestConformance(t *testing.T) {
	t.Log("the guest is fctest's stand-in: the suite checks the driver against Firecracker's documented API, not a boot")
	dir := t.TempDir()
	file := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	guest := hvtest.Guest{
		Vmlinux:        file("vmlinux"),
		Vmlinuz:        file("vmlinuz"),
		Initrd:         file("initrd.img"),
		Root:           file("root.ext4"),
		Work:           file("work.ext4"),
		Cmdline:        "root=/dev/vda ro",
		PowerOffMarker: fctest.PowerOffMarker,
		BootTimeout:    30 * time.Second,
		// The default 8 KiB console limit is below the stand-in's 16 KiB
		// boot log, so the bound is exercised.
	}
	bin := fctest.FakeBinary(t, fctest.Config{AgentDelay: 200 * time.Millisecond})
	hvtest.Run(t, func(t *testing.T) hypervisor.Hypervisor {
		d, err := New(bin, testLog())
		if err != nil {
			t.Fatal(err)
		}
		d.ConsoleTrimInterval = 50 * time.Millisecond
		return d
	}, guest)

	// Every request the driver made in the suite passed the stand-in's
	// checks of Firecracker's API.
	all, err := fctest.RecordedAll(bin)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for pid, reqs := range all {
		for _, r := range reqs {
			n++
			if r.Status >= 300 {
				t.Errorf("pid %d: Firecracker's API would refuse %s %s %s: %d %s", pid, r.Method, r.Path, r.Body, r.Status, r.Fault)
			}
		}
	}
	if len(all) == 0 || n == 0 {
		t.Error("the fake Firecracker recorded no requests")
	}
	t.Logf("%d requests from %d Firecracker processes, all accepted", n, len(all))
}

// TestConformanceKVM runs the suite against a real Firecracker booting
// hvtest's light guest. It needs a firecracker binary on PATH and a host
// whose KVM boots guests; this project's build machines have neither
// (ENVIRONMENT.md), so there it skips. The light guest powers off on the
// ACPI power button rather than on Ctrl-Alt-Del, so the suite does not
// require its power-off marker here: a guest that ignores Ctrl-Alt-Del is
// killed at the deadline and the run says so in its log.
func TestConformanceKVM(t *testing.T) {
	bin, err := exec.LookPath("firecracker")
	if err != nil {
		t.Skip("no firecracker binary on PATH: this run needs a KVM host that boots guests and a Firecracker release (none can be installed here, see ENVIRONMENT.md)")
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skipf("no /dev/kvm: %v", err)
	}
	guest := hvtest.LightGuest(t)
	guest.PowerOffMarker = ""
	hvtest.Run(t, func(t *testing.T) hypervisor.Hypervisor {
		d, err := New(bin, testLog())
		if err != nil {
			t.Fatal(err)
		}
		d.ConsoleTrimInterval = 100 * time.Millisecond
		return d
	}, guest)
}

// TestConformanceJailed runs the suite as a daemon running as root runs
// Firecracker by default: under the jailer (a stand-in that chroots and
// drops to the VM user as the real one does; see fakeJailer), with fctest
// as the Firecracker it execs. Then it checks what the jail is for: the
// process runs as the VM user, and no one but root can reach its sockets.
func TestConformanceJailed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the jailer needs root")
	}
	u, err := hypervisor.EnsureVMUser(context.Background(), hypervisor.DefaultVMUser)
	if err != nil {
		t.Fatal(err)
	}
	// The jail must share the disks' filesystem (hard links): hvtest
	// makes them under the temporary directory too.
	base, err := os.MkdirTemp("", "fcj-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := t.TempDir()
	file := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	guest := hvtest.Guest{
		Vmlinux:        file("vmlinux", 0o600), // private: the jail gets a copy
		Vmlinuz:        file("vmlinuz", 0o600),
		Initrd:         file("initrd.img", 0o644),
		Root:           file("root.ext4", 0o644),
		Work:           file("work.ext4", 0o600),
		Cmdline:        "root=/dev/vda ro",
		PowerOffMarker: fctest.PowerOffMarker,
		BootTimeout:    30 * time.Second,
	}
	bin := fctest.FakeBinary(t, fctest.Config{AgentDelay: 200 * time.Millisecond})
	jailer := fakeJailer(t)
	newDriver := func(t *testing.T) *Driver {
		d, err := New(bin, testLog())
		if err != nil {
			t.Fatal(err)
		}
		d.Jailer, d.JailerBin = true, jailer
		d.Jail = JailConfig{UID: int(u.UID), GID: int(u.GID), ChrootBase: base, CgroupVersion: 2, NoCgroupLimits: true}
		d.ConsoleTrimInterval = 50 * time.Millisecond
		return d
	}
	hvtest.Run(t, func(t *testing.T) hypervisor.Hypervisor { return newDriver(t) }, guest)

	t.Run("Privileges", func(t *testing.T) {
		d := newDriver(t)
		key := []byte(strings.Repeat("k", 32))
		initrd := filepath.Join(dir, "initrd-key.img")
		if err := hvtest.WithBootKey(initrd, guest.Initrd, key); err != nil {
			t.Fatal(err)
		}
		spec := hypervisor.Spec{
			ID: "fcj-priv", Dir: filepath.Join(base, "vm"), VCPUs: 1, MemoryMiB: 128, ConsoleLimit: 64 << 10,
			Boot:  hypervisor.Boot{Vmlinux: guest.Vmlinux, Initrd: initrd, Cmdline: guest.Cmdline},
			Disks: []hypervisor.Disk{{ID: "root", Path: guest.Root, ReadOnly: true}, {ID: "work", Path: file("work-priv.ext4", 0o600)}},
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h, err := d.Launch(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Kill(h)
		r, e, err := hypervisor.ProcessUIDs(h.PID)
		if err != nil || r != u.UID || e != u.UID {
			t.Errorf("the jailed Firecracker runs as uid %d/%d (%v), want the VM user %d", r, e, err, u.UID)
		}
		jail := filepath.Dir(filepath.Dir(h.ControlSocket))
		var st unix.Stat_t
		if err := unix.Stat(jail, &st); err != nil || st.Uid != 0 || st.Mode&0o077 != 0 {
			t.Errorf("the jail %s: owner %d mode %#o (%v); want root's 0700", jail, st.Uid, st.Mode&0o777, err)
		}
		if !strings.HasPrefix(h.AgentSocket, filepath.Dir(h.ControlSocket)+"/") {
			t.Errorf("the vsock socket %s is outside the jail %s", h.AgentSocket, jail)
		}
		// The VM user (any process of it but this Firecracker) and every
		// other user find no path to the sockets.
		for _, p := range []string{h.ControlSocket, h.AgentSocket} {
			cmd := exec.Command("ls", "-l", p)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Credential()}
			if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
				t.Errorf("the VM user reaches %s (err %v): %s", p, err, out)
			}
		}
		// The daemon (root) still drives it: the agent answers through
		// the hybrid vsock.
		hctx, hcancel := context.WithTimeout(ctx, 20*time.Second)
		defer hcancel()
		if _, err := hvtest.AgentHealth(hctx, d, h, key); err != nil {
			t.Errorf("the daemon cannot reach the jailed guest's agent: %v", err)
		}
		if err := d.Kill(h); err != nil {
			t.Fatal(err)
		}
		var disk unix.Stat_t
		if err := unix.Stat(spec.Disks[1].Path, &disk); err != nil || disk.Uid != 0 {
			t.Errorf("after the VM, the work disk belongs to uid %d (%v); want it back with root", disk.Uid, err)
		}
	})
	// The jailed Firecracker opens its TAP by name as the VM user: Launch
	// hands the TAP to that user first, and a TAP it cannot hand over
	// stops the launch with nothing left behind.
	t.Run("TAP", func(t *testing.T) {
		type gave struct {
			tap      string
			uid, gid int
		}
		var got []gave
		d := newDriver(t)
		d.GiveTAP = func(name string, uid, gid int) error {
			got = append(got, gave{name, uid, gid})
			if name == "tap-missing" {
				return errors.New("TAP tap-missing: no such network interface: take a TAP from the pool")
			}
			return nil
		}
		spec := hypervisor.Spec{
			ID: "fcj-tap", Dir: filepath.Join(base, "vm-tap"), VCPUs: 1, MemoryMiB: 128, ConsoleLimit: 64 << 10,
			Boot:  hypervisor.Boot{Vmlinux: guest.Vmlinux, Initrd: guest.Initrd, Cmdline: guest.Cmdline},
			Disks: []hypervisor.Disk{{ID: "root", Path: guest.Root, ReadOnly: true}, {ID: "work", Path: file("work-tap.ext4", 0o600)}},
			NIC:   &hypervisor.NIC{TAP: "tap-pool-3", MAC: "06:00:0a:00:00:02"},
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h, err := d.Launch(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		d.Kill(h)
		if want := []gave{{"tap-pool-3", int(u.UID), int(u.GID)}}; !reflect.DeepEqual(got, want) {
			t.Errorf("TAPs handed over: %+v, want %+v", got, want)
		}
		spec.ID, spec.Dir, spec.NIC.TAP = "fcj-tap2", filepath.Join(base, "vm-tap2"), "tap-missing"
		if _, err := d.Launch(ctx, spec); err == nil || !strings.Contains(err.Error(), "take a TAP from the pool") {
			t.Fatalf("launch with a TAP that cannot be handed over: %v", err)
		}
		if left, _ := filepath.Glob(filepath.Join(base, "*", "fcj-tap2")); len(left) > 0 {
			t.Errorf("a refused launch left its jail: %v", left)
		}
	})
}
