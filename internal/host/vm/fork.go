package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/crashpoint"
	"github.com/bangerdev/banger/internal/host/diskclone"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/store"
)

// Fork makes a copy of a running VM: its memory, processes and sessions
// and its disks, as they are at one instant, in a new VM with its own
// name, address, MAC, machine-id, boot ID, SSH host keys and agent key.
// The source is paused while its state is saved and its disks copied
// (reflinks where the filesystem has them), then runs on; it is never
// left paused, whatever fails.
func (m *Manager) Fork(ctx context.Context, name string, req api.ForkVMRequest, p Progress) (VM, error) {
	if err := m.ValidateFork(ctx, req); err != nil {
		return VM{}, err
	}
	src, unlockSrc, err := m.getLocked(ctx, name)
	defer unlockSrc()
	if err != nil {
		return src, err
	}
	hv, h, err := m.driverOf(src)
	if err != nil {
		return VM{}, err
	}
	snap, err := snapshotter(hv)
	if err != nil {
		return VM{}, err
	}
	img, err := m.Images.Get(ctx, src.ImageID)
	if err != nil {
		return VM{}, err
	}
	if err := m.checkSpaceForCreate(img, src.Spec.DiskBytes); err != nil {
		return VM{}, err
	}
	if err := m.checkSpaceForState(&src); err != nil {
		return VM{}, err
	}
	srcKey, err := agentKey(m.Dir(src.ID))
	if err != nil {
		return VM{}, err
	}

	p.Stage("allocate")
	v, err := m.allocate(ctx, api.CreateVMRequest{
		Name: req.Name, VCPUs: src.Spec.VCPUs, MemoryMiB: src.Spec.MemoryMiB, DiskBytes: src.Spec.DiskBytes,
	}, img, hv.Name())
	if err != nil {
		return v, err
	}
	p.Detail("%s, %s", v.Name, v.Lease.IP)
	unlock := m.lock(v.ID)
	defer unlock()
	ok := false
	defer func() {
		if !ok {
			if derr := m.destroy(context.WithoutCancel(ctx), &v); derr != nil {
				m.Log.Error("cleaning up a failed fork", "vm", v.Name, "error", derr)
			}
		}
	}()
	v.Spec.RootLayout, v.Spec.AgentVersion, v.Spec.ForkedFrom = src.Spec.RootLayout, src.Spec.AgentVersion, src.Name
	v.Runtime.Warnings = src.Runtime.Warnings
	if err := m.save(ctx, &v); err != nil {
		return v, err
	}
	if src.VM.Workspace != "" {
		// The copy's /root/repo is the source's, sent from the same place.
		if err := m.Store.SetWorkspace(ctx, v.ID, src.VM.Workspace); err != nil {
			return v, err
		}
	}
	dir := m.Dir(v.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return v, err
	}

	// The source is paused to disk as by `vm pause` and resumed from its
	// state: after a completed save a hypervisor is only ever ended (see
	// pause), and a crash at any point leaves the source running or
	// paused with a state it resumes from.
	p.Stage("pause " + src.Name)
	paused := time.Now()
	if err := m.pause(ctx, &src, snap, h, p); err != nil {
		return v, err
	}
	if err := m.endHypervisor(ctx, &src); err != nil {
		m.Log.Warn("ending a fork source's saved hypervisor", "vm", src.Name, "error", err)
	}
	crashpoint.Here(ctx)
	p.Stage("copy disks")
	err = m.copyDisks(src, v)
	if err == nil {
		err = linkTree(stateDir(dir), stateDir(m.Dir(src.ID)))
	}
	crashpoint.Here(ctx)
	p.Stage("resume " + src.Name)
	if rerr := m.resume(ctx, &src, quiet{}); rerr != nil {
		return v, fmt.Errorf("%s stays paused (resume it with `banger vm resume %s`): %w", src.Name, src.Name, rerr)
	}
	if err != nil {
		return v, err
	}
	p.Detail("%s was paused %d ms", src.Name, time.Since(paused).Milliseconds())
	if err := m.restoreClone(ctx, &v, img, hv, h.Accel, stateDir(dir), srcKey, p); err != nil {
		return v, err
	}
	// The fork's guest has run: the state no longer matches its disks.
	if err := os.RemoveAll(stateDir(dir)); err != nil {
		return v, err
	}
	if err := m.copySessions(ctx, src, v); err != nil {
		return v, err
	}
	v.State = api.VMRunning
	if err := m.save(ctx, &v); err != nil {
		return v, err
	}
	ok = true
	return v, nil
}

// ValidateFork checks a fork request: a name, when given, must be valid
// and free.
func (m *Manager) ValidateFork(ctx context.Context, req api.ForkVMRequest) error {
	if req.Name != "" {
		if _, err := m.pickName(ctx, req.Name); err != nil {
			return err
		}
	}
	return nil
}

// quiet is a Progress that reports nothing: the source's resume inside
// a fork is one stage of the fork.
type quiet struct{}

func (quiet) Stage(string)          {}
func (quiet) Detail(string, ...any) {}
func (quiet) Logf(string, ...any)   {}

// linkTree makes dst a directory of hard links to the files in src (a
// copy where links cannot be made): a saved state is only read, so a
// fork restores from the same files as its source.
func linkTree(dst, src string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, e := range entries {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if err := os.Link(from, to); err != nil {
			if _, cerr := diskclone.Clone(to, from); cerr != nil {
				return fmt.Errorf("copying the saved state: %w", cerr)
			}
		}
	}
	return nil
}

// copyDisks clones the source's own disks (not the shared base) into the
// new VM's directory.
func (m *Manager) copyDisks(src, v VM) error {
	from, to := m.Dir(src.ID), m.Dir(v.ID)
	disks := ownDisks(src.Spec.RootLayout)
	for _, disk := range disks {
		if _, err := diskclone.Clone(disk(to), disk(from)); err != nil {
			return fmt.Errorf("copying %s's disks: %w", src.Name, err)
		}
	}
	return nil
}

// restoreClone brings up a VM whose disks are copies of another VM's
// (a fork's source, a warm snapshot's) from that VM's state in dir: it
// writes the VM's own boot payload, takes its TAP, restores and runs it,
// then gives the guest its own identity through the agent, which until
// then holds fromKey, and waits for readiness with the VM's own key. The
// stages say restore and identity where a boot says launch and agent
// health.
func (m *Manager) restoreClone(ctx context.Context, v *VM, img image.Image, hv hypervisor.Hypervisor, accel, dir string, fromKey []byte, p Progress) error {
	snap, err := snapshotter(hv)
	if err != nil {
		return err
	}
	p.Stage("sync auth files")
	initrd, payload, err := m.writeBootPayload(ctx, m.Dir(v.ID), img, p)
	if err != nil {
		return err
	}
	tap, err := m.takeTAP(ctx, v, p)
	if err != nil {
		return err
	}
	p.Stage("restore " + hv.Name())
	start := time.Now()
	spec := m.launchSpec(v, img, Choice{HV: hv, Accel: accel}, initrd, tap)
	h, err := m.restoreAndRun(ctx, v, snap, spec, dir, func(h hypervisor.Handle) error {
		v.Runtime.Handle = &h
		v.Runtime.StartedAt = m.now()
		return m.save(ctx, v)
	})
	if err != nil {
		return err
	}
	p.Detail("pid %d, %s, %d ms", h.PID, h.Accel, time.Since(start).Milliseconds())

	p.Stage("identity")
	ctx, stopWatch := m.whileRunning(ctx, hv, h)
	defer stopWatch()
	sess, err := m.waitAgentWith(ctx, hv, v.ID, h, m.keyDialer(hv, h, v.Name, fromKey), 50*time.Millisecond)
	if err != nil {
		return err
	}
	id, err := m.newIdentity(v, payload)
	if err != nil {
		return err
	}
	if err := m.sendIdentity(ctx, v, sess, id, p); err != nil {
		return err
	}
	crashpoint.Here(ctx)
	// From here the agent takes only the VM's own key: this session,
	// opened with the old one, lives on; the next is dialled with the
	// VM's own key file.
	return m.readiness(ctx, sess, img, p)
}

// copySessions records the source's sessions as the fork's, marked
// forked: the fork's guest runs copies of them under the same ids.
func (m *Manager) copySessions(ctx context.Context, src, v VM) error {
	recs, err := m.Store.ListSessions(ctx, src.ID)
	if err != nil {
		return err
	}
	for _, r := range recs {
		var ses api.Session
		if err := json.Unmarshal([]byte(r.Meta), &ses); err != nil || ses.ID == "" {
			ses = api.Session{ID: r.ID, Name: r.Name, State: r.State}
		}
		ses.VM, ses.ForkedFrom, ses.AttachCount = v.Name, src.Name, 0
		meta, err := json.Marshal(ses)
		if err != nil {
			return err
		}
		if err := m.Store.PutSession(ctx, store.Session{ID: r.ID, VMID: v.ID, Name: r.Name, State: r.State, Meta: string(meta)}); err != nil {
			return err
		}
	}
	return nil
}
