package agentproto

import "github.com/bangerdev/banger/internal/shared/bootpayload"

// MethodIdentity gives a guest restored from a saved state a new identity
// or brings it up to date after a pause: the host's clock, a fresh kernel
// RNG seed, and, for a VM restored from another VM's state (a warm create,
// a fork), everything that must never be shared between two VMs. Its
// params are an Identity (every field but TimeUnixNano optional), its
// result an IdentityResult.
const MethodIdentity = "identity"

// Identity is what a restored guest takes as its own. The agent applies
// the fields that are set in this order, stopping at the first that fails
// (the error names it): Clock, Seed, MachineID, BootID, Hostname, Net,
// HostKeys, Payload, Key.
type Identity struct {
	// TimeUnixNano is the host's wall clock when it sent the call: the
	// guest sets CLOCK_REALTIME to it (a restored guest's clock stands
	// where it was when the state was saved).
	TimeUnixNano int64 `json:"time_unix_nano"`
	// Seed (IdentitySeedMin..IdentitySeedMax bytes) is added to the
	// kernel's entropy pool, credited, and the CRNG reseeded from it, so
	// no two restored guests draw the same random numbers from the kernel.
	Seed []byte `json:"seed,omitempty"`
	// MachineID replaces /etc/machine-id: 32 lowercase hex digits.
	MachineID string `json:"machine_id,omitempty"`
	// BootID is a new boot ID, a UUID (8-4-4-4-12 lowercase hex). The
	// kernel's cannot change once read, so the agent bind-mounts a file
	// holding it over /proc/sys/kernel/random/boot_id: whatever reads it
	// from then on sees this one.
	BootID string `json:"boot_id,omitempty"`
	// Hostname is set as the kernel's host name and written to
	// /etc/hostname and /etc/hosts, as at boot (banger.hostname=).
	Hostname string `json:"hostname,omitempty"`
	// Net moves eth0 to a new address and MAC.
	Net *IdentityNet `json:"net,omitempty"`
	// HostKeys makes the guest generate new SSH host keys (ed25519 and
	// ECDSA P-256) from the reseeded RNG, remove every other
	// /etc/ssh/ssh_host_* key, and make sshd load them; the result lists
	// the new public keys.
	HostKeys bool `json:"host_keys,omitempty"`
	// Payload is a boot payload's files and authorized keys (its Key is
	// not sent: see Key), installed as at boot (bootpayload.Apply): the
	// credential files may have changed on the host since the saved VM
	// booted.
	Payload *bootpayload.Payload `json:"payload,omitempty"`
	// Key (KeySize bytes) replaces the agent key for every session
	// upgraded after the call answers, on any channel (a virtio-serial
	// port too, which stays open); the sessions already open, the call's
	// own among them, keep working.
	Key []byte `json:"key,omitempty"`
}

// IdentityNet is a guest's new network identity on eth0.
type IdentityNet struct {
	Address string   `json:"address"` // "10.200.0.5/24"
	Gateway string   `json:"gateway"`
	MAC     string   `json:"mac"`
	DNS     []string `json:"dns,omitempty"`
}

// IdentityResult is the answer to MethodIdentity.
type IdentityResult struct {
	// HostKeys are the SSH host public keys (authorized_keys format)
	// after the call: the new ones when Identity.HostKeys was set.
	HostKeys []string `json:"host_keys,omitempty"`
	// ElapsedMS is the guest's time to apply the call; StepsMS each
	// applied field's share (by its JSON name, "sync" for the final
	// flush).
	ElapsedMS int64            `json:"elapsed_ms"`
	StepsMS   map[string]int64 `json:"steps_ms,omitempty"`
}

// Bounds on an Identity.
const (
	IdentitySeedMin = 32
	IdentitySeedMax = 512
)
