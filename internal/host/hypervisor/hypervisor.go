// Package hypervisor defines what banger needs from a hypervisor, as small
// interfaces that every driver (qemu, firecracker) implements, plus the
// identity that lets a restarted daemon re-adopt a running VM, and the
// machinery both drivers share so that each keeps only its arguments and
// its control calls: the process supervisor (Start, Process: launch in a
// session of its own, reaping, waiting for the control socket, aborting a
// failed launch; process.go), the halves of Status, Adopt, Shutdown and
// Kill that do not talk to the hypervisor (adopt.go, keeper.go), the
// console log bounds (trimlog.go, LogKeeper) and the VM user (vmuser.go).
// The conformance suite in hvtest runs against every driver.
package hypervisor

import (
	"context"
	"errors"
	"net"
)

// Disk is a block device given to the guest, in order: the first is the
// root filesystem (/dev/vda), the second the work disk (/dev/vdb).
type Disk struct {
	ID   string // short name: "root", "work"
	Path string // raw image file
	// ReadOnly attaches the disk read-only, so that several VMs may share
	// one file at once (an image's root filesystem): the guest sees a
	// read-only device (/sys/block/vdX/ro is 1; writes fail with an I/O
	// error) and the host file is only ever opened O_RDONLY, so no guest
	// can change it. QEMU: the file is opened read-only (by the daemon,
	// when QEMU runs as the VM user) and the drive has readonly=on; QEMU's
	// image locking lets any number of read-only users share the file and
	// refuses a read-write user while one holds it, and the reverse.
	// Firecracker: the drive has is_read_only; Firecracker takes no lock.
	// Under the jailer the file is hard-linked into the chroot (never
	// copied), must be the daemon's user's, and readable but not writable
	// by the jailed user by its mode; the driver refuses it otherwise.
	ReadOnly bool
}

// NIC attaches the guest's eth0 to a host TAP device.
type NIC struct {
	TAP string // an existing, up TAP device the daemon owns
	MAC string // guest MAC, derived from the lease
}

// Boot is the guest kernel and its command line.
type Boot struct {
	Vmlinux string // uncompressed ELF (Firecracker; QEMU microvm)
	Vmlinuz string // compressed bzImage (QEMU q35)
	Initrd  string
	// Cmdline is banger's part of the kernel command line (root=, banger.ip=,
	// ...). Drivers add their console and panic settings.
	Cmdline string
}

// Spec is everything a driver needs to launch one VM.
type Spec struct {
	ID        string // VM id; unique, stable
	Name      string
	Dir       string // the VM's runtime directory: sockets, pid, console log live here
	VCPUs     int
	MemoryMiB int
	Boot      Boot
	Disks     []Disk
	NIC       *NIC // nil: no network
	// ConsoleLimit bounds the serial console log in bytes.
	ConsoleLimit int64
	// Accel overrides the driver's accelerator for this VM ("kvm" or
	// "tcg"); "" keeps the driver's. The caller decides it from the KVM
	// boot probe.
	Accel string
}

// AgentTransport says how the host reaches the guest agent.
type AgentTransport string

const (
	// AgentSerial: a virtio-serial port named "banger.agent", exposed on
	// the host as a unix socket (QEMU chardev).
	AgentSerial AgentTransport = "virtio-serial"
	// AgentVsock: AF_VSOCK to the guest's CID (QEMU vhost-vsock).
	AgentVsock AgentTransport = "vsock"
	// AgentHybridVsock: Firecracker's unix socket with a CONNECT handshake.
	AgentHybridVsock AgentTransport = "hybrid-vsock"
)

// Handle identifies a launched VM's hypervisor process. It is stored with
// the VM so a restarted daemon can find, verify and control the process.
type Handle struct {
	Driver string `json:"driver"`
	PID    int    `json:"pid"`
	// StartTime is the process start time (clock ticks since boot, from
	// /proc/PID/stat): with PID it identifies the process even after the
	// PID was reused.
	StartTime     uint64         `json:"start_time"`
	ControlSocket string         `json:"control_socket"` // QMP or Firecracker API
	Agent         AgentTransport `json:"agent"`
	AgentSocket   string         `json:"agent_socket,omitempty"`
	AgentCID      uint32         `json:"agent_cid,omitempty"`
	ConsoleLog    string         `json:"console_log"`
	// ConsoleLimit is Spec.ConsoleLimit, kept so that a driver that adopts
	// the VM after a daemon restart keeps bounding ConsoleLog.
	ConsoleLimit int64 `json:"console_limit,omitempty"`
	// Accel is how the guest runs: "kvm" or "tcg" (software emulation).
	Accel string `json:"accel,omitempty"`
}

// State is what a driver knows of a VM's process.
type State string

const (
	Running State = "running"
	Paused  State = "paused"
	Stopped State = "stopped" // the process is gone
)

// ErrNotOurs means the process at a Handle's PID is not the VM's process
// (it exited and the PID was reused, or its control socket does not answer).
var ErrNotOurs = errors.New("process is not this VM's hypervisor")

// Launcher starts VMs. Launch returns once the hypervisor process runs and
// its control socket answers; it does not wait for the guest to boot. On
// error nothing is left running and no socket is left behind.
type Launcher interface {
	Launch(ctx context.Context, spec Spec) (Handle, error)
}

// Controller manages a launched VM through its Handle.
type Controller interface {
	// Status asks the hypervisor; a process that is gone is Stopped.
	Status(ctx context.Context, h Handle) (State, error)
	// Shutdown asks the guest to power off (ACPI / Ctrl-Alt-Del) and waits
	// until the process exits or ctx ends; then it kills the process. It
	// removes the VM's sockets.
	Shutdown(ctx context.Context, h Handle) error
	// Kill stops the process at once and removes the VM's sockets.
	Kill(h Handle) error
	// Adopt verifies that the process at h is still this VM's hypervisor:
	// the PID is alive with the recorded start time and the control socket
	// answers. It returns ErrNotOurs (wrapped) otherwise.
	Adopt(ctx context.Context, h Handle) error
}

// AgentDialer opens a stream to the guest agent.
type AgentDialer interface {
	DialAgent(ctx context.Context, h Handle) (net.Conn, error)
}

// Snapshotter is a driver that saves a running VM's whole state (devices
// and memory) to files and launches VMs from such a state: pause to disk
// and resume, warm create from an image's snapshot, fork. Both drivers
// implement it (QEMU: migration to and from a file descriptor; Firecracker:
// PUT /snapshot/create and /snapshot/load).
//
// A saved state is only valid with the disks exactly as they were when it
// was saved: the caller keeps the disks untouched (or clones them) until a
// VM restored from it runs, and never restores it twice onto the same
// disks once one ran.
type Snapshotter interface {
	// Save stops the VM's vCPUs and writes its state into dir (an empty
	// directory the caller made; the driver names the files in it),
	// flushing the VM's disks first, so that the disk files and the state
	// together are the VM at one instant. The VM stays paused, whether
	// Save succeeds or fails. After a Save that succeeded the caller only
	// ends the hypervisor (Kill) and restores the state where the VM must
	// run on: the hypervisor may have handed the disks over to the state
	// (QEMU inactivates them), so it cannot always take them back. After
	// a failed Save, Resume runs the VM on.
	Save(ctx context.Context, h Handle, dir string) (Saved, error)
	// Restore launches a VM for spec from the state Save wrote in dir
	// instead of booting spec.Boot, and returns once the state is loaded,
	// with the vCPUs still paused: the caller records the handle, then
	// Resumes it. spec has the saved VM's shape (vCPUs, memory, the same
	// disks in the same order, of the same sizes, a NIC when it had one);
	// its ID, Dir, disk files, TAP and MAC may differ (a clone's). The
	// guest keeps the MAC it had until it changes it. dir is only read: a
	// warm image's state is restored by many VMs, at once too. As with
	// Launch, on error nothing runs and no socket is left behind.
	Restore(ctx context.Context, spec Spec, dir string) (Handle, error)
	// Resume runs a paused VM's vCPUs again.
	Resume(ctx context.Context, h Handle) error
}

// Saved describes a state Save wrote.
type Saved struct {
	// Bytes is what the state takes on disk (allocated blocks).
	Bytes int64
}

// Hypervisor is a driver: it launches, controls and reaches VMs.
type Hypervisor interface {
	// Name is the driver name recorded in handles ("qemu", "firecracker").
	Name() string
	Launcher
	Controller
	AgentDialer
}
