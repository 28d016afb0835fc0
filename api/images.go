package api

import "time"

// Image states.
const (
	// ImageReady: every artifact lives in banger's image store.
	ImageReady = "ready"
	// ImageUnmanaged: registered with --link, its artifacts are outside
	// files; `banger image promote` copies them in.
	ImageUnmanaged = "unmanaged"
)

// Artifact is one file (or, for modules, a directory tree) of an image's
// boot set, with its content digest.
type Artifact struct {
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Probe is a readiness check VM create waits for, run inside the guest.
type Probe struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // "tcp"
	Port int    `json:"port"`
}

// Service is a default service of the image.
type Service struct {
	Name string `json:"name"`
	Port int    `json:"port,omitempty"`
}

// KernelInfo records what kernel staging found out about the kernel.
type KernelInfo struct {
	Release           string   `json:"release"`
	Compression       string   `json:"compression,omitempty"`
	Modules           []string `json:"modules,omitempty"`
	ConfigKnown       bool     `json:"config_known"`
	Firecracker       bool     `json:"firecracker"`
	FirecrackerReason string   `json:"firecracker_reason,omitempty"`
	// FirecrackerMinVersion is the oldest Firecracker that finds this
	// kernel's devices ("" when any does).
	FirecrackerMinVersion string `json:"firecracker_min_version,omitempty"`
	QEMU                  bool   `json:"qemu"`
	QEMUReason            string `json:"qemu_reason,omitempty"`
}

// Image is a managed image as the API shows it.
type Image struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	State        string     `json:"state"`
	Distro       string     `json:"distro,omitempty"`
	Suite        string     `json:"suite,omitempty"`
	Libc         string     `json:"libc,omitempty"`
	AgentVersion string     `json:"agent_version,omitempty"`
	Parent       string     `json:"parent,omitempty"`
	Source       string     `json:"source,omitempty"`
	Fingerprint  string     `json:"fingerprint"`
	Kernel       KernelInfo `json:"kernel"`
	Services     []Service  `json:"services,omitempty"`
	Probes       []Probe    `json:"probes,omitempty"`
	Provisioning []string   `json:"provisioning,omitempty"`
	Artifacts    []Artifact `json:"artifacts"`
	UsedBy       []string   `json:"used_by,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	HealedAt     time.Time  `json:"healed_at,omitzero"`
	// Warm lists the image's warm snapshots: VMs of these shapes are
	// created by restoring one instead of booting.
	Warm []WarmSnapshot `json:"warm,omitempty"`
}

// WarmSnapshot is an image's saved VM, booted to readiness once, that
// `banger vm create` restores for a VM of its shape.
type WarmSnapshot struct {
	Hypervisor string    `json:"hypervisor"`
	Accel      string    `json:"accel,omitempty"`
	VCPUs      int       `json:"vcpus"`
	MemoryMiB  int       `json:"memory_mib"`
	DiskBytes  int64     `json:"disk_bytes"`
	Bytes      int64     `json:"bytes"` // state and disks on the host's disk
	CreatedAt  time.Time `json:"created_at"`
}

// WarmImageRequest asks to warm an image for VMs of one shape; zero
// values take the configured defaults, as for a create.
type WarmImageRequest struct {
	VCPUs      int    `json:"vcpus,omitempty"`
	MemoryMiB  int    `json:"memory_mib,omitempty"`
	DiskBytes  int64  `json:"disk_bytes,omitempty"`
	Hypervisor string `json:"hypervisor,omitempty"`
}

// ImageList is the answer to GET /v1/images.
type ImageList struct {
	Images []Image `json:"images"`
}

// RegisterImageRequest registers artifacts the user already has. Paths are
// absolute paths on the daemon's host.
type RegisterImageRequest struct {
	Name     string `json:"name"`
	Kernel   string `json:"kernel"`
	Initrd   string `json:"initrd,omitempty"`
	Modules  string `json:"modules,omitempty"`
	Rootfs   string `json:"rootfs"`
	WorkSeed string `json:"work_seed,omitempty"`
	// Link records the files where they are instead of copying them; the
	// image stays unmanaged until promoted.
	Link bool `json:"link,omitempty"`
}

// BootstrapImageRequest builds a base image from nothing.
type BootstrapImageRequest struct {
	Distro string `json:"distro"`
	Suite  string `json:"suite,omitempty"`
	Name   string `json:"name,omitempty"`
	Mirror string `json:"mirror,omitempty"`
}

// BuildImageRequest derives an image from a registered one.
type BuildImageRequest struct {
	From     string   `json:"from"`
	Name     string   `json:"name"`
	Presets  []string `json:"presets,omitempty"`
	Packages []string `json:"packages,omitempty"`
	// Script is the content of a shell script run in the image (as root,
	// with /bin/sh); ScriptName is its file name for the record.
	Script     string `json:"script,omitempty"`
	ScriptName string `json:"script_name,omitempty"`
}
