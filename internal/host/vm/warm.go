package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/crashpoint"
	"github.com/bangerdev/banger/internal/host/diskclone"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/shared/atomicfile"
	"github.com/bangerdev/banger/internal/shared/sizetext"
)

// Warm snapshots: `banger image warm` boots a VM of an image to readiness
// once (the template), saves its state with its disks and agent key, and
// deletes the template. A create of the same shape then restores that
// state into copies of its disks instead of booting, and gives the clone
// its own identity (restoreClone). One snapshot per image and shape lives
// in <state>/warm/<image id>/<key>/, written under a temporary name and
// renamed whole; key digests everything the saved guest depends on (the
// image's artifacts, the agent build, the hypervisor and accelerator, the
// shape), so a snapshot that no longer fits is never restored: a create
// that finds one falls back to a cold boot with a notice, and drops it.

// warmMetaFile describes a warm snapshot; it is written last.
const warmMetaFile = "warm.json"

// warmMeta is a warm snapshot's description (warm.json).
type warmMeta struct {
	Key        string    `json:"key"`
	ImageID    string    `json:"image_id"`
	Driver     string    `json:"driver"`
	Accel      string    `json:"accel,omitempty"`
	VCPUs      int       `json:"vcpus"`
	MemoryMiB  int       `json:"memory_mib"`
	DiskBytes  int64     `json:"disk_bytes"`
	RootLayout string    `json:"root_layout,omitempty"`
	Bytes      int64     `json:"bytes"`
	CreatedAt  time.Time `json:"created_at"`
}

// warmSnapshot is a warm snapshot on disk.
type warmSnapshot struct {
	warmMeta
	dir string
}

func (w warmSnapshot) state() string { return filepath.Join(w.dir, "state") }

// shapeOf says whether w is for a VM of this shape on this hypervisor.
func (w warmSnapshot) fits(driver string, req api.CreateVMRequest) bool {
	return w.Driver == driver && w.VCPUs == req.VCPUs && w.MemoryMiB == req.MemoryMiB && w.DiskBytes == req.DiskBytes
}

// warmRoot is where warm snapshots live.
func (m *Manager) warmRoot() string { return filepath.Join(m.Cfg.Paths.StateDir, "warm") }

// warmKey digests what a warm snapshot of img for req on choice depends
// on: a snapshot is restored only into exactly what it was saved from.
func (m *Manager) warmKey(ctx context.Context, img image.Image, choice Choice, req api.CreateVMRequest) (string, error) {
	agent, err := m.Images.AgentBuild(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the agent's build: %w", err)
	}
	arts := map[string]string{}
	for k, a := range img.Artifacts {
		arts[string(k)] = a.SHA256
	}
	b, _ := json.Marshal(struct {
		Image      string            `json:"image"`
		Artifacts  map[string]string `json:"artifacts"`
		Agent      string            `json:"agent"`
		Driver     string            `json:"driver"`
		Accel      string            `json:"accel"`
		Version    string            `json:"version"`
		VCPUs      int               `json:"vcpus"`
		MemoryMiB  int               `json:"memory_mib"`
		DiskBytes  int64             `json:"disk_bytes"`
		UpperSeeds bool              `json:"upper_seed"`
	}{img.ID, arts, agent, choice.HV.Name(), choice.Accel, choice.Version, req.VCPUs, req.MemoryMiB, req.DiskBytes, img.Has(image.UpperSeed)})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12]), nil
}

// warmSnapshots lists an image's complete warm snapshots.
func (m *Manager) warmSnapshots(imageID string) []warmSnapshot {
	root := filepath.Join(m.warmRoot(), imageID)
	entries, _ := os.ReadDir(root)
	var out []warmSnapshot
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(root, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, warmMetaFile))
		if err != nil {
			continue
		}
		var w warmSnapshot
		if json.Unmarshal(b, &w.warmMeta) != nil || w.Key != e.Name() {
			continue
		}
		w.dir = dir
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// WarmSnapshots is an image's warm snapshots as the API shows them.
func (m *Manager) WarmSnapshots(imageID string) []api.WarmSnapshot {
	var out []api.WarmSnapshot
	for _, w := range m.warmSnapshots(imageID) {
		out = append(out, api.WarmSnapshot{Hypervisor: w.Driver, Accel: w.Accel, VCPUs: w.VCPUs, MemoryMiB: w.MemoryMiB,
			DiskBytes: w.DiskBytes, Bytes: w.Bytes, CreatedAt: w.CreatedAt})
	}
	return out
}

// findWarm returns the warm snapshot a create of img for req on choice
// restores, if there is one that fits. A snapshot of the same shape
// whose key no longer matches (the image, kernel, agent or hypervisor
// changed) is dropped, and notice says the create boots cold.
func (m *Manager) findWarm(ctx context.Context, img image.Image, choice Choice, req api.CreateVMRequest) (w warmSnapshot, ok bool, notice string) {
	list := m.warmSnapshots(img.ID)
	if len(list) == 0 {
		return w, false, ""
	}
	key, err := m.warmKey(ctx, img, choice, req)
	if err != nil {
		return w, false, fmt.Sprintf("not restoring the image's warm snapshot: %v", err)
	}
	for _, s := range list {
		if s.Key == key {
			return s, true, ""
		}
		if s.fits(choice.HV.Name(), req) {
			notice = fmt.Sprintf("image %s's warm snapshot for this shape was made with another image build, kernel, banger-agent or hypervisor: booting cold; `banger image warm %s` makes a new one", img.Name, img.Name)
			if err := os.RemoveAll(s.dir); err != nil {
				m.Log.Warn("removing a stale warm snapshot", "dir", s.dir, "error", err)
			}
		}
	}
	return w, false, notice
}

// Warm boots a VM of the image (the template) to readiness, saves its
// state with its disks as the image's warm snapshot for that shape
// (replacing an older one), and deletes the template. The template is
// "creating" all along, so a crash leaves nothing a daemon start does
// not remove.
func (m *Manager) Warm(ctx context.Context, name string, wreq api.WarmImageRequest, p Progress) (image.Image, error) {
	req := api.CreateVMRequest{Image: name, VCPUs: wreq.VCPUs, MemoryMiB: wreq.MemoryMiB, DiskBytes: wreq.DiskBytes, Hypervisor: wreq.Hypervisor, Cold: true}
	img, err := m.ValidateCreate(ctx, &req)
	if err != nil {
		return img, err
	}
	if img.State != api.ImageReady {
		return img, api.Errorf(api.CodeFailedPrecondition, "image %s is %s: only a ready image can be warmed", img.Name, img.State)
	}
	choice, err := m.Select(ctx, req.Hypervisor, p)
	if err != nil {
		return img, err
	}
	snap, err := snapshotter(choice.HV)
	if err != nil {
		return img, err
	}
	if err := checkSuitable(choice, img); err != nil {
		return img, err
	}
	if err := m.checkSpaceForCreate(img, req.DiskBytes); err != nil {
		return img, err
	}

	p.Stage("allocate")
	v, err := m.allocate(ctx, req, img, choice.HV.Name())
	if err != nil {
		return img, err
	}
	p.Detail("template VM %s, %s", v.Name, v.Lease.IP)
	unlock := m.lock(v.ID)
	defer unlock()
	// The template goes whatever happens: its disks become the snapshot's.
	defer func() {
		if derr := m.destroy(context.WithoutCancel(ctx), &v); derr != nil {
			m.Log.Error("removing a warm snapshot's template VM", "vm", v.Name, "error", derr)
		}
	}()
	img, _, err = m.Images.Repair(ctx, img.ID, p)
	if err != nil {
		return img, err
	}
	v.Spec.AgentVersion = img.Manifest.AgentVersion
	if err := m.makeDisks(ctx, &v, img, p); err != nil {
		return img, err
	}
	if err := m.boot(ctx, &v, img, choice, p); err != nil {
		return img, err
	}
	key, err := m.warmKey(ctx, img, choice, req)
	if err != nil {
		return img, err
	}

	h := *v.Runtime.Handle
	p.Stage("settle")
	p.Detail("%s", m.settle(ctx, h))

	p.Stage("save state")
	dir := m.Dir(v.ID)
	agentKeyBytes, err := agentKey(dir)
	if err != nil {
		return img, err
	}
	root := filepath.Join(m.warmRoot(), img.ID)
	tmp := filepath.Join(root, ".tmp-"+v.ID)
	saved, err := saveState(ctx, snap, h, filepath.Join(tmp, "state"))
	if err != nil {
		os.RemoveAll(tmp)
		return img, err
	}
	crashpoint.Here(ctx)
	if err := m.endHypervisor(ctx, &v); err != nil {
		os.RemoveAll(tmp)
		return img, err
	}
	meta := warmMeta{Key: key, ImageID: img.ID, Driver: h.Driver, Accel: choice.Accel, VCPUs: req.VCPUs, MemoryMiB: req.MemoryMiB,
		DiskBytes: req.DiskBytes, RootLayout: v.Spec.RootLayout, CreatedAt: m.now()}
	if err := m.keepWarm(dir, tmp, filepath.Join(root, key), v.Spec.RootLayout, agentKeyBytes, &meta); err != nil {
		os.RemoveAll(tmp)
		return img, err
	}
	p.Detail("%s (state %s)", sizetext.Up(meta.Bytes), sizetext.Up(saved.Bytes))
	m.Images.UsersChanged(ctx, img.ID)
	return img, nil
}

// keepWarm moves the stopped template's disks and agent key from vmDir
// into tmp, beside the state, writes warm.json and renames tmp to dst.
func (m *Manager) keepWarm(vmDir, tmp, dst, layout string, key []byte, meta *warmMeta) error {
	disks := ownDisks(layout)
	for _, disk := range disks {
		if err := os.Rename(disk(vmDir), disk(tmp)); err != nil {
			return fmt.Errorf("keeping the template's disks: %w", err)
		}
	}
	if err := atomicfile.Write(agentKeyFile(tmp), key, 0o600, 0o700); err != nil {
		return err
	}
	meta.Bytes = treeBytes(tmp)
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(tmp, warmMetaFile), b, 0o600, 0o700); err != nil {
		return err
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("keeping the warm snapshot: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// treeBytes is what the files under dir take on disk.
func treeBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n += diskBytes(path)
		}
		return nil
	})
	return n
}

// createWarm makes v from the warm snapshot w: its disks are copies of
// the template's, and restoreClone restores the template's state and
// gives the guest v's identity.
func (m *Manager) createWarm(ctx context.Context, v *VM, img image.Image, choice Choice, w warmSnapshot, p Progress) error {
	p.Stage("clone state")
	dir := m.Dir(v.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	disks := ownDisks(w.RootLayout)
	var method diskclone.Method
	for _, disk := range disks {
		mth, err := diskclone.Clone(disk(dir), disk(w.dir))
		if err != nil {
			return fmt.Errorf("copying the warm snapshot's disks: %w", err)
		}
		method = mth
	}
	crashpoint.Here(ctx)
	key, err := agentKey(w.dir)
	if err != nil {
		return err
	}
	v.Spec.RootLayout, v.Spec.Warm = w.RootLayout, true
	if err := m.save(ctx, v); err != nil {
		return err
	}
	p.Detail("%s, snapshot of %s", method, w.CreatedAt.Format(time.RFC3339))
	return m.restoreClone(ctx, v, img, choice.HV, w.Accel, w.state(), key, p)
}

// Unwarm removes an image's warm snapshots.
func (m *Manager) Unwarm(imageID string) error {
	return os.RemoveAll(filepath.Join(m.warmRoot(), imageID))
}

// TidyWarm removes what a crash left of warming (temporary directories)
// and the warm snapshots of images that are gone; it returns what it
// removed.
func (m *Manager) TidyWarm(ctx context.Context) ([]string, error) {
	leftovers, err := m.warmLeftovers(ctx)
	var errs []error
	for _, l := range leftovers {
		if rerr := os.RemoveAll(l); rerr != nil {
			errs = append(errs, rerr)
		}
	}
	return leftovers, errors.Join(append(errs, err)...)
}

// warmLeftovers lists warm directories nothing explains: temporary ones
// and those of images without a record.
func (m *Manager) warmLeftovers(ctx context.Context) ([]string, error) {
	images, err := m.Store.ListImages(ctx)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, img := range images {
		known[img.ID] = true
	}
	var out []string
	entries, _ := os.ReadDir(m.warmRoot())
	for _, e := range entries {
		dir := filepath.Join(m.warmRoot(), e.Name())
		if !known[e.Name()] {
			out = append(out, dir)
			continue
		}
		subs, _ := os.ReadDir(dir)
		for _, s := range subs {
			if strings.HasPrefix(s.Name(), ".tmp-") {
				out = append(out, filepath.Join(dir, s.Name()))
			}
		}
	}
	return out, nil
}

// diskBytes is what a file takes on disk (its allocated blocks).
func diskBytes(path string) int64 {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return 0
	}
	return st.Blocks * 512
}

// Settling: a guest that has just become ready is still busy for a while
// (units finishing, timers, caches); saved then, every clone restored from
// it would redo that work before it answers. settle waits, at most
// settleMax, until the hypervisor process uses less than settleCPU of a
// core over a settleWindow (measured on the host, from /proc).
const (
	settleWindow = 500 * time.Millisecond
	settleCPU    = 0.30
	settleMax    = 30 * time.Second
	userHZ       = 100 // clock ticks per second in /proc/PID/stat
)

// settle waits for h's guest to go quiet and says how it went.
func (m *Manager) settle(ctx context.Context, h hypervisor.Handle) string {
	start := time.Now()
	last, err := hypervisor.ProcessCPUTicks(h.PID)
	if err != nil {
		return "not measured: no hypervisor process to watch on this host"
	}
	for time.Since(start) < settleMax {
		select {
		case <-ctx.Done():
			return "interrupted"
		case <-time.After(settleWindow):
		}
		now, err := hypervisor.ProcessCPUTicks(h.PID)
		if err != nil {
			return "not measured: the hypervisor process ended"
		}
		used := float64(now-last) / userHZ / settleWindow.Seconds()
		last = now
		if used < settleCPU {
			return fmt.Sprintf("quiet after %.1f s (%.0f%% of a core)", time.Since(start).Seconds(), used*100)
		}
	}
	return fmt.Sprintf("still busy after %s: saved anyway", settleMax)
}
