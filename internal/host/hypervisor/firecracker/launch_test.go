package firecracker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker/fctest"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

func TestMain(m *testing.M) {
	// The driver's tests launch this binary as a fake firecracker, and
	// as a fake jailer.
	runIfFakeJailer()
	fctest.RunIfFake()
	os.Exit(m.Run())
}

// testLog logs to stderr with -v, else nowhere. (Not t.Log: the console
// keepers may outlive a test.)
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testSpec makes a kernel, an initrd and two disks (small files) and
// returns a spec using them with a fresh runtime directory.
func testSpec(t *testing.T) hypervisor.Spec {
	t.Helper()
	s := hvtest.NewScratch(t, "fct-")
	file := func(name string) string { return s.File(name, []byte(name)) }
	run := s.Run
	return hypervisor.Spec{
		ID: "vm-test", Name: "test", Dir: run, VCPUs: 2, MemoryMiB: 256,
		Boot: hypervisor.Boot{Vmlinux: file("vmlinux"), Initrd: file("initrd"), Cmdline: "root=/dev/vda ro banger.ip=10.0.0.2"},
		Disks: []hypervisor.Disk{
			{ID: "root", Path: file("root.ext4"), ReadOnly: true},
			{ID: "work", Path: file("work.ext4")},
		},
		NIC:          &hypervisor.NIC{TAP: "tap-pool-3", MAC: "06:00:0a:00:00:02"},
		ConsoleLimit: 4096,
	}
}

// fakeDriver returns a driver whose Firecracker is a fake playing cfg, and
// the fake's path.
func fakeDriver(t *testing.T, cfg fctest.Config) (*Driver, string) {
	t.Helper()
	bin := fctest.FakeBinary(t, cfg)
	d, err := New(bin, testLog())
	if err != nil {
		t.Fatal(err)
	}
	d.ConsoleTrimInterval = 50 * time.Millisecond
	return d, bin
}

// launch launches spec and kills the VM when the test ends.
func launch(t *testing.T, d *Driver, spec hypervisor.Spec) hypervisor.Handle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := d.Launch(ctx, spec)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Kill(h); err != nil {
			t.Errorf("killing the VM: %v", err)
		}
	})
	return h
}

func recorded(t *testing.T, bin string, pid int) []fctest.Request {
	t.Helper()
	reqs, err := fctest.Recorded(bin, pid)
	if err != nil {
		t.Fatalf("the fake's recorded requests: %v", err)
	}
	return reqs
}

// sent is a request as a test compares it: the body decoded, so the
// comparison does not depend on field order.
type sent struct {
	Method, Path string
	Body         map[string]any
}

func decodeSent(t *testing.T, reqs []fctest.Request) []sent {
	t.Helper()
	var out []sent
	for _, r := range reqs {
		s := sent{Method: r.Method, Path: r.Path}
		if r.Body != "" {
			if err := json.Unmarshal([]byte(r.Body), &s.Body); err != nil {
				t.Fatalf("%s %s: body %q: %v", r.Method, r.Path, r.Body, err)
			}
		}
		out = append(out, s)
	}
	return out
}

// wantLaunch is the request sequence for testSpec on release v, with the
// readiness probe (GET /) first.
func wantLaunch(spec hypervisor.Spec, v string, entropy bool, bootArgs string) []sent {
	dir := spec.Dir
	want := []sent{
		{"GET", "/", nil},
		{"PUT", "/logger", map[string]any{"log_path": dir + "/firecracker.log", "level": "Warning", "show_level": true, "show_log_origin": false}},
		{"PUT", "/metrics", map[string]any{"metrics_path": dir + "/firecracker.metrics"}},
		{"PUT", "/machine-config", map[string]any{"vcpu_count": 2.0, "mem_size_mib": 256.0}},
		{"PUT", "/boot-source", map[string]any{"kernel_image_path": spec.Boot.Vmlinux, "initrd_path": spec.Boot.Initrd, "boot_args": bootArgs}},
		// Relative to Firecracker's directory, spec.Dir, where the disks
		// are linked (snapshotter.go says why).
		{"PUT", "/drives/root", map[string]any{"drive_id": "root", "path_on_host": "disk-root.img", "is_root_device": false, "is_read_only": true}},
		{"PUT", "/drives/work", map[string]any{"drive_id": "work", "path_on_host": "disk-work.img", "is_root_device": false, "is_read_only": false}},
		{"PUT", "/network-interfaces/eth0", map[string]any{"iface_id": "eth0", "host_dev_name": "tap-pool-3", "guest_mac": "06:00:0a:00:00:02"}},
		{"PUT", "/vsock", map[string]any{"guest_cid": 3.0, "uds_path": "vsock.sock"}},
	}
	if entropy {
		want = append(want, sent{"PUT", "/entropy", map[string]any{}})
	}
	return append(want, sent{"PUT", "/actions", map[string]any{"action_type": "InstanceStart"}})
}

// dropProbes removes the repeated GET / of the readiness wait but the
// last one.
func dropProbes(reqs []fctest.Request) []fctest.Request {
	var out []fctest.Request
	for i, r := range reqs {
		if r.Method == "GET" && r.Path == "/" && i+1 < len(reqs) && reqs[i+1].Method == "GET" && reqs[i+1].Path == "/" {
			continue
		}
		out = append(out, r)
	}
	return out
}

// Launch configures the microVM in order, every request passes the
// stand-in's checks of Firecracker's API, and the handle identifies the
// process; the release decides entropy and pci=off.
func TestLaunchRequests(t *testing.T) {
	tests := []struct {
		version  string
		entropy  bool
		bootArgs string
	}{
		{"1.16.1", true, "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd root=/dev/vda ro banger.ip=10.0.0.2"},
		{"1.10.1", true, "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd pci=off root=/dev/vda ro banger.ip=10.0.0.2"},
		{"1.3.3", false, "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd pci=off root=/dev/vda ro banger.ip=10.0.0.2"},
		{"1.1.0", false, "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd pci=off root=/dev/vda ro banger.ip=10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			d, bin := fakeDriver(t, fctest.Config{Version: tt.version})
			spec := testSpec(t)
			h := launch(t, d, spec)
			want := hypervisor.Handle{
				Driver: "firecracker", PID: h.PID, StartTime: h.StartTime,
				ControlSocket: spec.Dir + "/fc.sock",
				Agent:         hypervisor.AgentHybridVsock, AgentSocket: spec.Dir + "/vsock.sock", AgentCID: 3,
				ConsoleLog: spec.Dir + "/console.log", ConsoleLimit: 4096, Accel: "kvm",
			}
			if diff := cmp.Diff(want, h); diff != "" {
				t.Errorf("handle (-want +got):\n%s", diff)
			}
			if !hypervisor.Alive(h) {
				t.Errorf("hypervisor.Alive(%+v) = false", h)
			}
			reqs := recorded(t, bin, h.PID)
			for _, r := range reqs {
				if r.Status >= 300 {
					t.Errorf("Firecracker's API would refuse %s %s %s: %d %s", r.Method, r.Path, r.Body, r.Status, r.Fault)
				}
			}
			if diff := cmp.Diff(wantLaunch(spec, tt.version, tt.entropy, tt.bootArgs), decodeSent(t, dropProbes(reqs))); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			t.Logf("requests of a launch on v%s:", tt.version)
			for _, r := range dropProbes(reqs) {
				t.Logf("  %s %s %s -> %d", r.Method, r.Path, r.Body, r.Status)
			}
		})
	}
}

// A release older than MinVersion is refused, by New and by Launch.
func TestTooOldRefused(t *testing.T) {
	bin := fctest.FakeBinary(t, fctest.Config{Version: "1.0.2"})
	_, err := New(bin, testLog())
	if err == nil || !strings.Contains(err.Error(), "Firecracker v1.0.2, older than v1.1.0") {
		t.Errorf("New = %v; want it to refuse v1.0.2", err)
	}
	d := &Driver{Bin: bin}
	spec := testSpec(t)
	if _, err := d.Launch(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "older than v1.1.0") {
		t.Errorf("Launch = %v; want it to refuse v1.0.2", err)
	}
	if ents, _ := os.ReadDir(spec.Dir); len(ents) != 0 {
		t.Errorf("the refused launch left %v in the runtime directory", ents)
	}
}

// When Firecracker refuses a request, the error names the step and
// carries Firecracker's fault_message; nothing is left behind.
func TestLaunchAPIErrorNamesStep(t *testing.T) {
	const fault = "Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: Permission denied (os error 13)"
	d, _ := fakeDriver(t, fctest.Config{Fail: map[string]string{"PUT /drives/work": fault}})
	spec := testSpec(t)
	_, err := d.Launch(context.Background(), spec)
	want := "configuring drives: Firecracker said: " + fault
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Launch = %v; want an error containing %q", err, want)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Path != "/drives/work" || apiErr.Status != 400 {
		t.Errorf("the error does not carry the APIError of PUT /drives/work: %#v", apiErr)
	}
	if ents, _ := os.ReadDir(spec.Dir); len(ents) != 0 {
		t.Errorf("the failed launch left files: %v", ents)
	}
	if ps := hvtest.Mentioning(spec.Dir); len(ps) > 0 {
		t.Errorf("the failed launch left processes: %v", ps)
	}
}

// A Firecracker that exits while starting (here: it cannot bind its API
// socket) fails the launch with what it printed on stderr, and nothing is
// left running.
func TestLaunchFirecrackerExits(t *testing.T) {
	d, _ := fakeDriver(t, fctest.Config{})
	spec := testSpec(t)
	if err := os.MkdirAll(filepath.Join(spec.Dir, APISocket, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := d.Launch(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "Firecracker exited (exit status 1)") || !strings.Contains(err.Error(), "Failed to open the API socket") {
		t.Errorf("Launch = %v; want Firecracker's exit and its stderr", err)
	}
	if ps := hvtest.Mentioning(spec.Dir); len(ps) > 0 {
		t.Errorf("processes left: %v", ps)
	}
}

func TestLaunchValidates(t *testing.T) {
	d, _ := fakeDriver(t, fctest.Config{})
	tests := []struct {
		name   string
		mutate func(*hypervisor.Spec)
		want   string
	}{
		{"no vmlinux", func(s *hypervisor.Spec) { s.Boot.Vmlinux = "" }, "uncompressed ELF kernel (Boot.Vmlinux)"},
		{"missing kernel", func(s *hypervisor.Spec) { s.Boot.Vmlinux += ".gone" }, "vmlinux.gone: no such file"},
		{"missing initrd", func(s *hypervisor.Spec) { s.Boot.Initrd += ".gone" }, "initrd.gone: no such file"},
		{"missing disk", func(s *hypervisor.Spec) { s.Disks[1].Path += ".gone" }, "work.ext4.gone): no such file"},
		{"bad disk id", func(s *hypervisor.Spec) { s.Disks[1].ID = "work-disk" }, `disk id "work-disk"`},
		{"duplicate disk id", func(s *hypervisor.Spec) { s.Disks[1].ID = "root" }, `two disks have the id "root"`},
		{"too many vCPUs", func(s *hypervisor.Spec) { s.VCPUs = 33 }, "33 vCPUs"},
		{"no memory", func(s *hypervisor.Spec) { s.MemoryMiB = 0 }, "0 MiB"},
		{"bad MAC", func(s *hypervisor.Spec) { s.NIC.MAC = "nope" }, `NIC MAC "nope"`},
		{"long TAP name", func(s *hypervisor.Spec) { s.NIC.TAP = "tap-much-too-long" }, "longer than the 15 bytes"},
		{"software emulation", func(s *hypervisor.Spec) { s.Accel = "tcg" }, "KVM only"},
		{"relative dir", func(s *hypervisor.Spec) { s.Dir = "run" }, "not an absolute path"},
		{"long id", func(s *hypervisor.Spec) { s.ID = strings.Repeat("x", 65) }, "not a Firecracker instance id"},
		{"id with a dot", func(s *hypervisor.Spec) { s.ID = "vm.1" }, "not a Firecracker instance id"},
		{"long dir", func(s *hypervisor.Spec) { s.Dir = "/tmp/" + strings.Repeat("d", 100) }, "over the 107 a unix socket allows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testSpec(t)
			tt.mutate(&spec)
			_, err := d.Launch(context.Background(), spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Launch = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// Adopt accepts the VM's process and refuses a handle whose start time or
// PID does not match, or whose API socket is served by someone else.
func TestAdopt(t *testing.T) {
	d, _ := fakeDriver(t, fctest.Config{})
	h := launch(t, d, testSpec(t))
	ctx := context.Background()
	if err := d.Adopt(ctx, h); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	wrongStart := h
	wrongStart.StartTime++
	if err := d.Adopt(ctx, wrongStart); !errors.Is(err, hypervisor.ErrNotOurs) {
		t.Errorf("Adopt with a wrong start time = %v, want ErrNotOurs", err)
	}
	// A live process with the right start time whose socket is served by
	// another process: this test's own process, pointed at h's socket.
	self := h
	self.PID = os.Getpid()
	st, err := hypervisor.ProcessStartTime(self.PID)
	if err != nil {
		t.Fatal(err)
	}
	self.StartTime = st
	if err := d.Adopt(ctx, self); !errors.Is(err, hypervisor.ErrNotOurs) {
		t.Errorf("Adopt of a socket served by another pid = %v, want ErrNotOurs", err)
	}
	if st, err := d.Status(ctx, h); err != nil || st != hypervisor.Running {
		t.Errorf("Status = %q, %v; want running", st, err)
	}
}

// Shutdown sends Ctrl-Alt-Del, the guest powers off, Firecracker exits and
// the sockets go, listeners for guest-initiated connections included.
func TestShutdown(t *testing.T) {
	d, bin := fakeDriver(t, fctest.Config{})
	spec := testSpec(t)
	h := launch(t, d, spec)
	listener := h.AgentSocket + "_52" // as banger would make for a guest-initiated port
	if err := os.WriteFile(listener, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reqsBefore := len(recorded(t, bin, h.PID))
	if err := d.Shutdown(ctx, h); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if hypervisor.Alive(h) {
		t.Errorf("pid %d is alive after Shutdown", h.PID)
	}
	reqs := recorded(t, bin, h.PID)
	if got := decodeSent(t, reqs[reqsBefore:]); !cmp.Equal(got, []sent{{"PUT", "/actions", map[string]any{"action_type": "SendCtrlAltDel"}}}) {
		t.Errorf("Shutdown sent %v; want PUT /actions SendCtrlAltDel", got)
	}
	b, _ := os.ReadFile(h.ConsoleLog)
	if !bytes.Contains(b, []byte(fctest.PowerOffMarker)) {
		t.Errorf("the console does not show the guest powering off:\n%s", b)
	}
	if int64(len(b)) > spec.ConsoleLimit {
		t.Errorf("console log is %d bytes, over the limit %d", len(b), spec.ConsoleLimit)
	}
	for _, p := range []string{h.ControlSocket, h.AgentSocket, listener} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
	if st, err := d.Status(ctx, h); err != nil || st != hypervisor.Stopped {
		t.Errorf("Status = %q, %v; want stopped", st, err)
	}
	if err := d.Shutdown(ctx, h); err != nil {
		t.Errorf("a second Shutdown: %v", err)
	}
}

// A guest that ignores Ctrl-Alt-Del is killed when ctx ends.
func TestShutdownKillsAtDeadline(t *testing.T) {
	d, _ := fakeDriver(t, fctest.Config{IgnoreCtrlAltDel: true})
	h := launch(t, d, testSpec(t))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := d.Shutdown(ctx, h); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if hypervisor.Alive(h) {
		t.Errorf("pid %d survived Shutdown", h.PID)
	}
	if _, err := os.Lstat(h.ControlSocket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("API socket still there: %v", err)
	}
}

func TestKill(t *testing.T) {
	d, _ := fakeDriver(t, fctest.Config{})
	spec := testSpec(t)
	h := launch(t, d, spec)
	if err := d.Kill(h); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if hypervisor.Alive(h) {
		t.Errorf("pid %d is alive after Kill", h.PID)
	}
	if ps := hvtest.Mentioning(spec.Dir); len(ps) > 0 {
		t.Errorf("processes left: %v", ps)
	}
	for _, p := range []string{h.ControlSocket, h.AgentSocket} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
	if err := d.Adopt(context.Background(), h); !errors.Is(err, hypervisor.ErrNotOurs) {
		t.Errorf("Adopt after Kill = %v, want ErrNotOurs", err)
	}
	if err := d.Kill(h); err != nil {
		t.Errorf("a second Kill: %v", err)
	}
}

// A fresh Driver value, as after a daemon restart, adopts the VM, reaches
// its agent and shuts it down.
func TestSurvivesItsLauncher(t *testing.T) {
	launcher, bin := fakeDriver(t, fctest.Config{})
	spec := testSpec(t)
	key := []byte("the agent key of this test's VM!")
	if err := hvtest.WithBootKey(spec.Boot.Initrd, spec.Boot.Initrd, key); err != nil {
		t.Fatal(err)
	}
	h := launch(t, launcher, spec)
	d, err := New(bin, testLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Adopt(ctx, h); err != nil {
		t.Fatalf("Adopt from a fresh driver: %v", err)
	}
	health, err := hvtest.AgentHealth(ctx, d, h, key)
	if err != nil || health.Protocol != agentmux.Protocol {
		t.Fatalf("health = %+v, %v", health, err)
	}
	if err := d.Shutdown(ctx, h); err != nil {
		t.Fatalf("Shutdown from the fresh driver: %v", err)
	}
	if st, err := launcher.Status(ctx, h); err != nil || st != hypervisor.Stopped {
		t.Errorf("the launcher sees %q, %v; want stopped", st, err)
	}
}

// A second launch into a directory whose Firecracker runs is refused and
// changes nothing.
func TestSecondLaunchRefused(t *testing.T) {
	d, _ := fakeDriver(t, fctest.Config{})
	spec := testSpec(t)
	h := launch(t, d, spec)
	before := hvtest.Ls(t, spec.Dir)
	_, err := d.Launch(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("a Firecracker (pid %d) already runs", h.PID)) {
		t.Errorf("second Launch = %v; want it refused naming pid %d", err, h.PID)
	}
	if after := hvtest.Ls(t, spec.Dir); !cmp.Equal(before, after) {
		t.Errorf("the refused launch changed the directory: %v -> %v", before, after)
	}
}

// SocketOwner receives the API and vsock sockets.
func TestSocketOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving files to another user needs root")
	}
	d, _ := fakeDriver(t, fctest.Config{})
	d.SocketOwner = &Owner{UID: 4321, GID: 8765}
	h := launch(t, d, testSpec(t))
	for _, p := range []string{h.ControlSocket, h.AgentSocket} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 4321 || st.Gid != 8765 {
			t.Errorf("%s belongs to %d:%d, want 4321:8765", p, st.Uid, st.Gid)
		}
	}
}

// The console log is the fake Firecracker's stdout and stays bounded while
// the VM runs.
func TestConsoleBounded(t *testing.T) {
	d, _ := fakeDriver(t, fctest.Config{BootLog: 64 << 10})
	spec := testSpec(t)
	h := launch(t, d, spec)
	if err := d.Shutdown(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(h.ConsoleLog)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || int64(len(b)) > spec.ConsoleLimit {
		t.Errorf("console log is %d bytes; want some, at most %d", len(b), spec.ConsoleLimit)
	}
}

// Two VMs share one root disk file at once: each Firecracker opens it
// through the link in its own directory, with is_read_only true (the
// stand-in checks the body
// against BlockDeviceConfig and opens the file read-only, as Firecracker
// does for a read-only drive), and the work disks stay read-write.
func TestLaunchSharedReadOnlyDrive(t *testing.T) {
	d, bin := fakeDriver(t, fctest.Config{})
	a, b := testSpec(t), testSpec(t)
	b.ID = "vm-test-2"
	b.Disks[0].Path = a.Disks[0].Path
	if err := os.Chmod(a.Disks[0].Path, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []hypervisor.Spec{a, b} {
		h := launch(t, d, spec)
		var drives []map[string]any
		for _, r := range decodeSent(t, recorded(t, bin, h.PID)) {
			if strings.HasPrefix(r.Path, "/drives/") {
				drives = append(drives, r.Body)
			}
		}
		for _, r := range recorded(t, bin, h.PID) {
			if r.Status >= 300 {
				t.Errorf("%s: Firecracker's API would refuse %s %s %s: %d %s", spec.ID, r.Method, r.Path, r.Body, r.Status, r.Fault)
			}
		}
		want := []map[string]any{
			{"drive_id": "root", "path_on_host": "disk-root.img", "is_root_device": false, "is_read_only": true},
			{"drive_id": "work", "path_on_host": "disk-work.img", "is_root_device": false, "is_read_only": false},
		}
		if diff := cmp.Diff(want, drives); diff != "" {
			t.Errorf("%s: drives sent (-want +got):\n%s", spec.ID, diff)
		}
		for i, name := range []string{"disk-root.img", "disk-work.img"} {
			if got, err := os.Readlink(filepath.Join(spec.Dir, name)); err != nil || got != spec.Disks[i].Path {
				t.Errorf("%s: %s links to %q (%v), want %s", spec.ID, name, got, err, spec.Disks[i].Path)
			}
		}
		if st, err := d.Status(context.Background(), h); err != nil || st != hypervisor.Running {
			t.Errorf("%s: Status = %s, %v; want running", spec.ID, st, err)
		}
	}
}

// An unjailed Firecracker opens the disks through links in the VM's
// directory: Launch makes them (replacing stale links), never removes a
// file in their way, and Kill removes them.
func TestDiskLinks(t *testing.T) {
	d, _ := fakeDriver(t, fctest.Config{})
	spec := testSpec(t)
	stale := filepath.Join(spec.Dir, "disk-root.img")
	if err := os.Symlink("/nowhere", stale); err != nil {
		t.Fatal(err)
	}
	h := launch(t, d, spec)
	for i, name := range []string{"disk-root.img", "disk-work.img"} {
		if got, err := os.Readlink(filepath.Join(spec.Dir, name)); err != nil || got != spec.Disks[i].Path {
			t.Errorf("%s links to %q (%v), want %s", name, got, err, spec.Disks[i].Path)
		}
	}
	if err := d.Kill(h); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"disk-root.img", "disk-work.img"} {
		if _, err := os.Lstat(filepath.Join(spec.Dir, name)); err == nil {
			t.Errorf("Kill left the link %s", name)
		}
	}
	in := filepath.Join(spec.Dir, "disk-work.img")
	if err := os.WriteFile(in, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Launch(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "is in the way of the disk link") {
		t.Errorf("Launch with a file in the way of a link = %v", err)
	}
	if b, err := os.ReadFile(in); err != nil || string(b) != "mine" {
		t.Errorf("the file in the way is now %q, %v", b, err)
	}
}
