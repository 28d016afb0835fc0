// Package vm owns the VM lifecycle: staged create (name and lease, disk
// clones, auth sync, TAP, hypervisor launch, agent health, readiness
// probes), start, stop, restart, delete, and reconciling the store with the
// host after a daemon restart. It reaches the host through small
// interfaces (Network, hypervisor.Hypervisor) so it is tested with fakes.
package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/agentlink"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/ext4img"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/names"
	"github.com/bangerdev/banger/internal/host/store"
)

// Network is what the lifecycle needs from host networking.
type Network interface {
	// Subnet and Gateway describe the guest network.
	Subnet() netip.Prefix
	Gateway() netip.Addr
	// DNS is the resolvers guests are given (banger.dns=): the ones the
	// host's rules let them reach, on port 53 only.
	DNS() []netip.Addr
	// AcquireTAP takes the bridge-attached TAP for guest address ip from
	// the pool: the host lets each TAP send only from one address and
	// its MAC (hostnet.TAPFor).
	AcquireTAP(ctx context.Context, ip netip.Addr) (string, error)
	// ReleaseTAP returns a TAP to the pool.
	ReleaseTAP(ctx context.Context, tap string) error
}

// Spec is a VM's persistent configuration (JSON in the store).
type Spec struct {
	VCPUs      int    `json:"vcpus"`
	MemoryMiB  int    `json:"memory_mib"`
	DiskBytes  int64  `json:"disk_bytes"`
	Hypervisor string `json:"hypervisor"`
	// AgentVersion is the banger-agent build in the VM's root disk (the
	// image's when the VM was made; the daemon's after a start updated it).
	AgentVersion string `json:"agent_version,omitempty"`
	// RootLayout is how the VM's root filesystem is made: RootOverlay (the
	// image's rootfs shared read-only, the VM's changes on its upper
	// disk), or empty for a VM made by an older banger, which boots its
	// own full copy of the rootfs read-write.
	RootLayout string `json:"root_layout,omitempty"`
	// ForkedFrom names the VM this one was forked from.
	ForkedFrom string `json:"forked_from,omitempty"`
	// Warm: the VM was restored from its image's warm snapshot.
	Warm bool `json:"warm,omitempty"`
	// Egress is what the guest may reach; nil is NAT (api.EgressNAT).
	Egress *api.EgressPolicy `json:"egress,omitempty"`
}

// RootOverlay is Spec.RootLayout of a VM whose root is an overlay: vda is
// its image's rootfs (read-only, shared by the image's VMs), vdb its work
// disk (/root), vdc its upper disk (everything it changed elsewhere in /).
const RootOverlay = "overlay"

// Runtime is what the daemon knows of a VM's current run (JSON in the
// store): the hypervisor handle that lets a restarted daemon re-adopt it.
type Runtime struct {
	Handle    *hypervisor.Handle `json:"handle,omitempty"`
	TAP       string             `json:"tap,omitempty"`
	StartedAt time.Time          `json:"started_at,omitzero"`
	HostKeys  []string           `json:"host_keys,omitempty"`
	Warnings  []string           `json:"warnings,omitempty"`
	// LastExit is why the VM last stopped on its own (lastexit.go); a
	// start begins with an empty Runtime, which clears it.
	LastExit *api.VMExit `json:"last_exit,omitempty"`
	// Saved describes a paused VM's saved state (snapshot.go).
	Saved *SavedState `json:"saved,omitempty"`
	// Resuming: a resume launched the hypervisor from the saved state
	// (Handle) and may have let the guest run; the state is valid only
	// while the hypervisor is still paused (see Reconcile).
	Resuming bool `json:"resuming,omitempty"`
}

// VM is a VM record with its decoded spec, runtime and lease.
type VM struct {
	store.VM
	Spec    Spec
	Runtime Runtime
	Lease   store.Lease
}

// Progress reports stages; *operation.Run satisfies it.
type Progress interface {
	Stage(name string)
	Detail(format string, args ...any)
	Logf(format string, args ...any)
}

// Choice is the hypervisor a VM runs on and how.
type Choice struct {
	HV hypervisor.Hypervisor
	// Accel is the accelerator for this launch ("kvm", "tcg"; "" = the
	// driver's own).
	Accel string
	// Warning is shown to the user (e.g. software emulation is slow).
	Warning string
	// Version is the hypervisor's version where it matters for the
	// image's kernel (Firecracker), e.g. "1.10.1".
	Version string
}

// Selector picks the hypervisor for a VM: the requested one, or the
// configured default.
type Selector func(ctx context.Context, requested string, p Progress) (Choice, error)

// Manager runs the lifecycle.
type Manager struct {
	Cfg     *config.Config
	Store   *store.Store
	Images  *image.Catalog
	Net     Network
	Select  Selector
	Drivers map[string]hypervisor.Hypervisor
	Tools   *ext4img.Tools
	Log     *slog.Logger
	Now     func() time.Time
	// AgentTimeout bounds the wait for the agent (boot) and for each
	// readiness probe.
	AgentTimeout time.Duration
	// StallAfter: under software emulation (TCG), a guest whose serial
	// console has been silent this long before its agent answered is
	// taken for stalled (TCG guests occasionally hang in early boot on a
	// loaded host) and relaunched, once. Zero means 90s.
	StallAfter time.Duration
	// PublicKey returns the configured SSH public key (authorized_keys
	// line); nil skips installing it.
	PublicKey func() (string, error)
	// StrayCommands are the program names reconcile may kill when they
	// work on a half-created VM's directory; nil means the hypervisors.
	StrayCommands []string
	// OnChange, when set, hears of every change the manager records for a
	// VM (created, creating, running, stopped, removed; at reconcile too),
	// after it is stored: the VM as GET /v1/vms/{name} shows it, or
	// Removed. The daemon feeds its event hub with it.
	OnChange func(api.Event)
	// Egress enforces VMs' egress policies; nil when this daemon does not
	// manage the host's network, which leaves only NAT possible.
	Egress Egress
	// AutoWarm, when set, is called after a cold create of an image that
	// has no warm snapshot yet (config vm.auto_warm): the daemon warms the
	// image for that shape in the background.
	AutoWarm func(img image.Image, req api.CreateVMRequest)

	links   agentlink.Pool // each running VM's agent session
	allocMu sync.Mutex     // name + lease allocation
	locks   sync.Map       // vm id -> *sync.Mutex
	// announced holds, per VM id, the JSON of the api.VM last given to
	// OnChange, so a save that changes nothing visible is not announced.
	announced sync.Map
	rng       *rand.Rand
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now().UTC()
	}
	return time.Now().UTC()
}

// lock serialises operations on one VM.
func (m *Manager) lock(id string) func() {
	v, _ := m.locks.LoadOrStore(id, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// getLocked finds a VM by name or id, takes its lock and reads it again
// under the lock (another operation may have changed it meanwhile). The
// caller defers unlock, which is a no-op when err is not nil.
func (m *Manager) getLocked(ctx context.Context, name string) (v VM, unlock func(), err error) {
	if v, err = m.Get(ctx, name); err != nil {
		return v, func() {}, err
	}
	unlock = m.lock(v.ID)
	if v, err = m.Get(ctx, v.ID); err != nil {
		unlock()
		return v, func() {}, err
	}
	return v, unlock, nil
}

// Dir is a VM's runtime directory: its disks, sockets and console log.
func (m *Manager) Dir(id string) string { return m.Cfg.Paths.VMDir(id) }

// KnownHosts is the VM's known_hosts file, written from the host keys the
// agent reported.
func (m *Manager) KnownHosts(id string) string { return filepath.Join(m.Dir(id), "known_hosts") }

func decode(rec store.VM) (VM, error) {
	v := VM{VM: rec}
	if err := json.Unmarshal([]byte(rec.Spec), &v.Spec); err != nil {
		return v, fmt.Errorf("vm %s: corrupt spec: %w", rec.Name, err)
	}
	if err := json.Unmarshal([]byte(rec.Runtime), &v.Runtime); err != nil {
		return v, fmt.Errorf("vm %s: corrupt runtime: %w", rec.Name, err)
	}
	return v, nil
}

func (m *Manager) save(ctx context.Context, v *VM) error {
	spec, err := json.Marshal(v.Spec)
	if err != nil {
		return err
	}
	rt, err := json.Marshal(v.Runtime)
	if err != nil {
		return err
	}
	v.VM.Spec, v.VM.Runtime = string(spec), string(rt)
	if err := m.Store.UpdateVM(context.WithoutCancel(ctx), v.VM); err != nil {
		return err
	}
	m.changed(ctx, v.ID)
	return nil
}

// Get returns a VM by name or id; a missing one is api.ErrNotFound with
// the fix.
func (m *Manager) Get(ctx context.Context, name string) (VM, error) {
	rec, err := m.Store.GetVM(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return VM{}, api.Errorf(api.CodeNotFound, "no vm named %q: see `banger vm list`", name)
	}
	if err != nil {
		return VM{}, err
	}
	v, err := decode(rec)
	if err != nil {
		return v, err
	}
	if l, err := m.Store.LeaseOf(ctx, v.ID); err == nil {
		v.Lease = l
	}
	return v, nil
}

// List returns every VM.
func (m *Manager) List(ctx context.Context) ([]VM, error) {
	recs, err := m.Store.ListVMs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]VM, 0, len(recs))
	for _, r := range recs {
		v, err := decode(r)
		if err != nil {
			return nil, err
		}
		if l, err := m.Store.LeaseOf(ctx, v.ID); err == nil {
			v.Lease = l
		}
		out = append(out, v)
	}
	return out, nil
}

// API converts a VM to its wire form.
func (m *Manager) API(ctx context.Context, v VM) api.VM {
	out := api.VM{
		ID: v.ID, Name: v.Name, State: v.State, VCPUs: v.Spec.VCPUs, MemoryMiB: v.Spec.MemoryMiB,
		DiskBytes: v.Spec.DiskBytes, Hypervisor: v.Spec.Hypervisor, IP: v.Lease.IP, MAC: v.Lease.MAC,
		TAP: v.Runtime.TAP, Dir: m.Dir(v.ID), CreatedAt: v.CreatedAt, StartedAt: v.Runtime.StartedAt,
		Warnings: v.Runtime.Warnings, SSH: "banger vm ssh " + v.Name, LastExit: v.Runtime.LastExit,
		ForkedFrom: v.Spec.ForkedFrom, Warm: v.Spec.Warm,
	}
	if ws, err := v.WorkspaceRecord(); err == nil {
		out.Workspace = &ws
	}
	if v.Spec.Egress != nil {
		e := *v.Spec.Egress
		out.Egress = &e
	}
	if s := v.Runtime.Saved; s != nil && v.State == api.VMPaused {
		out.StateBytes = s.Bytes
	}
	if h := v.Runtime.Handle; h != nil {
		out.PID, out.Accel, out.ConsoleLog = h.PID, h.Accel, h.ConsoleLog
	}
	if out.ConsoleLog == "" {
		out.ConsoleLog = filepath.Join(m.Dir(v.ID), "console.log")
	}
	if img, err := m.Store.GetImage(ctx, v.ImageID); err == nil {
		out.Image = img.Name
	}
	if n, err := m.Store.RunningSessions(ctx, v.ID); err == nil {
		out.Sessions = n
	}
	if ports, err := m.Store.Ports(ctx, v.ID); err == nil {
		for _, p := range ports { // published on the loopback (internal/host/portfwd)
			out.Ports = append(out.Ports, api.PublishedPort{GuestPort: p.GuestPort, HostPort: p.HostPort, Address: "127.0.0.1"})
		}
	}
	return out
}

// validateName checks a user-given name or generates a free one.
func (m *Manager) pickName(ctx context.Context, name string) (string, error) {
	if name != "" {
		if err := names.Validate(name); err != nil {
			return "", api.FieldErrorf("name", names.Rule, "%v", err)
		}
		taken, err := m.Store.VMNameTaken(ctx, name)
		if err != nil {
			return "", err
		}
		if taken {
			return "", &api.Error{Code: api.CodeAlreadyExists, Field: "name", Allowed: "a name no other VM has",
				Message: fmt.Sprintf("a vm named %q already exists: pick another name, or delete it with `banger vm delete %s`", name, name)}
		}
		return name, nil
	}
	if m.rng == nil {
		m.rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	}
	return names.NewGenerator(m.rng).Generate(func(n string) (bool, error) { return m.Store.VMNameTaken(ctx, n) })
}
