package firecracker

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/Masterminds/semver/v3"
	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// The API calls snapshots are made of (docs/snapshotting/snapshot-support.md):
// pause and resume a running microVM, write a snapshot of a paused one,
// and load one into a fresh Firecracker. Save and Restore
// (snapshotter.go) put them together as hypervisor.Snapshotter; Resume is
// that interface's too.

// Pause pauses the microVM's vCPUs (PATCH /vm {"state": "Paused"}).
func (d *Driver) Pause(ctx context.Context, h hypervisor.Handle) error {
	return d.setVMState(ctx, h, "Paused")
}

// Resume resumes a paused microVM (PATCH /vm {"state": "Resumed"}): one
// Save left paused, or one Restore loaded.
func (d *Driver) Resume(ctx context.Context, h hypervisor.Handle) error {
	return d.setVMState(ctx, h, "Resumed")
}

func (d *Driver) setVMState(ctx context.Context, h hypervisor.Handle, state string) error {
	if err := d.api(h).do(ctx, http.MethodPatch, "/vm", vmStateBody{State: state}, nil); err != nil {
		return fmt.Errorf("firecracker: setting the VM of pid %d %s: %w", h.PID, state, err)
	}
	return nil
}

type vmStateBody struct {
	State string `json:"state"`
}

func (d *Driver) api(h hypervisor.Handle) *apiClient {
	return &apiClient{socket: h.ControlSocket, pid: h.PID}
}

// SnapshotType is a full snapshot (all guest memory) or a diff snapshot
// (the memory dirtied since the last one; needs dirty page tracking).
type SnapshotType string

const (
	FullSnapshot SnapshotType = "Full"
	DiffSnapshot SnapshotType = "Diff"
)

// SnapshotCreateParams says where to write a snapshot. The paths are as
// Firecracker sees them (inside the chroot when jailed).
type SnapshotCreateParams struct {
	// SnapshotPath receives the microVM state.
	SnapshotPath string
	// MemFilePath receives the guest memory.
	MemFilePath string
	// Type is FullSnapshot when empty.
	Type SnapshotType
}

type snapshotCreateBody struct {
	SnapshotType string `json:"snapshot_type,omitempty"`
	SnapshotPath string `json:"snapshot_path"`
	MemFilePath  string `json:"mem_file_path"`
}

// CreateSnapshot writes a snapshot of a paused microVM (PUT
// /snapshot/create); Pause it first.
func (d *Driver) CreateSnapshot(ctx context.Context, h hypervisor.Handle, p SnapshotCreateParams) error {
	if p.SnapshotPath == "" || p.MemFilePath == "" {
		return errors.New("firecracker: creating a snapshot: both the state and the memory file paths are needed")
	}
	switch p.Type {
	case "", FullSnapshot, DiffSnapshot:
	default:
		return fmt.Errorf("firecracker: creating a snapshot: unknown snapshot type %q: use %q or %q", p.Type, FullSnapshot, DiffSnapshot)
	}
	body := snapshotCreateBody{SnapshotType: string(p.Type), SnapshotPath: p.SnapshotPath, MemFilePath: p.MemFilePath}
	if err := d.api(h).do(ctx, http.MethodPut, "/snapshot/create", body, nil); err != nil {
		return fmt.Errorf("firecracker: creating a snapshot of pid %d: %w", h.PID, err)
	}
	return nil
}

// NetworkOverride gives a restored network interface another TAP device.
type NetworkOverride struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
}

// SnapshotLoadParams says which snapshot to load and how. The paths are as
// Firecracker sees them.
type SnapshotLoadParams struct {
	SnapshotPath string
	// MemFilePath is the guest memory file (a File memory backend).
	MemFilePath string
	// ResumeVM resumes the microVM once loaded; else it stays paused.
	ResumeVM bool
	// TrackDirtyPages enables dirty page tracking, for diff snapshots.
	TrackDirtyPages bool
	// NetworkOverrides need Firecracker NetworkOverridesSince or newer.
	NetworkOverrides []NetworkOverride
	// VsockOverride is a new uds_path for the vsock device; it needs
	// Firecracker VsockOverrideSince or newer.
	VsockOverride string
}

type memBackendBody struct {
	BackendType string `json:"backend_type"`
	BackendPath string `json:"backend_path"`
}

type vsockOverrideBody struct {
	UDSPath string `json:"uds_path"`
}

// snapshotLoadBody has the fields of every release: the driver fills only
// those of the release it talks to (loadSnapshotBody).
type snapshotLoadBody struct {
	SnapshotPath        string             `json:"snapshot_path"`
	MemBackend          memBackendBody     `json:"mem_backend"`
	ResumeVM            bool               `json:"resume_vm"`
	TrackDirtyPages     bool               `json:"track_dirty_pages,omitempty"`
	EnableDiffSnapshots bool               `json:"enable_diff_snapshots,omitempty"`
	NetworkOverrides    []NetworkOverride  `json:"network_overrides,omitempty"`
	VsockOverride       *vsockOverrideBody `json:"vsock_override,omitempty"`
}

// loadSnapshotBody turns p into the request body for release v, refusing
// what v does not have.
func loadSnapshotBody(p SnapshotLoadParams, v *semver.Version) (snapshotLoadBody, error) {
	if p.SnapshotPath == "" || p.MemFilePath == "" {
		return snapshotLoadBody{}, errors.New("both the state and the memory file paths are needed")
	}
	b := snapshotLoadBody{
		SnapshotPath: p.SnapshotPath,
		MemBackend:   memBackendBody{BackendType: "File", BackendPath: p.MemFilePath},
		ResumeVM:     p.ResumeVM,
	}
	if p.TrackDirtyPages {
		if v.GreaterThanEqual(TrackDirtyPagesOnLoadSince) {
			b.TrackDirtyPages = true
		} else {
			b.EnableDiffSnapshots = true // its name before v1.13.0
		}
	}
	if len(p.NetworkOverrides) > 0 {
		if v.LessThan(NetworkOverridesSince) {
			return snapshotLoadBody{}, fmt.Errorf("network overrides need Firecracker v%s or newer, this is v%s", NetworkOverridesSince, v)
		}
		b.NetworkOverrides = p.NetworkOverrides
	}
	if p.VsockOverride != "" {
		if v.LessThan(VsockOverrideSince) {
			return snapshotLoadBody{}, fmt.Errorf("a vsock override needs Firecracker v%s or newer, this is v%s", VsockOverrideSince, v)
		}
		b.VsockOverride = &vsockOverrideBody{UDSPath: p.VsockOverride}
	}
	return b, nil
}

// LoadSnapshot loads a snapshot (PUT /snapshot/load) into the Firecracker
// at h, which must be fresh: nothing configured but the logger and
// metrics.
func (d *Driver) LoadSnapshot(ctx context.Context, h hypervisor.Handle, p SnapshotLoadParams) error {
	v, err := d.runningVersion(ctx, h)
	if err != nil {
		return fmt.Errorf("firecracker: loading a snapshot into pid %d: %w", h.PID, err)
	}
	body, err := loadSnapshotBody(p, v)
	if err != nil {
		return fmt.Errorf("firecracker: loading a snapshot: %w", err)
	}
	if err := d.api(h).do(ctx, http.MethodPut, "/snapshot/load", body, nil); err != nil {
		return fmt.Errorf("firecracker: loading a snapshot into pid %d: %w", h.PID, err)
	}
	return nil
}

// runningVersion asks the Firecracker at h for its release (vmm_version in
// GET /): the binary on disk may have been upgraded since it started.
func (d *Driver) runningVersion(ctx context.Context, h hypervisor.Handle) (*semver.Version, error) {
	info, err := d.api(h).instanceInfo(ctx)
	if err != nil {
		return nil, err
	}
	v, err := ParseVersion(info.VMMVersion)
	if err != nil {
		return nil, fmt.Errorf("GET / answered vmm_version %q: %w", info.VMMVersion, err)
	}
	return v, nil
}
