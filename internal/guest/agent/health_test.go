package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
)

const guestMountinfo = `21 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
22 21 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
23 21 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
24 21 0:5 / /dev rw,nosuid shared:8 - devtmpfs devtmpfs rw,size=496k,nr_inodes=124k,mode=755
40 21 254:16 / /root rw,relatime shared:20 - ext4 /dev/vdb rw
41 21 0:30 / /mnt/with\040space rw - tmpfs my\134src rw
`

func TestParseMountinfo(t *testing.T) {
	got, err := parseMountinfo(strings.NewReader(guestMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{"/", "ext4", "/dev/vda"},
		{"/proc", "proc", "proc"},
		{"/sys", "sysfs", "sysfs"},
		{"/dev", "devtmpfs", "devtmpfs"},
		{"/root", "ext4", "/dev/vdb"},
		{"/mnt/with space", "tmpfs", `my\src`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}

	lines := []struct {
		name    string
		line    string
		wantErr bool
	}{
		{"no source", "21 1 254:0 / / rw - ext4\n", true},
		{"no separator", "21 1 254:0 / / rw shared:1 ext4 x y\n", true},
		{"short", "21 1\n", true},
		{"separator where the options belong", "21 1 254:0 / / - ext4 /dev/vda rw\n", true},
		{"several optional fields", "21 1 254:0 / / rw a b c - ext4 /dev/v\n", false},
	}
	for _, tt := range lines {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseMountinfo(strings.NewReader(tt.line))
			if (err != nil) != tt.wantErr {
				t.Errorf("parseMountinfo(%q): error = %v, want error: %v", tt.line, err, tt.wantErr)
			}
		})
	}
}

func TestHealthReporter(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
	tests := []struct {
		name      string
		mountinfo string
		want      agentproto.Health
	}{
		{
			name:      "work disk mounted at /root",
			mountinfo: guestMountinfo,
			want: agentproto.Health{
				Protocol: agentproto.Version, AgentVersion: "v1.2.3", BuildID: "b1d",
				Hostname: "quiet-otter", Kernel: "6.1.0-56-cloud-amd64", UptimeMS: 4321,
				Root: "ext4", RootMount: "/dev/vdb", Time: now.UTC(),
			},
		},
		{
			name:      "no /root mount; / overmounted",
			mountinfo: "1 0 0:1 / / rw - rootfs rootfs rw\n21 1 254:0 / / rw - xfs /dev/vda rw\n",
			want: agentproto.Health{
				Protocol: agentproto.Version, AgentVersion: "v1.2.3", BuildID: "b1d",
				Hostname: "quiet-otter", Kernel: "6.1.0-56-cloud-amd64", UptimeMS: 4321,
				Root: "xfs", RootMount: "", Time: now.UTC(),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := t.TempDir()
			if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(proc, "self", "mountinfo"), []byte(tt.mountinfo), 0o644); err != nil {
				t.Fatal(err)
			}
			r := &healthReporter{
				procDir:  proc,
				build:    buildinfo.Info{Version: "v1.2.3", BuildID: "b1d"},
				now:      func() time.Time { return now },
				uptime:   func() (time.Duration, error) { return 4321*time.Millisecond + 999*time.Microsecond, nil },
				hostname: func() (string, error) { return "quiet-otter", nil },
				release:  func() (string, error) { return "6.1.0-56-cloud-amd64", nil },
			}
			got, err := r.Health(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("health (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHealthReporterReal reads this machine's real values.
func TestHealthReporterReal(t *testing.T) {
	got, err := newHealthReporter().Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release, _ := kernelRelease()
	host, _ := os.Hostname()
	if got.Kernel != release || got.Hostname != host || got.UptimeMS <= 0 || got.Root == "" || got.Protocol != agentproto.Version {
		t.Errorf("health = %+v", got)
	}
}
