package vm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/crashpoint"
	"github.com/bangerdev/banger/internal/host/diskclone"
	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/store"
)

// Limits on what a VM may ask for: the config's, so that its defaults
// are ones every create can use.
const (
	MinMemoryMiB = config.MinMemoryMiB
	MaxMemoryMiB = config.MaxMemoryMiB
	MaxVCPUs     = config.MaxVCPUs
	MinDiskBytes = config.MinDiskBytes
	MaxDiskBytes = config.MaxDiskBytes
)

// What each field of a create request accepts, as field errors say it
// (api.Error.Allowed). Messages name the request field by its JSON name,
// never a front end's flag or form label.
var (
	AllowedVCPUs       = fmt.Sprintf("1..%d", MaxVCPUs)
	AllowedMemory      = config.FormatSize(MinMemoryMiB<<20) + ".." + config.FormatSize(int64(MaxMemoryMiB)<<20)
	AllowedDisk        = config.FormatSize(MinDiskBytes) + ".." + config.FormatSize(MaxDiskBytes)
	AllowedHypervisors = config.HypervisorQEMU + ", " + config.HypervisorFirecracker
)

// ValidateCreate checks a create request and fills in the defaults, so
// bad input is refused before anything is allocated.
func (m *Manager) ValidateCreate(ctx context.Context, req *api.CreateVMRequest) (image.Image, error) {
	d := m.Cfg.VM
	if req.VCPUs == 0 {
		req.VCPUs = d.VCPUs
	}
	if req.MemoryMiB == 0 {
		req.MemoryMiB = d.MemoryMiB
	}
	if req.DiskBytes == 0 {
		req.DiskBytes = d.DiskBytes
	}
	switch {
	case req.VCPUs < 1 || req.VCPUs > MaxVCPUs:
		return image.Image{}, api.FieldErrorf("vcpus", AllowedVCPUs, "vcpus %d is out of range: use %s", req.VCPUs, AllowedVCPUs)
	case req.MemoryMiB < MinMemoryMiB || req.MemoryMiB > MaxMemoryMiB:
		return image.Image{}, api.FieldErrorf("memory_mib", AllowedMemory, "memory_mib %s is out of range: use %s, e.g. 2GiB",
			config.FormatSize(int64(req.MemoryMiB)<<20), AllowedMemory)
	case req.DiskBytes < MinDiskBytes || req.DiskBytes > MaxDiskBytes:
		return image.Image{}, api.FieldErrorf("disk_bytes", AllowedDisk, "disk_bytes %s is out of range: use %s, e.g. 16GiB",
			config.FormatSize(req.DiskBytes), AllowedDisk)
	case req.DiskBytes%(1<<20) != 0:
		return image.Image{}, api.FieldErrorf("disk_bytes", AllowedDisk+", whole MiB",
			"disk_bytes %d is not a whole number of MiB (1048576 bytes): use e.g. 16GiB", req.DiskBytes)
	}
	switch req.Hypervisor {
	case "", config.HypervisorQEMU, config.HypervisorFirecracker:
	default:
		return image.Image{}, api.FieldErrorf("hypervisor", AllowedHypervisors,
			"hypervisor %q is unknown: use qemu or firecracker (or leave it out for the configured default)", req.Hypervisor)
	}
	rec, _, err := m.checkEgress(req.Egress)
	if err != nil {
		return image.Image{}, err
	}
	req.Egress = rec
	if req.Name != "" {
		if _, err := m.pickName(ctx, req.Name); err != nil {
			return image.Image{}, err
		}
	}
	return m.pickImage(ctx, req.Image)
}

// pickImage returns the named image, or the newest ready one.
func (m *Manager) pickImage(ctx context.Context, name string) (image.Image, error) {
	if name != "" {
		img, err := m.Images.Get(ctx, name)
		if errors.Is(err, api.ErrNotFound) {
			return img, &api.Error{Code: api.CodeNotFound, Field: "image", Allowed: "an image name or id",
				Message: fmt.Sprintf("image %q does not exist: see `banger image list`, or make one with `banger image bootstrap debian`", name)}
		}
		if err != nil {
			return img, err
		}
		if img.State == "removed" {
			return img, &api.Error{Code: api.CodeNotFound, Field: "image", Allowed: "an image name or id",
				Message: fmt.Sprintf("image %q was removed: see `banger image list`", name)}
		}
		return img, nil
	}
	imgs, err := m.Images.List(ctx)
	if err != nil {
		return image.Image{}, err
	}
	var ready []image.Image
	for _, img := range imgs {
		if img.State == api.ImageReady {
			ready = append(ready, img)
		}
	}
	if len(ready) == 0 {
		return image.Image{}, api.Errorf(api.CodeFailedPrecondition, "no image to boot: make one with `banger image bootstrap debian`")
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].CreatedAt.After(ready[j].CreatedAt) })
	return ready[0], nil
}

func newVMID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "vm-" + hex.EncodeToString(b)
}

// allocate picks the name and the address and records the VM (state
// creating) with its lease in one transaction.
func (m *Manager) allocate(ctx context.Context, req api.CreateVMRequest, img image.Image, hvName string) (VM, error) {
	v, err := m.record(ctx, req, img, hvName)
	if err != nil {
		return VM{}, err
	}
	// Announced outside allocMu: the next create need not wait for the
	// event feed or the image's user count.
	m.changed(ctx, v.ID)
	m.Images.UsersChanged(ctx, img.ID)
	return v, nil
}

// record picks the name and the address and inserts the VM with its
// lease, under allocMu: two creates never pick the same name or address.
func (m *Manager) record(ctx context.Context, req api.CreateVMRequest, img image.Image, hvName string) (VM, error) {
	m.allocMu.Lock()
	defer m.allocMu.Unlock()
	name, err := m.pickName(ctx, req.Name)
	if err != nil {
		return VM{}, err
	}
	leases, err := m.Store.ListLeases(ctx)
	if err != nil {
		return VM{}, err
	}
	var used []netip.Addr
	for _, l := range leases {
		if a, err := netip.ParseAddr(l.IP); err == nil {
			used = append(used, a)
		}
	}
	ip, err := hostnet.NextFree(m.Net.Subnet(), used)
	if err != nil {
		return VM{}, api.Errorf(api.CodeFailedPrecondition, "%v", err)
	}
	v := VM{
		VM:    store.VM{ID: newVMID(), Name: name, ImageID: img.ID, State: api.VMCreating},
		Spec:  Spec{VCPUs: req.VCPUs, MemoryMiB: req.MemoryMiB, DiskBytes: req.DiskBytes, Hypervisor: hvName, Egress: req.Egress},
		Lease: store.Lease{IP: ip.String(), MAC: hostnet.MAC(ip).String()},
	}
	spec, _ := json.Marshal(v.Spec)
	v.VM.Spec, v.VM.Runtime = string(spec), "{}"
	if err := m.Store.CreateVMWithLease(ctx, &v.VM, v.Lease); err != nil {
		return VM{}, err
	}
	v.Lease.VMID = v.ID
	return v, nil
}

// Create makes and boots a VM, reporting each stage. On failure every
// resource it took is released and the record removed.
func (m *Manager) Create(ctx context.Context, req api.CreateVMRequest, p Progress) (VM, error) {
	img, err := m.ValidateCreate(ctx, &req)
	if err != nil {
		return VM{}, err
	}
	choice, err := m.Select(ctx, req.Hypervisor, p)
	if err != nil {
		return VM{}, err
	}
	hv, warning := choice.HV, choice.Warning
	if err := checkSuitable(choice, img); err != nil {
		return VM{}, err
	}
	if err := m.checkSpaceForCreate(img, req.DiskBytes); err != nil {
		return VM{}, err
	}

	p.Stage("allocate")
	v, err := m.allocate(ctx, req, img, hv.Name())
	if err != nil {
		return VM{}, err
	}
	p.Detail("%s, %s", v.Name, v.Lease.IP)
	unlock := m.lock(v.ID)
	defer unlock()
	if warning != "" {
		v.Runtime.Warnings = append(v.Runtime.Warnings, warning)
		p.Logf("warning: %s", warning)
	}
	ok := false
	defer func() {
		if !ok {
			if derr := m.destroy(context.WithoutCancel(ctx), &v); derr != nil {
				m.Log.Error("cleaning up a failed create", "vm", v.Name, "error", derr)
			}
		}
	}()

	img, _, err = m.Images.Repair(ctx, img.ID, p)
	if err != nil {
		return v, err
	}
	v.Spec.AgentVersion = img.Manifest.AgentVersion
	warm, haveWarm, notice := warmSnapshot{}, false, ""
	if !req.Cold {
		warm, haveWarm, notice = m.findWarm(ctx, img, choice, req)
		if notice != "" {
			p.Logf("%s", notice)
		}
	}
	if haveWarm {
		if err := m.createWarm(ctx, &v, img, choice, warm, p); err != nil {
			return v, err
		}
	} else {
		if err := m.makeDisks(ctx, &v, img, p); err != nil {
			return v, err
		}
		if err := m.boot(ctx, &v, img, choice, p); err != nil {
			return v, err
		}
	}
	v.State = api.VMRunning
	if err := m.save(ctx, &v); err != nil {
		return v, err
	}
	ok = true
	if !haveWarm && !req.Cold && m.AutoWarm != nil && len(m.warmSnapshots(img.ID)) == 0 {
		m.AutoWarm(img, req)
	}
	return v, nil
}

// checkSuitable refuses a hypervisor the image's kernel cannot serve.
func checkSuitable(choice Choice, img image.Image) error {
	hv := choice.HV.Name()
	k := img.Manifest.Kernel
	if hv == config.HypervisorFirecracker && !k.Firecracker && k.Release != "" {
		return &api.Error{Code: api.CodeFailedPrecondition, Field: "hypervisor", Allowed: config.HypervisorQEMU,
			Message: fmt.Sprintf("hypervisor firecracker cannot boot image %s: %s; use qemu, or an image whose kernel has CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES",
				img.Name, k.FirecrackerReason)}
	}
	if hv == config.HypervisorFirecracker && k.FirecrackerMinVersion != "" && choice.Version != "" && hypervisor.VersionLess(choice.Version, k.FirecrackerMinVersion) {
		return &api.Error{Code: api.CodeFailedPrecondition, Field: "hypervisor", Allowed: config.HypervisorQEMU,
			Message: fmt.Sprintf("hypervisor firecracker %s cannot boot image %s, which needs Firecracker %s or newer (%s): upgrade Firecracker or use qemu",
				choice.Version, img.Name, k.FirecrackerMinVersion, k.FirecrackerReason)}
	}
	if hv == config.HypervisorQEMU && !k.QEMU && k.Release != "" && k.QEMUReason != "" {
		return api.Errorf(api.CodeFailedPrecondition, "image %s cannot boot under QEMU: %s", img.Name, k.QEMUReason)
	}
	return nil
}

// makeDisks makes the VM's own disks in its directory. When the image is
// a shared base (it has an upper-seed) nothing of the rootfs is copied:
// the upper disk is cloned from the upper-seed and extended to the
// requested size, and the VM boots the image's rootfs read-only under an
// overlay. Otherwise the rootfs is cloned, as banger always did. The work
// disk is cloned from the work-seed and extended to the requested size
// either way. The host only extends the files (sparsely): the guest grows
// each file system to fill its disk at boot (internal/guest/growfs), so
// create costs the same whatever --disk says and never runs e2fsck or
// resize2fs.
func (m *Manager) makeDisks(ctx context.Context, v *VM, img image.Image, p Progress) error {
	dir := m.Dir(v.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if img.Has(image.UpperSeed) {
		p.Stage("upper disk")
		method, err := diskclone.Clone(upperDisk(dir), img.Path(image.UpperSeed))
		if err != nil {
			return fmt.Errorf("cloning the upper-seed: %w", err)
		}
		crashpoint.Here(ctx)
		if err := extend(upperDisk(dir), v.Spec.DiskBytes); err != nil {
			return fmt.Errorf("sizing the upper disk: %w", err)
		}
		v.Spec.RootLayout = RootOverlay
		p.Detail("%s, %s over the shared base", method, config.FormatSize(v.Spec.DiskBytes))
	} else {
		p.Stage("clone rootfs")
		method, err := diskclone.Clone(rootDisk(dir), img.Path(image.Rootfs))
		if err != nil {
			return fmt.Errorf("cloning the rootfs: %w", err)
		}
		p.Detail("%s", method)
	}

	p.Stage("work disk")
	if !img.Has(image.WorkSeed) {
		return fmt.Errorf("image %s has no work-seed", img.Name)
	}
	method, err := diskclone.Clone(workDisk(dir), img.Path(image.WorkSeed))
	if err != nil {
		return fmt.Errorf("cloning the work-seed: %w", err)
	}
	crashpoint.Here(ctx)
	if err := extend(workDisk(dir), v.Spec.DiskBytes); err != nil {
		return fmt.Errorf("sizing the work disk: %w", err)
	}
	p.Detail("%s, %s", method, config.FormatSize(v.Spec.DiskBytes))
	return nil
}

// extend makes the disk file at path size bytes long, sparsely. It never
// shrinks one.
func extend(path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if size < fi.Size() {
		return api.FieldErrorf("disk_bytes", AllowedDisk, "the image's seed for %s is %s, more than disk_bytes %s: ask for at least %s",
			filepath.Base(path), config.FormatSize(fi.Size()), config.FormatSize(size), config.FormatSize(fi.Size()))
	}
	return os.Truncate(path, size)
}

func rootDisk(dir string) string { return dir + "/rootfs.ext4" }
func workDisk(dir string) string { return dir + "/work.ext4" }

// upperDisk is the upper disk of a VM with an overlay root.
func upperDisk(dir string) string { return dir + "/upper.ext4" }

// ownDisks are the disks a VM of root layout owns (the shared base is
// the image's): what a fork or a warm snapshot copies.
func ownDisks(layout string) []func(dir string) string {
	if layout == RootOverlay {
		return []func(string) string{workDisk, upperDisk}
	}
	return []func(string) string{workDisk, rootDisk}
}
