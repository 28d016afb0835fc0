package qemu

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guest/guestinit/boottest"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
)

// requireVMUser returns the VM user a root daemon runs QEMU as, creating
// it as the daemon does; it skips the test unless it runs as root.
func requireVMUser(t *testing.T) hypervisor.VMUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: only a daemon running as root runs QEMU as the VM user")
	}
	u, err := hypervisor.EnsureVMUser(context.Background(), hypervisor.DefaultVMUser)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// procStatus returns the value of a /proc/PID/status line.
func procStatus(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatalf("/proc/%d/status has no %s line", pid, key)
	return ""
}

func itoa(i int) string { return strconv.Itoa(i) }

func fmtInt(i int) string { return strconv.Itoa(i) }

// asUser runs argv with u's uid and gid and no supplementary group, as a
// guest that took over its QEMU would act, and returns its error output.
func asUser(u hypervisor.VMUser, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Credential()}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestLeastPrivilege boots a real guest under software emulation with the
// driver a root daemon uses (User set): QEMU runs as the VM user, not
// root, in seccomp filter mode; the guest boots and its agent answers; a
// fresh driver adopts it and shuts it down; and the VM user can open no
// file of another VM (disk, console log, QMP and agent sockets).
func TestLeastPrivilege(t *testing.T) {
	u := requireVMUser(t)
	bin := boottest.RequireQEMU(t)
	guest := hvtest.LightGuest(t)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "initrd-with-key.img")
	if err := hvtest.WithBootKey(initrd, guest.Initrd, key); err != nil {
		t.Fatal(err)
	}
	newDriver := func() *Driver {
		return &Driver{Bin: bin, Accel: AccelTCG, Log: testLog(), User: &u, ConsoleTrimInterval: 100 * time.Millisecond}
	}
	// A VM as the daemon lays it out: root's 0700 directories, 0600 files.
	spec := func(name string) hypervisor.Spec {
		dir, err := os.MkdirTemp("", "hvp-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		work := filepath.Join(dir, "work.ext4")
		b, err := os.ReadFile(guest.Work)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(work, b, 0o600); err != nil {
			t.Fatal(err)
		}
		run := filepath.Join(dir, "run")
		if err := os.Mkdir(run, 0o700); err != nil {
			t.Fatal(err)
		}
		return hypervisor.Spec{
			ID: "hvp-" + name, Dir: run, VCPUs: 1, MemoryMiB: 256, ConsoleLimit: 64 << 10,
			Boot: hypervisor.Boot{Vmlinuz: guest.Vmlinuz, Initrd: initrd, Cmdline: guest.Cmdline},
			Disks: []hypervisor.Disk{
				{ID: "root", Path: guest.Root, ReadOnly: true},
				{ID: "work", Path: work},
			},
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	a, other := spec("a"), spec("b")
	d := newDriver()
	h, err := d.Launch(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Kill(h)

	t.Run("RunsAsTheVMUser", func(t *testing.T) {
		want := strings.Repeat(fmtInt(int(u.UID))+" ", 4)
		if got := procStatus(t, h.PID, "Uid"); got+" " != want {
			t.Errorf("QEMU's Uid line is %q, want %q (real, effective, saved, fs = %s)", got, strings.TrimSpace(want), u.Name)
		}
		wantG := strings.Repeat(fmtInt(int(u.GID))+" ", 4)
		if got := procStatus(t, h.PID, "Gid"); got+" " != wantG {
			t.Errorf("QEMU's Gid line is %q, want %q", got, strings.TrimSpace(wantG))
		}
		if got := procStatus(t, h.PID, "Groups"); got != "" {
			t.Errorf("QEMU has supplementary groups %q, want none under TCG", got)
		}
		if got := procStatus(t, h.PID, "CapEff"); got != "0000000000000000" {
			t.Errorf("QEMU has capabilities %s", got)
		}
	})
	t.Run("NotDumpable", func(t *testing.T) {
		// Another process of the VM user (another VM's QEMU, taken over
		// by its guest) can neither trace this QEMU nor read its memory,
		// environment or descriptors.
		for _, f := range []string{"environ", "mem", "fd/0"} {
			p := filepath.Join("/proc", itoa(h.PID), f)
			if out, err := asUser(u, "cat", p); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("the VM user read %s of QEMU (err %v): %.200s", p, err, out)
			}
		}
	})
	t.Run("Seccomp", func(t *testing.T) {
		if got := procStatus(t, h.PID, "Seccomp"); got != "2" {
			t.Errorf("QEMU's Seccomp is %q, want 2 (filter mode, -sandbox on)", got)
		}
	})
	t.Run("GuestAnswers", func(t *testing.T) {
		// The guest boots to its agent, which answers over the
		// virtio-serial socket QEMU got as a descriptor.
		hctx, hcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer hcancel()
		health, err := hvtest.AgentHealth(hctx, d, h, key)
		if err != nil {
			b, _ := os.ReadFile(h.ConsoleLog)
			e, _ := os.ReadFile(PathsIn(a.Dir).Stderr)
			t.Fatalf("no health from the agent: %v; QEMU's stderr: %s; console:\n%s", err, e, b[max(0, len(b)-2000):])
		}
		if health.RootMount != "/dev/vdb" {
			t.Errorf("health.RootMount = %q, want /dev/vdb", health.RootMount)
		}
	})
	t.Run("VMDirFiles", func(t *testing.T) {
		// Everything in the VM's directory is root's and private.
		ents, err := os.ReadDir(a.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			var st syscall.Stat_t
			p := filepath.Join(a.Dir, e.Name())
			if err := syscall.Lstat(p, &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != 0 || st.Mode&0o077 != 0 {
				t.Errorf("%s: owner %d, mode %#o; want root's, 0600", e.Name(), st.Uid, st.Mode&0o777)
			}
		}
	})
	t.Run("VMUserOpensNothing", func(t *testing.T) {
		// The VM user (as a guest that took over QEMU b would be) cannot
		// reach VM a's files by any path.
		p := PathsIn(a.Dir)
		for _, f := range []string{a.Disks[1].Path, p.Console, p.PID} {
			if out, err := asUser(u, "cat", f); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("the VM user read %s (err %v): %s", f, err, out)
			}
		}
		if out, err := asUser(u, "cat", other.Disks[1].Path); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("the VM user read another VM's disk (err %v): %s", err, out)
		}
		// Even with the directory open to it, the sockets are root's 0600.
		for _, s := range []string{p.QMP, p.Agent} {
			var st syscall.Stat_t
			if err := syscall.Stat(s, &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != 0 || st.Mode&0o077 != 0 {
				t.Errorf("%s: owner %d mode %#o: another user could connect", s, st.Uid, st.Mode&0o777)
			}
		}
	})
	t.Run("AdoptAndShutdown", func(t *testing.T) {
		fresh := newDriver()
		if err := fresh.Adopt(ctx, h); err != nil {
			t.Fatalf("Adopt from a fresh driver: %v", err)
		}
		if pid, ok := runningIn(ctx, PathsIn(a.Dir)); !ok || pid != h.PID {
			t.Errorf("runningIn = %d, %v; want the QEMU (%d) holding the pid file", pid, ok, h.PID)
		}
		sctx, scancel := context.WithTimeout(ctx, time.Minute)
		defer scancel()
		if err := fresh.Shutdown(sctx, h); err != nil {
			t.Fatal(err)
		}
		if hypervisor.Alive(h) {
			t.Fatal("QEMU still runs after Shutdown")
		}
		b, _ := os.ReadFile(h.ConsoleLog)
		if !strings.Contains(string(b), hvtest.LightPowerOffMarker) {
			t.Errorf("the guest did not power off by itself; console tail:\n%s", b[max(0, len(b)-1500):])
		}
		for _, s := range []string{h.ControlSocket, h.AgentSocket} {
			if _, err := os.Lstat(s); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s is left after Shutdown", s)
			}
		}
		var dialer net.Dialer
		if c, err := dialer.DialContext(ctx, "unix", h.ControlSocket); err == nil {
			c.Close()
			t.Error("QMP still answers after Shutdown")
		}
	})
}
