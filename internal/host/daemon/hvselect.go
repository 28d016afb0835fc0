package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/doctor"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/qemu"
	"github.com/bangerdev/banger/internal/host/localsock"
	"github.com/bangerdev/banger/internal/host/operation"
	"github.com/bangerdev/banger/internal/host/vm"
)

// probeCache is the host-wide copy of the KVM probe result, valid until the
// host reboots (keyed by boot id), so fresh banger homes (tests) do not each
// pay for the probe.
type probeCache struct {
	BootID string             `json:"boot_id"`
	Record doctor.ProbeRecord `json:"record"`
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// kvmBoots reports whether KVM can boot a guest here, running the probe
// (as a stage of the caller's operation) the first time it is needed.
func (d *Daemon) kvmBoots(ctx context.Context, p vm.Progress) (bool, error) {
	if rec, err := d.lastProbe(ctx); err != nil {
		return false, err
	} else if rec != nil {
		return rec.Status == "booted", nil
	}
	cacheFile := filepath.Join(d.cfg.Paths.Cache(), "kvm-probe.json")
	if b, err := os.ReadFile(cacheFile); err == nil {
		var pc probeCache
		if json.Unmarshal(b, &pc) == nil && pc.BootID != "" && pc.BootID == bootID() {
			d.recordProbe(ctx, &pc.Record)
			return pc.Record.Status == "booted", nil
		}
	}
	run, ok := p.(*operation.Run)
	if !ok {
		return false, nil
	}
	rec, err := d.kvmProbe(ctx, run, 20*time.Second)
	if err != nil {
		return false, err
	}
	d.recordProbe(ctx, rec)
	if b, err := json.Marshal(probeCache{BootID: bootID(), Record: *rec}); err == nil {
		// The cache directory may be shared (BANGER_CACHE_DIR): never
		// write through a link someone planted there.
		os.MkdirAll(filepath.Dir(cacheFile), 0o700)
		if err := localsock.WritePrivateFile(cacheFile, b); err != nil {
			d.log.Warn("caching the kvm probe", "error", err)
		}
	}
	return rec.Status == "booted", nil
}

func (d *Daemon) recordProbe(ctx context.Context, rec *doctor.ProbeRecord) {
	if b, err := json.Marshal(rec); err == nil {
		if err := d.store.SetHostFact(ctx, factKVMProbe, string(b)); err != nil {
			d.log.Warn("recording the kvm probe", "error", err)
		}
	}
}

// selectHypervisor picks the driver for a VM: the requested one or the
// configured default ("auto": Firecracker where it is installed and KVM
// boots guests, QEMU otherwise). QEMU uses KVM when the probe says KVM
// boots guests, software emulation otherwise, with a warning.
func (d *Daemon) selectHypervisor(ctx context.Context, requested string, p vm.Progress) (vm.Choice, error) {
	want := requested
	if want == "" {
		want = d.cfg.Hypervisor
	}
	d.hvMu.Lock()
	defer d.hvMu.Unlock()
	if err := d.confineHypervisors(ctx); err != nil {
		return vm.Choice{}, err
	}
	kvm, err := d.kvmBoots(ctx, p)
	if err != nil {
		return vm.Choice{}, err
	}
	switch want {
	case config.HypervisorFirecracker:
		if d.fc == nil {
			return vm.Choice{}, &api.Error{Code: api.CodeFailedPrecondition, Field: "hypervisor", Allowed: config.HypervisorQEMU,
				Message: fmt.Sprintf("hypervisor firecracker is not usable here (%v): install it (see README) or use qemu", d.fcErr)}
		}
		if !kvm {
			return vm.Choice{}, &api.Error{Code: api.CodeFailedPrecondition, Field: "hypervisor", Allowed: config.HypervisorQEMU,
				Message: "hypervisor firecracker needs KVM, and KVM cannot boot guests on this host (see `banger doctor --deep`): use qemu"}
		}
		return vm.Choice{HV: d.fc, Accel: "kvm", Version: d.fcVersion}, nil
	case config.HypervisorAuto:
		if d.fc != nil && kvm {
			return vm.Choice{HV: d.fc, Accel: "kvm", Version: d.fcVersion}, nil
		}
	case config.HypervisorQEMU:
	default:
		return vm.Choice{}, api.FieldErrorf("hypervisor", vm.AllowedHypervisors, "hypervisor %q is unknown: use qemu or firecracker", want)
	}
	accel := qemu.AccelTCG
	warning := "KVM cannot boot guests on this host (see `banger doctor --deep`): QEMU runs this VM under software emulation, which is slow"
	if kvm {
		accel, warning = qemu.AccelKVM, ""
	}
	return vm.Choice{HV: d.qemu, Accel: accel, Warning: warning}, nil
}

// confineHypervisors sets the drivers' privileges before their first
// launch (the caller holds hvMu). A daemon running as root runs QEMU as the
// VM user (vm_user, created with useradd when missing) and Firecracker
// under the jailer as that user; jailer = false or vm_user = "" keep them
// root, with a warning. A daemon running as a normal user runs both as
// itself: the jailer needs root.
func (d *Daemon) confineHypervisors(ctx context.Context) error {
	if os.Geteuid() != 0 {
		if d.fc != nil && d.fc.Jailer {
			d.fc.Jailer = false
		}
		return nil
	}
	if d.qemu.User != nil || d.cfg.VMUser == "" && d.confinedRoot {
		return nil
	}
	if d.cfg.VMUser == "" {
		d.log.Warn("vm_user is empty: QEMU and Firecracker run as root (QEMU still under -sandbox); set vm_user = \"banger-vm\" to run them unprivileged")
		if d.fc != nil && d.fc.Jailer {
			d.fc.Jailer = false
			d.log.Warn("the jailer needs vm_user: Firecracker runs unjailed as root")
		}
		d.confinedRoot = true
		return nil
	}
	u, err := hypervisor.EnsureVMUser(ctx, d.cfg.VMUser)
	if err != nil {
		return api.Errorf(api.CodeFailedPrecondition, "%v", err)
	}
	if d.fc != nil {
		if d.fc.Jailer {
			d.fc.Jail.UID, d.fc.Jail.GID = int(u.UID), int(u.GID)
		} else {
			d.log.Warn("jailer = false: Firecracker runs as root, without chroot or cgroup limits; set jailer = true (the default) to confine it")
		}
	}
	d.qemu.User = &u
	d.log.Info("hypervisors run as the VM user", "user", u.Name, "uid", u.UID, "gid", u.GID)
	return nil
}
