// Package doctor checks the host banger runs on and explains every problem
// with its fix: KVM (present and able to boot a guest), hypervisor binaries,
// tun, iproute2, nftables, e2fsprogs, debootstrap, reflink support and the
// SSH key. Checks read the host through the small Host interface, so the
// report is tested against a fake host with golden files.
//
// A check that `banger doctor --fix` can repair names its fix
// (api.Check.AutoFix); Plan turns a report into those fixes as data
// (packages, the kvm group, host setup, the managed key) and Apply runs one
// through a Fixer, the CLI's or a recording fake.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/qemu"
)

// Host is what the checks read from the machine.
type Host interface {
	// LookPath resolves a program like exec.LookPath.
	LookPath(file string) (string, error)
	// Version runs bin with args and returns the first line it printed.
	Version(ctx context.Context, bin string, args ...string) (string, error)
	// ReadWrite reports whether the current user can open path read-write.
	ReadWrite(path string) error
	// Exists reports whether path exists.
	Exists(path string) bool
	// KVMDevice opens /dev/kvm and checks the KVM API version.
	KVMDevice() error
	// ReflinkSupported reports whether dir's filesystem can reflink files.
	ReflinkSupported(dir string) (bool, error)
	// SSHKey inspects the key at path without changing anything.
	SSHKey(path string) (fingerprint string, err error)
	// IsRoot reports whether the checks run as root (a root daemon runs
	// its hypervisors as the VM user).
	IsRoot() bool
	// LookupUser finds a system user.
	LookupUser(name string) (hypervisor.VMUser, error)
	// QEMUSandbox starts QEMU (bin) with the seccomp sandbox banger gives
	// every VM and no guest, and stops it again.
	QEMUSandbox(ctx context.Context, bin string) error
	// FreeSpace reports the bytes free to the current user and the size
	// of dir's filesystem.
	FreeSpace(dir string) (free, total uint64, err error)
}

// ProbeRecord is the outcome of the last KVM boot probe, kept by the daemon
// as a host fact so quick doctor runs can report it.
type ProbeRecord struct {
	// Status is kvmprobe's status: booted, timeout, failed or unavailable.
	Status  string       `json:"status"`
	Reason  string       `json:"reason,omitempty"`
	Elapsed api.Duration `json:"elapsed_ms"`
	At      time.Time    `json:"at"`
	Kernel  string       `json:"kernel,omitempty"`
}

// Check names, stable for scripts.
const (
	CheckConfig      = "config"
	CheckKVMDevice   = "kvm-device"
	CheckKVMBoot     = "kvm-boot"
	CheckFirecracker = "firecracker"
	CheckQEMU        = "qemu"
	CheckTun         = "tun"
	CheckIPRoute     = "iproute2"
	CheckNFTables    = "nftables"
	CheckE2fsprogs   = "e2fsprogs"
	CheckDebootstrap = "debootstrap"
	CheckReflink     = "reflink"
	CheckDiskSpace   = "disk-space"
	CheckSSHKey      = "ssh-key"
	CheckDaemon      = "daemon"
	CheckImages      = "images"
	CheckJailer      = "jailer"
	CheckVMUser      = "vm-user"
	CheckSandbox     = "qemu-sandbox"
	CheckFCImage     = "firecracker-image"
)

// FirecrackerImageCheck says whether the newest image's kernel suits
// Firecracker (and the installed release, when there is one).
func FirecrackerImageCheck(image string, k api.KernelInfo, fcVersion string) api.Check {
	switch {
	case image == "":
		return bad(CheckFCImage, api.CheckSkip, "no image yet", "run `banger image bootstrap debian`")
	case !k.Firecracker:
		return bad(CheckFCImage, api.CheckWarn, fmt.Sprintf("image %s's kernel %s cannot boot under Firecracker: %s", image, k.Release, k.FirecrackerReason),
			"VMs of this image use QEMU; for Firecracker register an image whose kernel has CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES")
	case k.FirecrackerMinVersion != "" && fcVersion != "" && hypervisor.VersionLess(fcVersion, k.FirecrackerMinVersion):
		return bad(CheckFCImage, api.CheckWarn, fmt.Sprintf("image %s needs Firecracker ≥ %s, installed %s", image, k.FirecrackerMinVersion, fcVersion),
			"upgrade Firecracker")
	case k.FirecrackerMinVersion != "":
		return ok(CheckFCImage, fmt.Sprintf("image %s suits Firecracker ≥ %s", image, k.FirecrackerMinVersion))
	}
	return ok(CheckFCImage, "image "+image+" suits Firecracker")
}

func jailerCheck(h Host, cfg *config.Config) api.Check {
	dir := ""
	if cfg.FirecrackerBin != "" {
		dir = cfg.FirecrackerBin[:strings.LastIndex(cfg.FirecrackerBin, "/")+1]
	}
	if path, err := h.LookPath(dir + "jailer"); err == nil {
		return ok(CheckJailer, path)
	}
	if path, err := h.LookPath("jailer"); err == nil {
		return ok(CheckJailer, path)
	}
	if cfg.Jailer && h.IsRoot() {
		fc := cfg.FirecrackerBin
		if fc == "" {
			fc = "firecracker"
		}
		if lookable(h, fc) {
			return bad(CheckJailer, api.CheckWarn, "jailer not found: a root daemon runs Firecracker under the jailer (jailer = true, the default), so Firecracker VMs do not start",
				"install the jailer from the same Firecracker release next to firecracker, or set jailer = false (Firecracker then runs as root)")
		}
	}
	return bad(CheckJailer, api.CheckSkip, "jailer not found (a root daemon needs it for Firecracker)",
		"install the jailer from the same Firecracker release next to firecracker")
}

func lookable(h Host, name string) bool {
	_, err := h.LookPath(name)
	return err == nil
}

// ImageProblem is one thing wrong with a registered image.
type ImageProblem struct {
	Image  string
	Detail string
	Fix    string
}

// ImagesCheck reports the health of the registered images (artifacts
// present, sizes and — in deep runs — digests matching the record).
func ImagesCheck(count int, problems []ImageProblem, deep bool) api.Check {
	how := "artifacts present with their recorded sizes"
	if deep {
		how = "artifacts present, digests match"
	}
	switch {
	case count == 0:
		return bad(CheckImages, api.CheckWarn, "no images yet", "run `banger image bootstrap debian` to make a first image")
	case len(problems) == 0:
		return ok(CheckImages, fmt.Sprintf("%d image(s), %s", count, how))
	}
	var details, fixes []string
	for _, p := range problems {
		details = append(details, p.Image+": "+p.Detail)
		fixes = append(fixes, p.Image+": "+p.Fix)
	}
	return bad(CheckImages, api.CheckWarn, strings.Join(details, "; "), strings.Join(fixes, "; "))
}

// Inputs is what a run checks against.
type Inputs struct {
	Config *config.Config
	// ConfigFileFound says whether Config came from a file or only defaults.
	ConfigFileFound bool
	// Probe is the last KVM boot probe, nil if none ran yet.
	Probe *ProbeRecord
}

// Run performs every quick check, in a fixed order.
func Run(ctx context.Context, h Host, in Inputs) api.DoctorReport {
	cfg := in.Config
	checks := []api.Check{
		configCheck(in),
		kvmDeviceCheck(h),
		KVMBootCheck(in.Probe),
		firecrackerCheck(ctx, h, cfg),
		jailerCheck(h, cfg),
		qemuCheck(ctx, h, cfg),
		sandboxCheck(ctx, h, cfg),
		vmUserCheck(h, cfg),
		tunCheck(h),
		iprouteCheck(ctx, h),
		nftablesCheck(h),
		e2fsprogsCheck(ctx, h),
		debootstrapCheck(ctx, h),
		reflinkCheck(h, cfg),
		diskSpaceCheck(h, cfg),
		sshKeyCheck(h, cfg),
	}
	return api.DoctorReport{Checks: checks}
}

func ok(name, detail string) api.Check {
	return api.Check{Name: name, Status: api.CheckOK, Detail: detail}
}

func bad(name string, st api.CheckStatus, detail, fix string) api.Check {
	return api.Check{Name: name, Status: st, Detail: detail, Fix: fix}
}

func configCheck(in Inputs) api.Check {
	if in.ConfigFileFound {
		return ok(CheckConfig, in.Config.Paths.ConfigFile)
	}
	return ok(CheckConfig, "defaults (no file at "+in.Config.Paths.ConfigFile+")")
}

// ConfigError is the check reported when the configuration does not load.
func ConfigError(err error) api.Check {
	return bad(CheckConfig, api.CheckFail, err.Error(), "correct the key named above, or remove it to use the default (`banger config validate` checks again)")
}

func kvmDeviceCheck(h Host) api.Check {
	if err := h.KVMDevice(); err != nil {
		c := bad(CheckKVMDevice, api.CheckFail, err.Error(),
			"load kvm_intel or kvm_amd and give your user access to /dev/kvm (add it to the kvm group); without KVM banger falls back to slow QEMU software emulation")
		if h.Exists(kvmPath) && errors.Is(h.ReadWrite(kvmPath), fs.ErrPermission) {
			c.AutoFix = FixKVMGroup
		}
		return c
	}
	return ok(CheckKVMDevice, "/dev/kvm is accessible")
}

// KVMBootCheck reports the last boot probe. The device file alone never
// makes this check pass: only a guest that reached userspace does.
func KVMBootCheck(p *ProbeRecord) api.Check {
	if p == nil {
		return bad(CheckKVMBoot, api.CheckSkip, "not probed yet: /dev/kvm existing does not prove a guest can boot",
			"run `banger doctor --deep` to boot a probe guest")
	}
	when := p.At.UTC().Format("2006-01-02 15:04 UTC")
	switch p.Status {
	case "booted":
		return ok(CheckKVMBoot, fmt.Sprintf("a Linux guest reached userspace under KVM in %s (probed %s)", roundDur(p.Elapsed.D()), when))
	case "unavailable":
		return bad(CheckKVMBoot, api.CheckSkip, p.Reason+" (probed "+when+")",
			"install what the reason names, then run `banger doctor --deep` again")
	default:
		return bad(CheckKVMBoot, api.CheckFail, p.Reason+" (probed "+when+")",
			"nothing to do for QEMU VMs, which then run under software emulation (slow); Firecracker needs a host where KVM boots guests (bare metal, or working nested virtualisation)")
	}
}

func roundDur(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func binaryVersion(ctx context.Context, h Host, bin string, args ...string) (path, version string, err error) {
	path, err = h.LookPath(bin)
	if err != nil {
		return "", "", err
	}
	version, verr := h.Version(ctx, path, args...)
	if verr != nil {
		version = "version unknown: " + verr.Error()
	}
	return path, version, nil
}

func firecrackerCheck(ctx context.Context, h Host, cfg *config.Config) api.Check {
	bin := cfg.FirecrackerBin
	where := "firecracker_bin = " + bin
	if bin == "" {
		bin, where = "firecracker", "PATH"
	}
	path, version, err := binaryVersion(ctx, h, bin, "--version")
	if err != nil {
		st := api.CheckWarn
		detail := "firecracker not found on " + where + ": QEMU will run the VMs"
		if cfg.Hypervisor == "firecracker" {
			st, detail = api.CheckFail, "hypervisor = \"firecracker\" but firecracker is not found on "+where
		}
		return bad(CheckFirecracker, st, detail,
			"install a Firecracker release binary and put it on PATH, or set firecracker_bin in the config")
	}
	return ok(CheckFirecracker, version+" ("+path+")")
}

func qemuCheck(ctx context.Context, h Host, cfg *config.Config) api.Check {
	path, version, err := binaryVersion(ctx, h, cfg.QEMUBin, "--version")
	if err != nil {
		st := api.CheckFail
		if cfg.Hypervisor == "firecracker" {
			st = api.CheckWarn
		}
		c := bad(CheckQEMU, st, cfg.QEMUBin+" not found",
			"apt-get install qemu-system-x86, or set qemu_bin in the config")
		if cfg.QEMUBin == config.DefaultQEMUBin {
			c.AutoFix = FixPackagePrefix + "qemu-system-x86"
		}
		return c
	}
	return ok(CheckQEMU, version+" ("+path+")")
}

// sandboxCheck starts QEMU with banger's -sandbox: a QEMU built without
// seccomp refuses it, and then no VM starts.
func sandboxCheck(ctx context.Context, h Host, cfg *config.Config) api.Check {
	path, err := h.LookPath(cfg.QEMUBin)
	if err != nil {
		return bad(CheckSandbox, api.CheckSkip, "no QEMU to check", "install QEMU first (see the qemu check)")
	}
	if err := h.QEMUSandbox(ctx, path); err != nil {
		return bad(CheckSandbox, api.CheckFail, path+" does not run with -sandbox: "+errText(err),
			"install a QEMU built with seccomp (Debian's qemu-system-x86 is): banger runs every VM under -sandbox")
	}
	return ok(CheckSandbox, "seccomp filter accepted ("+qemu.Sandbox+")")
}

// vmUserCheck reports the user a root daemon runs QEMU and the jailed
// Firecracker as. The daemon creates it on the first launch; a missing
// one is only a warning.
func vmUserCheck(h Host, cfg *config.Config) api.Check {
	if !h.IsRoot() {
		return bad(CheckVMUser, api.CheckSkip, "not root: hypervisors run as the daemon's own user", "nothing to do")
	}
	if cfg.VMUser == "" {
		return bad(CheckVMUser, api.CheckWarn, "vm_user is empty: QEMU and Firecracker run as root (QEMU under -sandbox)",
			`set vm_user = "`+config.DefaultVMUser+`" so that a guest escaping into its hypervisor is not root`)
	}
	u, err := h.LookupUser(cfg.VMUser)
	if err != nil {
		return bad(CheckVMUser, api.CheckWarn, errText(err),
			"the daemon creates it before the first VM starts; or run "+strings.Join(hypervisor.UserAddCommand(cfg.VMUser), " "))
	}
	return ok(CheckVMUser, fmt.Sprintf("%s (uid %d, gid %d) runs QEMU and the jailed Firecracker", u.Name, u.UID, u.GID))
}

func tunCheck(h Host) api.Check {
	if err := h.ReadWrite("/dev/net/tun"); err != nil {
		return bad(CheckTun, api.CheckFail, "/dev/net/tun: "+errText(err),
			"run `modprobe tun`; rootless users need `sudo banger host setup` to get a TAP pool of their own")
	}
	return ok(CheckTun, "/dev/net/tun is usable")
}

func iprouteCheck(ctx context.Context, h Host) api.Check {
	path, version, err := binaryVersion(ctx, h, "ip", "-V")
	if err != nil {
		return withAutoFix(bad(CheckIPRoute, api.CheckWarn, "ip not found", "apt-get install iproute2"), FixPackagePrefix+"iproute2")
	}
	return ok(CheckIPRoute, version+" ("+path+")")
}

func nftablesCheck(h Host) api.Check {
	if !h.Exists("/sys/module/nf_tables") && !h.Exists("/proc/net/netfilter") {
		return bad(CheckNFTables, api.CheckFail, "the kernel offers no nf_tables",
			"run `modprobe nf_tables` (banger programs NAT through netlink; the nft tool is not needed)")
	}
	return ok(CheckNFTables, "nf_tables available in the kernel")
}

func e2fsprogsCheck(ctx context.Context, h Host) api.Check {
	var missing []string
	for _, b := range []string{"mkfs.ext4", "resize2fs", "debugfs"} {
		if _, err := h.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return withAutoFix(bad(CheckE2fsprogs, api.CheckFail, "missing "+strings.Join(missing, ", "), "apt-get install e2fsprogs"), FixPackagePrefix+"e2fsprogs")
	}
	_, version, _ := binaryVersion(ctx, h, "mkfs.ext4", "-V")
	return ok(CheckE2fsprogs, version)
}

func debootstrapCheck(ctx context.Context, h Host) api.Check {
	_, version, err := binaryVersion(ctx, h, "debootstrap", "--version")
	if err != nil {
		return withAutoFix(bad(CheckDebootstrap, api.CheckWarn, "debootstrap not found: `banger image bootstrap debian` cannot run",
			"apt-get install debootstrap"), FixPackagePrefix+"debootstrap")
	}
	return ok(CheckDebootstrap, version)
}

func reflinkCheck(h Host, cfg *config.Config) api.Check {
	dir := cfg.Paths.StateDir
	supported, err := h.ReflinkSupported(dir)
	switch {
	case err != nil:
		return bad(CheckReflink, api.CheckSkip, "cannot test "+dir+": "+errText(err),
			"create the state directory (any banger command does) and run doctor again")
	case !supported:
		return bad(CheckReflink, api.CheckWarn, "no reflink on the filesystem of "+dir+": disks are cloned by sparse copy (fast, not instant)",
			"for instant clones put state_dir on XFS or btrfs")
	}
	return ok(CheckReflink, "reflink clones on "+dir)
}

// diskSpaceCheck warns when the state directory's filesystem cannot hold
// one more VM of the default size: its disks are sparse and grow there
// (create checks the full size of the VM it makes).
func diskSpaceCheck(h Host, cfg *config.Config) api.Check {
	dir := cfg.Paths.StateDir
	free, total, err := h.FreeSpace(dir)
	if err != nil {
		return bad(CheckDiskSpace, api.CheckSkip, "cannot read the free space of "+dir+": "+errText(err),
			"create the state directory (any banger command does) and run doctor again")
	}
	need := uint64(cfg.VM.DiskBytes) + 1<<30
	detail := fmt.Sprintf("%s free of %s on the filesystem of %s", gib(free), gib(total), dir)
	if free < need {
		return bad(CheckDiskSpace, api.CheckWarn, detail+fmt.Sprintf(": less than one default VM's disks need (%s)", gib(need)),
			"free space there, or move state_dir to a larger filesystem")
	}
	return ok(CheckDiskSpace, detail)
}

// gib writes a size in GiB with one decimal.
func gib(n uint64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

func sshKeyCheck(h Host, cfg *config.Config) api.Check {
	path, managed := cfg.SSHKey, false
	if path == "" {
		path, managed = cfg.Paths.ManagedSSHKey(), true
	}
	fp, err := h.SSHKey(path)
	switch {
	case err == nil && managed:
		return ok(CheckSSHKey, "managed key "+path+" ("+fp+")")
	case err == nil:
		return ok(CheckSSHKey, "configured key "+path+" ("+fp+")")
	case managed && errors.Is(err, fs.ErrNotExist):
		return withAutoFix(ok(CheckSSHKey, "managed key "+path+" is generated on first use"), FixManagedKey)
	case managed:
		return bad(CheckSSHKey, api.CheckFail, "managed key "+path+": "+errText(err), "move "+path+" aside; banger generates a new managed key")
	}
	return bad(CheckSSHKey, api.CheckFail, "configured key "+path+": "+errText(err),
		"create it with `ssh-keygen -t ed25519 -N '' -f "+path+"`, or remove ssh_key from the config to use a managed key")
}

func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
