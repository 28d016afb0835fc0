package firecracker

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker/fctest"
)

// selfHandle is a handle for a stand-in running in this process.
func selfHandle(t *testing.T, sock string) hypervisor.Handle {
	t.Helper()
	st, err := hypervisor.ProcessStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return hypervisor.Handle{Driver: DriverName, PID: os.Getpid(), StartTime: st, ControlSocket: sock}
}

// Pause, snapshot, resume: the requests pass the stand-in's checks and the
// state follows.
func TestPauseSnapshotResume(t *testing.T) {
	srv, api, _ := bootInProcess(t, fctest.Config{})
	h := selfHandle(t, api.socket)
	d := &Driver{}
	ctx := context.Background()
	if err := d.Pause(ctx, h); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if st, err := d.Status(ctx, h); err != nil || st != hypervisor.Paused {
		t.Errorf("Status after Pause = %q, %v", st, err)
	}
	dir := filepath.Dir(api.socket)
	p := SnapshotCreateParams{SnapshotPath: filepath.Join(dir, "state"), MemFilePath: filepath.Join(dir, "mem"), Type: FullSnapshot}
	if err := d.CreateSnapshot(ctx, h, p); err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	for _, f := range []string{p.SnapshotPath, p.MemFilePath} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("snapshot file: %v", err)
		}
	}
	if err := d.Resume(ctx, h); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if st, err := d.Status(ctx, h); err != nil || st != hypervisor.Running {
		t.Errorf("Status after Resume = %q, %v", st, err)
	}
	// Firecracker refuses a snapshot of a running microVM.
	err := d.CreateSnapshot(ctx, h, p)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !strings.Contains(err.Error(), "must be paused") {
		t.Errorf("CreateSnapshot of a running VM = %v", err)
	}
	if err := d.CreateSnapshot(ctx, h, SnapshotCreateParams{SnapshotPath: "x", MemFilePath: "y", Type: "Half"}); err == nil {
		t.Error("an unknown snapshot type was sent")
	}
	for _, r := range srv.Requests() {
		if r.Status >= 300 && r.Path != "/snapshot/create" {
			t.Errorf("refused: %+v", r)
		}
	}
}

// LoadSnapshot sends what the running release knows.
func TestLoadSnapshot(t *testing.T) {
	tests := []struct {
		version string
		params  func(dir string) SnapshotLoadParams
		want    func(dir string) map[string]any
		wantErr string
	}{
		{"1.16.1", func(dir string) SnapshotLoadParams {
			return SnapshotLoadParams{SnapshotPath: dir + "/state", MemFilePath: dir + "/mem", ResumeVM: true, TrackDirtyPages: true,
				NetworkOverrides: []NetworkOverride{{IfaceID: "eth0", HostDevName: "tap-pool-7"}}, VsockOverride: dir + "/v2.sock"}
		}, func(dir string) map[string]any {
			return map[string]any{
				"snapshot_path": dir + "/state", "mem_backend": map[string]any{"backend_type": "File", "backend_path": dir + "/mem"},
				"resume_vm": true, "track_dirty_pages": true,
				"network_overrides": []any{map[string]any{"iface_id": "eth0", "host_dev_name": "tap-pool-7"}},
				"vsock_override":    map[string]any{"uds_path": dir + "/v2.sock"},
			}
		}, ""},
		{"1.12.1", func(dir string) SnapshotLoadParams {
			return SnapshotLoadParams{SnapshotPath: dir + "/state", MemFilePath: dir + "/mem", TrackDirtyPages: true}
		}, func(dir string) map[string]any {
			return map[string]any{
				"snapshot_path": dir + "/state", "mem_backend": map[string]any{"backend_type": "File", "backend_path": dir + "/mem"},
				"enable_diff_snapshots": true, "resume_vm": false,
			}
		}, ""},
		{"1.11.0", func(dir string) SnapshotLoadParams {
			return SnapshotLoadParams{SnapshotPath: dir + "/state", MemFilePath: dir + "/mem", NetworkOverrides: []NetworkOverride{{IfaceID: "eth0", HostDevName: "tap1"}}}
		}, nil, "network overrides need Firecracker v1.12.0 or newer, this is v1.11.0"},
		{"1.15.1", func(dir string) SnapshotLoadParams {
			return SnapshotLoadParams{SnapshotPath: dir + "/state", MemFilePath: dir + "/mem", VsockOverride: dir + "/v2.sock"}
		}, nil, "a vsock override needs Firecracker v1.16.0 or newer"},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			srv, sock := fctest.Start(t, fctest.Config{Version: tt.version})
			dir := filepath.Dir(sock)
			saveStandIn(t, tt.version, dir)
			h := selfHandle(t, sock)
			err := (&Driver{}).LoadSnapshot(context.Background(), h, tt.params(dir))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("LoadSnapshot = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadSnapshot: %v", err)
			}
			reqs := srv.Requests()
			last := reqs[len(reqs)-1]
			var got map[string]any
			json.Unmarshal([]byte(last.Body), &got)
			if last.Path != "/snapshot/load" || last.Status != 204 {
				t.Errorf("last request %+v", last)
			}
			if diff := cmp.Diff(tt.want(dir), got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// saveStandIn boots a stand-in of version with a NIC (eth0) and a vsock
// device, and saves it into dir/state and dir/mem; then the stand-in is
// gone, as a saved VM's Firecracker is.
func saveStandIn(t *testing.T, version, dir string) {
	t.Helper()
	srv, sock := fctest.Start(t, fctest.Config{Version: version})
	sdir := filepath.Dir(sock)
	kernel := filepath.Join(sdir, "vmlinux")
	os.WriteFile(kernel, nil, 0o600)
	api := &apiClient{socket: sock}
	ctx := context.Background()
	for _, c := range []call{
		{"", "PUT", "/boot-source", bootSourceBody{KernelImagePath: kernel, BootArgs: "console=ttyS0"}},
		{"", "PUT", "/network-interfaces/eth0", networkInterfaceBody{IfaceID: "eth0", HostDevName: "tap-saved"}},
		{"", "PUT", "/vsock", vsockBody{GuestCID: GuestCID, UDSPath: filepath.Join(sdir, VsockSocket)}},
		{"", "PUT", "/actions", actionBody{ActionType: "InstanceStart"}},
		{"", "PATCH", "/vm", vmStateBody{State: "Paused"}},
		{"", "PUT", "/snapshot/create", snapshotCreateBody{SnapshotType: "Full", SnapshotPath: filepath.Join(dir, "state"), MemFilePath: filepath.Join(dir, "mem")}},
	} {
		if err := api.do(ctx, c.Method, c.Path, c.Body, nil); err != nil {
			t.Fatalf("%s %s: %v", c.Method, c.Path, err)
		}
	}
	srv.Close()
	os.Remove(filepath.Join(sdir, VsockSocket))
}
