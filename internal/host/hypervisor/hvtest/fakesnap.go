package hvtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

var _ hypervisor.Snapshotter = (*Fake)(nil)

// FakeMemory is a Fake guest's memory: what its agent keeps, which Save
// writes into a state file and Restore reads back. A restored guest has
// the saved one's until an identity call changes it.
type FakeMemory struct {
	// Key is the agent key: the boot payload's, or the last identity
	// call's.
	Key []byte `json:"key,omitempty"`
	// Hostname is what health reports: the spec's Name at boot, or the
	// last identity call's.
	Hostname string `json:"hostname"`
	// HostKeys are the SSH host public keys: FakeHostKey at boot, a new
	// random ed25519 key after an identity call with HostKeys.
	HostKeys []string `json:"host_keys"`
	// MachineID is the last identity call's ("" before one).
	MachineID string `json:"machine_id,omitempty"`
	// BootID is drawn at boot and replaced by an identity call's.
	BootID string `json:"boot_id"`
	// UptimeMS is how long the guest had run when it was last paused.
	UptimeMS int64 `json:"uptime_ms"`
	// Channels counts the agent channels dialled over the guest's life,
	// across saves and restores.
	Channels int `json:"channels"`
	// Identities are the identity calls the guest applied, in order.
	Identities []agentproto.Identity `json:"identities,omitempty"`
}

// Memory returns a copy of the memory of h's VM, and whether the Fake
// knows a live VM at h.
func (f *Fake) Memory(h hypervisor.Handle) (FakeMemory, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vm := f.vm(h)
	if vm == nil {
		return FakeMemory{}, false
	}
	return vm.mem.clone(), true
}

func (m FakeMemory) clone() FakeMemory {
	m.Key = bytes.Clone(m.Key)
	m.HostKeys = slices.Clone(m.HostKeys)
	m.Identities = slices.Clone(m.Identities)
	return m
}

// fakeStateFile is the file Save writes into its directory.
const fakeStateFile = "fake-vm.state"

// fakeStateMagic starts a Fake state; another version is refused.
const fakeStateMagic = "banger-fake-vm-state/1"

// fakeState is what Save writes: the saved VM's shape, which a Restore's
// spec must have, and its guest memory.
type fakeState struct {
	Magic     string          `json:"magic"`
	VMID      string          `json:"vm_id"` // the saved VM's, for messages
	VCPUs     int             `json:"vcpus"`
	MemoryMiB int             `json:"memory_mib"`
	Disks     []fakeStateDisk `json:"disks"`
	NIC       bool            `json:"nic"`
	Memory    FakeMemory      `json:"memory"`
}

type fakeStateDisk struct {
	ID   string `json:"id"`
	Size int64  `json:"size"` // the file's size when the VM was saved
}

// Save pauses the VM and writes its shape and guest memory into dir,
// which must exist and be empty. A VM that is not live (stopped, or not
// this Fake's) is refused. The VM stays paused whether Save succeeds or
// fails.
func (f *Fake) Save(ctx context.Context, h hypervisor.Handle, dir string) (saved hypervisor.Saved, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() { f.record("save", h, err) }()
	vm := f.vm(h)
	if vm == nil {
		return hypervisor.Saved{}, fmt.Errorf("fake: saving the VM of pid %d: it is not running (stopped, or not this Fake's): nothing to save", h.PID)
	}
	vm.setState(hypervisor.Paused)
	if f.SaveErr != nil {
		return hypervisor.Saved{}, f.SaveErr
	}
	if err := ctx.Err(); err != nil {
		return hypervisor.Saved{}, err
	}
	fail := func(err error) (hypervisor.Saved, error) {
		return hypervisor.Saved{}, fmt.Errorf("fake: saving VM %s into %s: %w", vm.spec.ID, dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fail(err)
	}
	if len(ents) > 0 {
		return fail(fmt.Errorf("the directory holds %s already: save into an empty directory", ents[0].Name()))
	}
	st := fakeState{
		Magic: fakeStateMagic, VMID: vm.spec.ID, VCPUs: vm.spec.VCPUs, MemoryMiB: vm.spec.MemoryMiB,
		NIC: vm.spec.NIC != nil, Memory: vm.mem.clone(),
	}
	for _, d := range vm.spec.Disks {
		fi, err := os.Stat(d.Path)
		if err != nil {
			return fail(fmt.Errorf("disk %s: %w", d.ID, err))
		}
		st.Disks = append(st.Disks, fakeStateDisk{ID: d.ID, Size: fi.Size()})
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fail(err)
	}
	p := filepath.Join(dir, fakeStateFile)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		os.Remove(p)
		return fail(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fail(err)
	}
	n := fi.Size()
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && sys.Blocks > 0 {
		n = sys.Blocks * 512
	}
	return hypervisor.Saved{Bytes: n}, nil
}

// Restore checks spec as Launch does (but boots nothing, so its boot
// files are not needed), reads the state Save wrote in dir, refusing a
// missing or corrupt one and a spec of another shape (vCPUs, memory,
// number or sizes of disks, a NIC), and records a paused VM with the
// saved guest memory: its agent answers the saved key once resumed.
func (f *Fake) Restore(ctx context.Context, spec hypervisor.Spec, dir string) (h hypervisor.Handle, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() { f.record("restore", h, err) }()
	if f.RestoreErr != nil {
		return hypervisor.Handle{}, f.RestoreErr
	}
	if err := ctx.Err(); err != nil {
		return hypervisor.Handle{}, err
	}
	fail := func(err error) (hypervisor.Handle, error) {
		return hypervisor.Handle{}, fmt.Errorf("fake: restoring VM %s from %s: %w", spec.ID, dir, err)
	}
	if err := fakeValidate(spec, false); err != nil {
		return fail(err)
	}
	if err := f.placeable(spec); err != nil {
		return fail(err)
	}
	st, err := readFakeState(dir)
	if err != nil {
		return fail(err)
	}
	if err := st.fits(spec); err != nil {
		return fail(err)
	}
	h, err = f.place(spec, "restored from "+dir)
	if err != nil {
		return fail(err)
	}
	f.vms[h.PID] = newFakeVM(spec, h, st.Memory)
	return h, nil
}

// readFakeState reads and checks the state in dir.
func readFakeState(dir string) (fakeState, error) {
	p := filepath.Join(dir, fakeStateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return fakeState{}, fmt.Errorf("no saved state (%s is missing): save the VM again", p)
	}
	if err != nil {
		return fakeState{}, err
	}
	var st fakeState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return fakeState{}, fmt.Errorf("the saved state %s is corrupt (%v): save the VM again", p, err)
	}
	if st.Magic != fakeStateMagic {
		return fakeState{}, fmt.Errorf("the saved state %s is not a Fake VM state of this version (magic %q, want %q): save the VM again", p, st.Magic, fakeStateMagic)
	}
	if n := len(st.Memory.Key); n != 0 && n != agentmux.KeySize {
		return fakeState{}, fmt.Errorf("the saved state %s is corrupt: an agent key of %d bytes: save the VM again", p, n)
	}
	return st, nil
}

// fits refuses a spec whose shape differs from the saved VM's.
func (st fakeState) fits(spec hypervisor.Spec) error {
	var diffs []string
	if spec.VCPUs != st.VCPUs {
		diffs = append(diffs, fmt.Sprintf("%d vCPUs, saved with %d", spec.VCPUs, st.VCPUs))
	}
	if spec.MemoryMiB != st.MemoryMiB {
		diffs = append(diffs, fmt.Sprintf("%d MiB of memory, saved with %d", spec.MemoryMiB, st.MemoryMiB))
	}
	if len(spec.Disks) != len(st.Disks) {
		diffs = append(diffs, fmt.Sprintf("%d disks, saved with %d", len(spec.Disks), len(st.Disks)))
	} else {
		for i, d := range spec.Disks {
			fi, err := os.Stat(d.Path)
			if err == nil && fi.Size() != st.Disks[i].Size {
				diffs = append(diffs, fmt.Sprintf("disk %s (%s) of %d bytes, saved with %d", d.ID, d.Path, fi.Size(), st.Disks[i].Size))
			}
		}
	}
	if st.NIC && spec.NIC == nil {
		diffs = append(diffs, "no NIC, saved with one")
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the spec's shape differs from VM %s's when it was saved: %s; restore with the saved shape or boot the VM afresh", st.VMID, strings.Join(diffs, "; "))
	}
	return nil
}

// Resume runs a paused VM; a running one is left running.
func (f *Fake) Resume(ctx context.Context, h hypervisor.Handle) (err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() { f.record("resume", h, err) }()
	if f.ResumeErr != nil {
		return f.ResumeErr
	}
	vm := f.vm(h)
	if vm == nil {
		return fmt.Errorf("fake: resuming the VM of pid %d: it is not running (stopped, or not this Fake's): restore it first", h.PID)
	}
	vm.setState(hypervisor.Running)
	return nil
}

// newBootID returns a random UUID, as the kernel draws a boot ID.
func newBootID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newHostKey returns a new random ed25519 SSH host public key, in
// authorized_keys format.
func newHostKey() (string, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " root@banger", nil
}
