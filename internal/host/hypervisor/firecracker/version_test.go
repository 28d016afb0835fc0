package firecracker

import (
	"context"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker/fctest"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    string // "" when an error is wanted
		wantErr bool
	}{
		{in: "Firecracker v1.10.1\n\n", want: "1.10.1"},
		{in: "Firecracker v1.4.1\n\nSupported snapshot data format versions: v1.0.0\n", want: "1.4.1"},
		{in: "Firecracker v1.17.0-dev\n", want: "1.17.0-dev"},
		{in: "v1.2.0", want: "1.2.0"},
		{in: "1.13.2", want: "1.13.2"},
		{in: "Firecracker 1.x", wantErr: true},
		{in: "qemu-system-x86_64 version 7.2.0", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if (err != nil) != tt.wantErr || err == nil && got.String() != tt.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v (error %t)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestVersionGates pins how each version gate of the driver reads a
// release, pre-releases included: a pre-release is older than its release
// (semver precedence), so 1.13.0-dev still gets pci=off and 1.4.0-dev no
// entropy device.
func TestVersionGates(t *testing.T) {
	tests := []struct {
		version           string
		refused           bool // older than MinVersion
		entropy           bool // PUT /entropy sent
		pciOff            bool // pci=off added to the command line
		trackDirtyOnLoad  bool // track_dirty_pages rather than enable_diff_snapshots
		networkOverrides  bool
		vsockOverrideOnLd bool
	}{
		{version: "0.25.2", refused: true, pciOff: true},
		{version: "1.1.0-dev", refused: true, pciOff: true},
		{version: "1.1.0", pciOff: true},
		{version: "1.4.0-dev", pciOff: true},
		{version: "1.4.0", entropy: true, pciOff: true},
		{version: "1.10.0-dev", entropy: true, pciOff: true},
		{version: "1.12.0", entropy: true, pciOff: true, networkOverrides: true},
		{version: "1.13.0-dev", entropy: true, pciOff: true, networkOverrides: true},
		{version: "1.13.0", entropy: true, trackDirtyOnLoad: true, networkOverrides: true},
		{version: "1.16.0-dev", entropy: true, trackDirtyOnLoad: true, networkOverrides: true},
		{version: "1.16.0", entropy: true, trackDirtyOnLoad: true, networkOverrides: true, vsockOverrideOnLd: true},
		{version: "2.0.0", entropy: true, trackDirtyOnLoad: true, networkOverrides: true, vsockOverrideOnLd: true},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			v, err := ParseVersion("Firecracker v" + tt.version)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkVersion("fc", v); (err != nil) != tt.refused {
				t.Errorf("checkVersion = %v, want refused %t", err, tt.refused)
			}
			entropy := false
			for _, c := range launchCalls(hypervisor.Spec{VCPUs: 1, MemoryMiB: 128}, fcPaths{}, v) {
				entropy = entropy || c.Path == "/entropy"
			}
			if entropy != tt.entropy {
				t.Errorf("PUT /entropy sent = %t, want %t", entropy, tt.entropy)
			}
			if got := strings.Contains(BootArgs("", v), "pci=off"); got != tt.pciOff {
				t.Errorf("pci=off = %t, want %t", got, tt.pciOff)
			}
			b, err := loadSnapshotBody(SnapshotLoadParams{SnapshotPath: "s", MemFilePath: "m", TrackDirtyPages: true}, v)
			if err != nil || b.TrackDirtyPages != tt.trackDirtyOnLoad || b.EnableDiffSnapshots == tt.trackDirtyOnLoad {
				t.Errorf("load body = %+v, %v; want track_dirty_pages %t", b, err, tt.trackDirtyOnLoad)
			}
			_, err = loadSnapshotBody(SnapshotLoadParams{SnapshotPath: "s", MemFilePath: "m", NetworkOverrides: []NetworkOverride{{IfaceID: "eth0", HostDevName: "tap0"}}}, v)
			if (err == nil) != tt.networkOverrides {
				t.Errorf("network overrides: %v, want accepted %t", err, tt.networkOverrides)
			}
			_, err = loadSnapshotBody(SnapshotLoadParams{SnapshotPath: "s", MemFilePath: "m", VsockOverride: "v.sock"}, v)
			if (err == nil) != tt.vsockOverrideOnLd {
				t.Errorf("vsock override: %v, want accepted %t", err, tt.vsockOverrideOnLd)
			}
		})
	}
}

func TestVersionRunsTheBinary(t *testing.T) {
	bin := fctest.FakeBinary(t, fctest.Config{Version: "1.12.1"})
	v, err := Version(context.Background(), bin)
	if err != nil || !v.Equal(semver.New(1, 12, 1, "", "")) {
		t.Errorf("Version = %v, %v", v, err)
	}
	if _, err := Version(context.Background(), "/bin/false"); err == nil {
		t.Error("Version of /bin/false succeeded")
	}
	if _, err := New("/nonexistent/firecracker", nil); err == nil || !strings.Contains(err.Error(), "install Firecracker") {
		t.Errorf("New with a missing binary = %v", err)
	}
}
