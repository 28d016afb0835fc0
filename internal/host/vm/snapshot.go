package vm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/agentlink"
	"github.com/bangerdev/banger/internal/host/crashpoint"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
)

// What the snapshot operations share (pause.go, fork.go, warm.go): where
// a saved state lives, the driver's Snapshotter, and the identity a VM
// restored from a state takes (agentproto.MethodIdentity).
//
// A saved state is valid only with the disks as they were when it was
// saved. Each operation keeps that true at every instant, so a crash
// anywhere leaves either a state that matches its disks or no state:
//   - pause writes the state beside the VM's disks (stateDir) under a
//     temporary name and renames it, then records the VM paused;
//   - resume records the handle (Runtime.Resuming) before it lets the
//     guest run, and drops the state once the VM is recorded running;
//   - fork and warm create copy the disks while the source is paused, and
//     restore into a VM that stays "creating" until it is whole.

// SavedState is a paused VM's saved state (Runtime.Saved).
type SavedState struct {
	Bytes   int64     `json:"bytes"`
	SavedAt time.Time `json:"saved_at"`
	// Driver and Accel are what the state can be restored on: a state
	// saved under software emulation does not load under KVM.
	Driver string `json:"driver"`
	Accel  string `json:"accel,omitempty"`
}

// stateDir is where a paused VM's saved state lives, beside its disks.
func stateDir(dir string) string { return filepath.Join(dir, "state") }

// stateTmp is where a save writes before the state is complete.
func stateTmp(dir string) string { return filepath.Join(dir, "state.tmp") }

// snapshotter returns hv's Snapshotter, or the error that says the driver
// has none.
func snapshotter(hv hypervisor.Hypervisor) (hypervisor.Snapshotter, error) {
	s, ok := hv.(hypervisor.Snapshotter)
	if !ok {
		return nil, api.Errorf(api.CodeFailedPrecondition, "the %s driver cannot save a VM's state", hv.Name())
	}
	return s, nil
}

// driverOf returns the driver of a running VM's handle.
func (m *Manager) driverOf(v VM) (hypervisor.Hypervisor, hypervisor.Handle, error) {
	h := v.Runtime.Handle
	if v.State != api.VMRunning || h == nil {
		return nil, hypervisor.Handle{}, notRunning(v)
	}
	hv, ok := m.Drivers[h.Driver]
	if !ok {
		return nil, hypervisor.Handle{}, fmt.Errorf("VM %s: unknown hypervisor driver %q", v.Name, h.Driver)
	}
	return hv, *h, nil
}

// saveState saves a running VM's state into dir (made here; any older
// one is replaced): the VM is paused when it returns, whether the save
// worked or not.
func saveState(ctx context.Context, snap hypervisor.Snapshotter, h hypervisor.Handle, dir string) (SavedState, error) {
	if err := os.RemoveAll(dir); err != nil {
		return SavedState{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return SavedState{}, err
	}
	saved, err := snap.Save(ctx, h, dir)
	if err != nil {
		os.RemoveAll(dir)
		return SavedState{}, err
	}
	return SavedState{Bytes: saved.Bytes, SavedAt: time.Now().UTC(), Driver: h.Driver, Accel: h.Accel}, nil
}

// keyDialer is dialer with a given agent key: a restored guest's agent
// still holds the key of the VM it was saved from until the identity call
// gives it the VM's own.
func (m *Manager) keyDialer(hv hypervisor.Hypervisor, h hypervisor.Handle, name string, key []byte) agentlink.DialFunc {
	return func(ctx context.Context) (agentlink.Channel, error) {
		conn, err := hv.DialAgent(ctx, h)
		if err != nil {
			return agentlink.Channel{}, err
		}
		return agentlink.Channel{Conn: conn, Key: key, VM: name}, nil
	}
}

// newIdentity is everything a VM restored from another VM's state must
// not share with it or with any other VM: a fresh RNG seed, machine-id,
// boot ID and SSH host keys, the VM's own name, address and MAC, the
// current credential files and the agent key of its own boot payload.
func (m *Manager) newIdentity(v *VM, payload bootpayload.Payload) (agentproto.Identity, error) {
	seed := make([]byte, 64)
	mid := make([]byte, 16)
	boot := make([]byte, 16)
	for _, b := range [][]byte{seed, mid, boot} {
		if _, err := rand.Read(b); err != nil {
			return agentproto.Identity{}, err
		}
	}
	boot[6] = boot[6]&0x0f | 0x40 // a version 4 UUID
	boot[8] = boot[8]&0x3f | 0x80
	ip, err := netip.ParseAddr(v.Lease.IP)
	if err != nil {
		return agentproto.Identity{}, fmt.Errorf("vm %s has no valid address lease (%q)", v.Name, v.Lease.IP)
	}
	id := agentproto.Identity{
		Seed:      seed,
		MachineID: hex.EncodeToString(mid),
		BootID:    fmt.Sprintf("%x-%x-%x-%x-%x", boot[0:4], boot[4:6], boot[6:8], boot[8:10], boot[10:16]),
		Hostname:  v.Name,
		Net: &agentproto.IdentityNet{
			Address: netip.PrefixFrom(ip, m.Net.Subnet().Bits()).String(),
			Gateway: m.Net.Gateway().String(),
			MAC:     v.Lease.MAC,
		},
		HostKeys: true,
		Key:      payload.Key,
	}
	for _, d := range m.Net.DNS() {
		id.Net.DNS = append(id.Net.DNS, d.String())
	}
	rest := payload
	rest.Key = nil
	id.Payload = &rest
	return id, nil
}

// sendIdentity gives the restored guest behind sess its identity (with
// the host's clock) and pins the SSH host keys it reports.
func (m *Manager) sendIdentity(ctx context.Context, v *VM, sess *agentmux.Session, id agentproto.Identity, p Progress) error {
	id.TimeUnixNano = time.Now().UnixNano()
	var res agentproto.IdentityResult
	if err := sess.Call(ctx, agentproto.MethodIdentity, id, &res); err != nil {
		return fmt.Errorf("giving the restored guest its own identity: %w", err)
	}
	if id.HostKeys {
		if len(res.HostKeys) == 0 {
			return errors.New("the restored guest reported no SSH host keys after making new ones")
		}
		if err := m.pinHostKeys(v, res.HostKeys); err != nil {
			return err
		}
	}
	p.Detail("%s, %s, %d host key(s), %d ms in the guest", v.Name, v.Lease.IP, len(v.Runtime.HostKeys), res.ElapsedMS)
	m.Log.Info("restored guest took its identity", "vm", v.Name, "guest_ms", res.ElapsedMS, "steps_ms", stepsText(res.StepsMS))
	return nil
}

// setClock brings a resumed guest's clock to the host's: it stood still
// while the VM was paused.
func (m *Manager) setClock(ctx context.Context, sess *agentmux.Session) error {
	return sess.Call(ctx, agentproto.MethodIdentity, agentproto.Identity{TimeUnixNano: time.Now().UnixNano()}, nil)
}

// restoreAndRun restores v from the state in dir on hv (paused), records
// the handle, then lets the guest run. record is called with the handle
// before the guest runs, so that a crash after it leaves a record that
// says the state may be spent (see Reconcile).
func (m *Manager) restoreAndRun(ctx context.Context, v *VM, snap hypervisor.Snapshotter, spec hypervisor.Spec, dir string, record func(h hypervisor.Handle) error) (hypervisor.Handle, error) {
	h, err := snap.Restore(ctx, spec, dir)
	if err != nil {
		return h, err
	}
	crashpoint.Here(ctx)
	if err := record(h); err != nil {
		return h, err
	}
	if err := snap.Resume(ctx, h); err != nil {
		return h, err
	}
	return h, nil
}

// stepsText is the guest's identity steps and their milliseconds, in a
// stable order, for the log: the guest's word, bounded.
func stepsText(steps map[string]int64) string {
	names := make([]string, 0, len(steps))
	for k := range steps {
		if len(names) == 16 {
			break
		}
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%s=%d ", termsafe.Line(k), steps[k])
	}
	return strings.TrimSpace(b.String())
}
