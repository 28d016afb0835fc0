package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeHost is a hand-written host: a table of programs with their version
// lines, and switches for each device and capability. It records which
// programs were looked up.
type fakeHost struct {
	programs   map[string]string // name -> version line ("" = present, version unknown)
	files      map[string]bool
	kvmErr     error
	kvmRWErr   error // what opening /dev/kvm read-write gives
	tunErr     error
	reflink    bool
	reflinkErr error
	keys       map[string]string // path -> fingerprint
	keyErr     error
	root       bool
	users      map[string]hypervisor.VMUser
	sandboxErr error
	free       uint64 // bytes free on the state directory's filesystem (0: 100 GiB)
	looked     []string
}

func (h *fakeHost) IsRoot() bool { return h.root }
func (h *fakeHost) LookupUser(name string) (hypervisor.VMUser, error) {
	if u, ok := h.users[name]; ok {
		return u, nil
	}
	return hypervisor.VMUser{}, fmt.Errorf("the VM user %q does not exist", name)
}
func (h *fakeHost) QEMUSandbox(context.Context, string) error { return h.sandboxErr }
func (h *fakeHost) FreeSpace(string) (uint64, uint64, error) {
	if h.free == 0 {
		return 100 << 30, 200 << 30, nil
	}
	return h.free, 200 << 30, nil
}

func (h *fakeHost) LookPath(file string) (string, error) {
	h.looked = append(h.looked, file)
	if _, ok := h.programs[file]; ok {
		if filepath.IsAbs(file) {
			return file, nil
		}
		return "/usr/bin/" + file, nil
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

func (h *fakeHost) Version(_ context.Context, bin string, _ ...string) (string, error) {
	v := h.programs[filepath.Base(bin)]
	if v == "" {
		v = h.programs[bin]
	}
	if v == "" {
		return "", errors.New("exit status 1")
	}
	return v, nil
}

func (h *fakeHost) ReadWrite(path string) error {
	switch path {
	case "/dev/net/tun":
		return h.tunErr
	case kvmPath:
		return h.kvmRWErr
	}
	return nil
}
func (h *fakeHost) Exists(path string) bool { return h.files[path] }
func (h *fakeHost) KVMDevice() error        { return h.kvmErr }
func (h *fakeHost) ReflinkSupported(string) (bool, error) {
	return h.reflink, h.reflinkErr
}
func (h *fakeHost) SSHKey(path string) (string, error) {
	if h.keyErr != nil {
		return "", h.keyErr
	}
	if fp, ok := h.keys[path]; ok {
		return fp, nil
	}
	return "", &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
}

func goodHost() *fakeHost {
	return &fakeHost{
		programs: map[string]string{
			"firecracker":        "Firecracker v1.10.1",
			"jailer":             "Jailer v1.10.1",
			"qemu-system-x86_64": "QEMU emulator version 7.2.22",
			"ip":                 "ip utility, iproute2-6.1.0",
			"mkfs.ext4":          "mke2fs 1.47.0 (5-Feb-2023)",
			"resize2fs":          "resize2fs 1.47.0",
			"debugfs":            "debugfs 1.47.0",
			"debootstrap":        "debootstrap 1.0.128",
		},
		files:   map[string]bool{"/sys/module/nf_tables": true},
		root:    true,
		users:   map[string]hypervisor.VMUser{"banger-vm": {Name: "banger-vm", UID: 999, GID: 995}},
		reflink: true,
		keys:    map[string]string{"/h/data/ssh/id_ed25519": "SHA256:abc"},
	}
}

func testConfig(mod func(*config.Config)) *config.Config {
	cfg := config.Default(config.Paths{
		ConfigFile: "/h/config/config.toml", DataDir: "/h/data", StateDir: "/h/state", RuntimeDir: "/h/run",
	}, "/home/u")
	if mod != nil {
		mod(cfg)
	}
	return cfg
}

var probeAt = time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)

func TestReportGolden(t *testing.T) {
	tests := []struct {
		name  string
		host  func() *fakeHost
		in    Inputs
		worst api.CheckStatus
	}{
		{"all-good", goodHost, Inputs{Config: testConfig(nil), ConfigFileFound: true,
			Probe: &ProbeRecord{Status: "booted", Elapsed: api.Duration(850 * time.Millisecond), At: probeAt}}, api.CheckOK},
		{"bare-host", func() *fakeHost {
			return &fakeHost{kvmErr: errors.New("open /dev/kvm: no such file or directory"),
				tunErr: &fs.PathError{Op: "open", Path: "/dev/net/tun", Err: fs.ErrNotExist}}
		}, Inputs{Config: testConfig(nil)}, api.CheckFail},
		{"nested-kvm-broken", func() *fakeHost {
			h := goodHost()
			delete(h.programs, "firecracker")
			h.reflink = false
			return h
		}, Inputs{Config: testConfig(nil), Probe: &ProbeRecord{Status: "timeout",
			Reason:  "KVM is present but a Linux guest did not reach userspace within 20s (nested virtualisation broken?)",
			Elapsed: api.Duration(20 * time.Second), At: probeAt}}, api.CheckFail},
		{"root-no-vm-user-no-seccomp", func() *fakeHost {
			h := goodHost()
			h.users = nil
			h.sandboxErr = errors.New("qemu-system-x86_64: -sandbox on: There is no option group 'sandbox'")
			return h
		}, Inputs{Config: testConfig(nil), ConfigFileFound: true,
			Probe: &ProbeRecord{Status: "booted", Elapsed: api.Duration(850 * time.Millisecond), At: probeAt}}, api.CheckFail},
		{"root-firecracker-no-jailer", func() *fakeHost {
			h := goodHost()
			delete(h.programs, "jailer")
			return h
		}, Inputs{Config: testConfig(nil), ConfigFileFound: true,
			Probe: &ProbeRecord{Status: "booted", Elapsed: api.Duration(850 * time.Millisecond), At: probeAt}}, api.CheckWarn},
		{"root-vm-user-off", func() *fakeHost { return goodHost() }, Inputs{Config: testConfig(func(c *config.Config) { c.VMUser = "" }), ConfigFileFound: true,
			Probe: &ProbeRecord{Status: "booted", Elapsed: api.Duration(850 * time.Millisecond), At: probeAt}}, api.CheckWarn},
		{"firecracker-required-missing", func() *fakeHost {
			h := goodHost()
			delete(h.programs, "firecracker")
			return h
		}, Inputs{Config: testConfig(func(c *config.Config) {
			c.Hypervisor = config.HypervisorFirecracker
			c.SSHKey = "/home/u/.ssh/id_missing"
		}), ConfigFileFound: true}, api.CheckFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Run(context.Background(), tt.host(), tt.in)
			if got := rep.Worst(); got != tt.worst {
				t.Errorf("worst = %s, want %s", got, tt.worst)
			}
			for _, c := range rep.Checks {
				if c.Status != api.CheckOK && c.Fix == "" {
					t.Errorf("check %s is %s without a fix", c.Name, c.Status)
				}
			}
			var text bytes.Buffer
			if err := WriteText(&text, rep); err != nil {
				t.Fatal(err)
			}
			js, _ := json.MarshalIndent(rep, "", "  ")
			golden(t, tt.name+".txt", text.Bytes())
			golden(t, tt.name+".json", append(js, '\n'))
		})
	}
}

// The device file alone never makes the boot check pass.
func TestKVMBootNeverOKWithoutAProbe(t *testing.T) {
	for _, p := range []*ProbeRecord{nil, {Status: "timeout", Reason: "r", At: probeAt},
		{Status: "failed", Reason: "r", At: probeAt}, {Status: "unavailable", Reason: "r", At: probeAt}} {
		if c := KVMBootCheck(p); c.Status == api.CheckOK {
			t.Errorf("probe %+v reported ok", p)
		}
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got); run with -update if intended:\n%s", path, diff)
	}
}

func TestImagesCheck(t *testing.T) {
	tests := []struct {
		name     string
		count    int
		problems []ImageProblem
		want     api.CheckStatus
		detail   string
	}{
		{"none", 0, nil, api.CheckWarn, "no images yet"},
		{"healthy", 2, nil, api.CheckOK, "2 image(s)"},
		{"broken", 2, []ImageProblem{{Image: "base", Detail: "rootfs is missing", Fix: "remove the image"}}, api.CheckWarn, "base: rootfs is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ImagesCheck(tt.count, tt.problems, false)
			if c.Status != tt.want || !bytes.Contains([]byte(c.Detail), []byte(tt.detail)) {
				t.Errorf("got %+v", c)
			}
			if c.Status != api.CheckOK && c.Fix == "" {
				t.Error("no fix")
			}
		})
	}
}

func TestFirecrackerImageCheck(t *testing.T) {
	k := api.KernelInfo{Release: "6.1", Firecracker: true, FirecrackerMinVersion: "1.8", FirecrackerReason: "ACPI"}
	tests := []struct {
		name, image, fc string
		k               api.KernelInfo
		want            api.CheckStatus
	}{
		{"no image", "", "", k, api.CheckSkip},
		{"suits", "base", "1.10.1", k, api.CheckOK},
		{"too old", "base", "1.7.0", k, api.CheckWarn},
		{"unsuitable", "base", "1.10.1", api.KernelInfo{Release: "6.1", FirecrackerReason: "no virtio-mmio"}, api.CheckWarn},
	}
	for _, tt := range tests {
		if c := FirecrackerImageCheck(tt.image, tt.k, tt.fc); c.Status != tt.want || (c.Status != api.CheckOK && c.Fix == "") {
			t.Errorf("%s: %+v", tt.name, c)
		}
	}
}

// The state directory's filesystem must hold one more default VM (its
// disks plus 1 GiB); less is a warning with the fix, an unreadable one a
// skip.
func TestDiskSpaceCheck(t *testing.T) {
	cfg := testConfig(nil) // default disk 8 GiB: 9 GiB needed
	tests := []struct {
		name   string
		free   uint64
		fsErr  bool
		status api.CheckStatus
		detail string
	}{
		{"plenty", 100 << 30, false, api.CheckOK, "100.0 GiB free of 200.0 GiB on the filesystem of /h/state"},
		{"just enough", 9 << 30, false, api.CheckOK, "9.0 GiB free"},
		{"too little", 9<<30 - 1, false, api.CheckWarn, "less than one default VM's disks need (9.0 GiB)"},
		{"unreadable", 0, true, api.CheckSkip, "cannot read the free space of /h/state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Host = &fakeHost{free: tt.free}
			if tt.fsErr {
				h = statfsFails{h}
			}
			c := diskSpaceCheck(h, cfg)
			if c.Name != CheckDiskSpace || c.Status != tt.status || !strings.Contains(c.Detail, tt.detail) {
				t.Errorf("got %s %s %q, want %s containing %q", c.Name, c.Status, c.Detail, tt.status, tt.detail)
			}
			if c.Status != api.CheckOK && c.Fix == "" {
				t.Errorf("a %s without a fix", c.Status)
			}
		})
	}
}

type statfsFails struct{ Host }

func (statfsFails) FreeSpace(string) (uint64, uint64, error) {
	return 0, 0, errors.New("statfs /h/state: no such file or directory")
}

// The real statfs answers for a directory that exists.
func TestSystemFreeSpace(t *testing.T) {
	free, total, err := System{}.FreeSpace(t.TempDir())
	if err != nil || total == 0 || free > total {
		t.Errorf("FreeSpace: free %d total %d err %v", free, total, err)
	}
}
