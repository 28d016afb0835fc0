package api

import "time"

// VM states.
const (
	VMCreating = "creating"
	VMRunning  = "running"
	VMStopped  = "stopped"
	// VMDeleting: a delete has begun; a daemon that starts and finds
	// one finishes it.
	VMDeleting = "deleting"
	// VMPaused: the VM's whole state (memory and devices) is on disk and
	// its hypervisor has ended; `banger vm resume` restores it as it was.
	VMPaused = "paused"
)

// VM is a VM as the API shows it.
type VM struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	State      string    `json:"state"`
	Image      string    `json:"image"`
	VCPUs      int       `json:"vcpus"`
	MemoryMiB  int       `json:"memory_mib"`
	DiskBytes  int64     `json:"disk_bytes"`
	Hypervisor string    `json:"hypervisor"`
	Accel      string    `json:"accel,omitempty"`
	IP         string    `json:"ip"`
	MAC        string    `json:"mac"`
	TAP        string    `json:"tap,omitempty"`
	PID        int       `json:"pid,omitempty"`
	Dir        string    `json:"dir"`
	ConsoleLog string    `json:"console_log"`
	SSH        string    `json:"ssh"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	Warnings   []string  `json:"warnings,omitempty"`
	// Sessions counts the VM's sessions the daemon last saw running (its
	// store's copy, refreshed whenever sessions are listed, started,
	// signalled or attached); every change to it is a vm event.
	Sessions int `json:"sessions"`
	// LastExit says why the VM last stopped when nobody asked it to (its
	// hypervisor exited, the guest powered off, a start failed); absent
	// when its last stop was asked for. A successful start clears it.
	LastExit *VMExit `json:"last_exit,omitempty"`
	// StateBytes is what a paused VM's saved state (memory and devices)
	// takes on disk.
	StateBytes int64 `json:"state_bytes,omitempty"`
	// ForkedFrom names the VM this one was forked from (`banger vm fork`).
	ForkedFrom string `json:"forked_from,omitempty"`
	// Warm says the VM was made from its image's warm snapshot instead of
	// a cold boot (`banger image warm`).
	Warm bool `json:"warm,omitempty"`
	// Workspace is what `vm workspace prepare` last sent into the VM;
	// absent until then.
	Workspace *Workspace `json:"workspace,omitempty"`
	// Egress is what the guest may reach (EgressNAT when absent).
	Egress *EgressPolicy `json:"egress,omitempty"`
	// Ports are the guest ports published on the host's loopback.
	Ports []PublishedPort `json:"ports,omitempty"`
}

// VMExit is why a VM stopped on its own.
type VMExit struct {
	At time.Time `json:"at"`
	// Reason is one line: "the guest powered off", "the hypervisor (qemu)
	// was killed by signal SIGKILL", "start failed at agent health: ...".
	Reason string `json:"reason"`
	// ConsoleTail is the last lines of the serial console (at most
	// ConsoleTailLines), with terminal controls escaped.
	ConsoleTail string `json:"console_tail,omitempty"`
}

// ConsoleTailLines bounds VMExit.ConsoleTail.
const ConsoleTailLines = 20

// VMList is the answer to GET /v1/vms.
type VMList struct {
	VMs []VM `json:"vms"`
}

// CreateVMRequest asks for a new VM. Zero values take the configured
// defaults.
type CreateVMRequest struct {
	Name       string `json:"name,omitempty"`
	Image      string `json:"image,omitempty"`
	VCPUs      int    `json:"vcpus,omitempty"`
	MemoryMiB  int    `json:"memory_mib,omitempty"`
	DiskBytes  int64  `json:"disk_bytes,omitempty"`
	Hypervisor string `json:"hypervisor,omitempty"`
	// Cold boots the VM even when its image has a warm snapshot of this
	// shape.
	Cold bool `json:"cold,omitempty"`
	// Egress is what the guest may reach; nil is EgressNAT.
	Egress *EgressPolicy `json:"egress,omitempty"`
	// Publish lists guest ports to publish on the host's loopback once
	// the VM runs.
	Publish []PublishPortRequest `json:"publish,omitempty"`
}

// ForkVMRequest asks for a copy of a running VM (memory and disks) under
// a new name; an empty name is generated.
type ForkVMRequest struct {
	Name string `json:"name,omitempty"`
}

// SSHInfo is what `banger vm ssh` needs to reach a VM.
type SSHInfo struct {
	Host       string `json:"host"`
	User       string `json:"user"`
	KeyFile    string `json:"key_file"`
	KnownHosts string `json:"known_hosts"`
	HostAlias  string `json:"host_alias"`
}

// Leak is something `banger verify` found that no record explains.
type Leak struct {
	Kind   string `json:"kind"` // tap, nat, process, socket, disk
	What   string `json:"what"`
	Detail string `json:"detail"`
}

// VerifyReport is the answer to GET /v1/verify.
type VerifyReport struct {
	Leaks []Leak `json:"leaks"`
}
