package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guest/guestinit/boottest"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
)

// fakeQEMUEnv makes this test binary act as a broken QEMU when Launch
// starts it (see TestMain).
const fakeQEMUEnv = "BANGER_TEST_FAKE_QEMU"

const fakeQEMUMessage = "qemu-system-x86_64: -drive file=/images/root.ext4: Could not open '/images/root.ext4': Permission denied"

func TestMain(m *testing.M) {
	switch os.Getenv(fakeQEMUEnv) {
	case "exit": // fails at start, as QEMU does on a bad option
		fmt.Fprintln(os.Stderr, fakeQEMUMessage)
		os.Exit(1)
	case "hang": // starts, never answers QMP
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testFiles makes a kernel, initrd and two disks (empty files) and returns
// a spec using them with a fresh runtime directory.
func testSpec(t *testing.T) hypervisor.Spec {
	t.Helper()
	s := hvtest.NewScratch(t, "qt-")
	file := func(name string) string { return s.File(name, nil) }
	run := s.Run
	return hypervisor.Spec{
		ID: "vm-test", Dir: run, VCPUs: 1, MemoryMiB: 128,
		Boot: hypervisor.Boot{Vmlinuz: file("vmlinuz"), Vmlinux: file("vmlinux"), Initrd: file("initrd"), Cmdline: "root=/dev/vda"},
		Disks: []hypervisor.Disk{
			{ID: "root", Path: file("root.ext4"), ReadOnly: true},
			{ID: "work", Path: file("work.ext4")},
		},
		ConsoleLimit: 4096,
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name, bin, accel, wantErr string
	}{
		{"unknown accelerator", "true", "hvf", `unknown accelerator "hvf"`},
		{"empty accelerator", "true", "", `unknown accelerator ""`},
		{"missing binary", "/nonexistent/qemu-system-x86_64", AccelTCG, "install QEMU"},
		{"fine", "true", AccelTCG, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(tt.bin, tt.accel, nil)
			if tt.wantErr == "" {
				if err != nil || d.Name() != "qemu" {
					t.Fatalf("New = %v, %v", d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// Launch refuses a bad spec before starting anything, naming what is
// wrong; the runtime directory stays as it was.
func TestLaunchValidation(t *testing.T) {
	tests := []struct {
		name    string
		machine Machine
		mutate  func(s *hypervisor.Spec) string // returns what the error must contain
	}{
		{"no id", "", func(s *hypervisor.Spec) string { s.ID = ""; return "no VM id" }},
		{"relative dir", "", func(s *hypervisor.Spec) string { s.Dir = "run"; return "not an absolute path" }},
		{"socket path too long", "", func(s *hypervisor.Spec) string {
			s.Dir = filepath.Join(s.Dir, strings.Repeat("d", 100))
			return "use a shorter runtime directory"
		}},
		{"q35 without bzImage", Q35, func(s *hypervisor.Spec) string { s.Boot.Vmlinuz = ""; return "bzImage (Boot.Vmlinuz)" }},
		{"microvm without vmlinux", Microvm, func(s *hypervisor.Spec) string {
			s.Boot.Vmlinux = ""
			return "uncompressed ELF vmlinux (Boot.Vmlinux)"
		}},
		{"missing kernel", Microvm, func(s *hypervisor.Spec) string {
			s.Boot.Vmlinux += ".gone"
			return s.Boot.Vmlinux + ": no such file"
		}},
		{"kernel is a directory", Q35, func(s *hypervisor.Spec) string {
			s.Boot.Vmlinuz = s.Dir
			return "not a regular file"
		}},
		{"missing initrd", Q35, func(s *hypervisor.Spec) string { s.Boot.Initrd += ".gone"; return s.Boot.Initrd }},
		{"missing disk", Q35, func(s *hypervisor.Spec) string { s.Disks[1].Path += ".gone"; return "disk work (" + s.Disks[1].Path }},
		{"NIC without TAP", Q35, func(s *hypervisor.Spec) string {
			s.NIC = &hypervisor.NIC{MAC: "52:54:00:00:00:01"}
			return "no TAP device"
		}},
		{"NIC with a bad MAC", Q35, func(s *hypervisor.Spec) string {
			s.NIC = &hypervisor.NIC{TAP: "tap0", MAC: "52:54"}
			return `MAC "52:54"`
		}},
		{"unknown machine", "pc", func(s *hypervisor.Spec) string { return `unknown machine "pc"` }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testSpec(t)
			dir := spec.Dir
			want := tt.mutate(&spec)
			d := &Driver{Bin: "true", Accel: AccelTCG, Machine: tt.machine}
			_, err := d.Launch(context.Background(), spec)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Launch error = %v, want it to contain %q", err, want)
			}
			if names := hvtest.Ls(t, dir); len(names) != 0 {
				t.Errorf("the refused launch left %v in %s", names, dir)
			}
		})
	}
}

// When QEMU fails, Launch reports QEMU's own message and leaves nothing
// behind: no process, no file in the runtime directory.
func TestLaunchFailures(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mode    string
		ctx     func() (context.Context, context.CancelFunc)
		wantErr string
	}{
		{"QEMU exits", "exit", nil, fakeQEMUMessage},
		{"QMP never answers", "hang", nil, "QMP did not answer within 300ms"},
		{"cancelled", "hang", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, context.DeadlineExceeded.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(fakeQEMUEnv, tt.mode)
			spec := testSpec(t)
			d := &Driver{Bin: self, Accel: AccelTCG, LaunchTimeout: 300 * time.Millisecond, Log: testLog()}
			ctx, cancel := context.Background(), func() {}
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			_, err := d.Launch(ctx, spec)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Launch error = %v, want it to contain %q", err, tt.wantErr)
			}
			t.Logf("error: %v", err)
			if names := hvtest.Ls(t, spec.Dir); len(names) != 0 {
				t.Errorf("the failed launch left %v in %s", names, spec.Dir)
			}
			if procs := hvtest.Mentioning(spec.Dir); len(procs) != 0 {
				t.Errorf("the failed launch left processes %v", procs)
			}
		})
	}
}

// Real QEMU: a file that is not a kernel fails the launch with QEMU's
// message, and paths with commas (QEMU's option separator) work.
func TestLaunchRealQEMU(t *testing.T) {
	bin := boottest.RequireQEMU(t)
	t.Run("not a kernel", func(t *testing.T) {
		spec := testSpec(t)
		os.WriteFile(spec.Boot.Vmlinuz, bytes.Repeat([]byte("not a kernel "), 1000), 0o600)
		d, err := New(bin, AccelTCG, testLog())
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Launch(context.Background(), spec)
		if err == nil {
			t.Fatal("Launch of a garbage kernel succeeded")
		}
		t.Logf("error: %v", err)
		// QEMU says "qemu: linux kernel too old to load a ram disk".
		if !strings.Contains(err.Error(), "QEMU exited") || strings.Contains(err.Error(), "(no output)") || !strings.Contains(err.Error(), "qemu") {
			t.Errorf("the error does not carry QEMU's message: %v", err)
		}
		if names := hvtest.Ls(t, spec.Dir); len(names) != 0 {
			t.Errorf("the failed launch left %v", names)
		}
		if procs := hvtest.Mentioning(spec.Dir); len(procs) != 0 {
			t.Errorf("the failed launch left processes %v", procs)
		}
	})
	t.Run("commas in paths", func(t *testing.T) {
		k := boottest.RequireKernel(t)
		spec := testSpec(t)
		odd := filepath.Join(filepath.Dir(spec.Dir), "a,b")
		if err := os.Mkdir(odd, 0o700); err != nil {
			t.Fatal(err)
		}
		spec.Dir = odd
		spec.Boot.Vmlinuz = k.Vmlinuz
		spec.Boot.Initrd = ""
		disk := filepath.Join(odd, "x,y.img")
		os.WriteFile(disk, make([]byte, 1<<20), 0o600)
		spec.Disks = []hypervisor.Disk{{ID: "root", Path: disk}}
		d, err := New(bin, AccelTCG, testLog())
		if err != nil {
			t.Fatal(err)
		}
		h, err := d.Launch(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Kill(h)
		if h.ControlSocket != filepath.Join(odd, "qmp.sock") || h.AgentSocket != filepath.Join(odd, "agent.sock") {
			t.Errorf("sockets at %s and %s, want them in %s", h.ControlSocket, h.AgentSocket, odd)
		}
		for _, p := range []string{h.AgentSocket, h.ConsoleLog, filepath.Join(odd, PIDFile)} {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("QEMU did not create %s: %v", p, err)
			}
		}
		if holder := lockHolder(filepath.Join(odd, PIDFile)); holder != h.PID {
			t.Errorf("the pid file's lock is held by %d, want QEMU (%d)", holder, h.PID)
		}
		if err := d.Kill(h); err != nil {
			t.Fatal(err)
		}
		want := []string{"console.log", "qemu.stderr", "x,y.img"}
		if got := hvtest.Ls(t, odd); !slices.Equal(got, want) {
			t.Errorf("after Kill %s holds %v, want %v", odd, got, want)
		}
	})
}

// A guest that ignores the power button (here: a kernel that panicked
// with panic=0, so it hangs) is killed when Shutdown's context ends, and
// Shutdown still succeeds and cleans up.
func TestShutdownKillsAnUnresponsiveGuest(t *testing.T) {
	bin := boottest.RequireQEMU(t)
	k := boottest.RequireKernel(t)
	spec := testSpec(t)
	spec.Boot.Vmlinuz = k.Vmlinuz
	spec.Boot.Initrd = ""
	spec.Boot.Cmdline = "panic=0" // overrides the driver's panic=-1: hang instead of exiting
	spec.Disks = nil
	d, err := New(bin, AccelTCG, testLog())
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.Launch(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Kill(h)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx, h); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if hypervisor.Alive(h) {
		t.Errorf("QEMU (pid %d) still runs after Shutdown", h.PID)
	}
	if st, err := d.Status(context.Background(), h); st != hypervisor.Stopped || err != nil {
		t.Errorf("Status = %s, %v; want stopped", st, err)
	}
	for _, p := range []string{h.ControlSocket, h.AgentSocket, filepath.Join(spec.Dir, PIDFile)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
}

// The keeper trims a running VM's console log without being asked.
func TestConsoleKeeper(t *testing.T) {
	st, err := hypervisor.ProcessStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "console.log")
	os.WriteFile(log, bytes.Repeat([]byte("x"), 100<<10), 0o600)
	// This test process stands in for QEMU: it is alive.
	h := hypervisor.Handle{PID: os.Getpid(), StartTime: st, ConsoleLog: log, ConsoleLimit: 16 << 10}
	d := &Driver{ConsoleTrimInterval: 10 * time.Millisecond}
	d.keepConsole(h)
	defer d.stopKeeping(h)
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(log)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() <= h.ConsoleLimit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console log is still %d bytes, over the limit %d", fi.Size(), h.ConsoleLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDialAgentErrors(t *testing.T) {
	d := &Driver{Accel: AccelTCG}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tests := []struct {
		name    string
		h       hypervisor.Handle
		wantErr string
	}{
		{"foreign transport", hypervisor.Handle{Agent: hypervisor.AgentHybridVsock}, "not one QEMU offers"},
		{"serial socket gone", hypervisor.Handle{Agent: hypervisor.AgentSerial, AgentSocket: filepath.Join(t.TempDir(), "agent.sock")}, "virtio-serial socket"},
		// No VM has this CID: the dial fails (or, without vsock on the
		// host, the socket cannot be made); it must not hang.
		{"no such vsock CID", hypervisor.Handle{Agent: hypervisor.AgentVsock, AgentCID: CID("no-such-vm")}, "vsock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := d.DialAgent(ctx, tt.h)
			if err == nil {
				c.Close()
				t.Fatal("DialAgent succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			t.Logf("error: %v", err)
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the dial ran into the test's deadline instead of failing: %v", err)
			}
		})
	}
}

// QEMU's image locking, as the driver runs it (QEMU opening the files by
// path, and as the VM user with the daemon's descriptors): two VMs share
// a read-only disk at once; a read-write use of it beside them is
// refused, and a read-only use beside a writer, with the fix in the
// error; the refused launch leaves nothing behind. The guests are
// kernels that panic and hang (panic=0): only the disks matter here.
func TestDiskLocking(t *testing.T) {
	bin := boottest.RequireQEMU(t)
	k := boottest.RequireKernel(t)
	modes := []struct {
		name string
		user bool
	}{{"paths", false}, {"vmuser", true}}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			d, err := New(bin, AccelTCG, testLog())
			if err != nil {
				t.Fatal(err)
			}
			if m.user {
				u := requireVMUser(t)
				d.User = &u
			}
			shared := testSpec(t).Disks[0].Path
			if err := os.WriteFile(shared, make([]byte, 1<<20), 0o600); err != nil {
				t.Fatal(err)
			}
			spec := func(id string, readOnly bool) hypervisor.Spec {
				s := testSpec(t)
				s.ID = id
				s.Boot.Vmlinuz, s.Boot.Initrd = k.Vmlinuz, ""
				s.Boot.Cmdline = "panic=0" // hang instead of exiting
				s.Disks = []hypervisor.Disk{{ID: "root", Path: shared, ReadOnly: readOnly}}
				return s
			}
			launch := func(s hypervisor.Spec) (hypervisor.Handle, error) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				h, err := d.Launch(ctx, s)
				if err == nil {
					t.Cleanup(func() { d.Kill(h) })
				}
				return h, err
			}
			refused := func(s hypervisor.Spec) {
				t.Helper()
				h, err := launch(s)
				if err == nil {
					d.Kill(h)
					t.Fatalf("%s (read-only %v) launched beside the other use of %s", s.ID, s.Disks[0].ReadOnly, shared)
				}
				t.Logf("%s refused: %v", s.ID, err)
				if !strings.Contains(err.Error(), `"write" lock`) || !strings.Contains(err.Error(), "stop that VM first") {
					t.Errorf("the error does not carry QEMU's lock message and the fix: %v", err)
				}
				if names := hvtest.Ls(t, s.Dir); len(names) != 0 {
					t.Errorf("the refused launch left %v", names)
				}
			}
			a, err := launch(spec("ro-a", true))
			if err != nil {
				t.Fatal(err)
			}
			b, err := launch(spec("ro-b", true))
			if err != nil {
				t.Fatalf("a second read-only user of the disk: %v", err)
			}
			refused(spec("rw-beside-ro", false))
			for _, h := range []hypervisor.Handle{a, b} {
				if err := d.Kill(h); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := launch(spec("rw", false)); err != nil {
				t.Fatalf("a read-write user once the readers stopped: %v", err)
			}
			refused(spec("ro-beside-rw", true))
		})
	}
}
