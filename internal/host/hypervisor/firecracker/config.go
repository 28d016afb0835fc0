package firecracker

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/localsock"
)

// Files the driver keeps in Spec.Dir. When the VM is jailed, the sockets,
// log and metrics live in its chroot instead (see JailConfig); the console
// log and Firecracker's stderr stay in Spec.Dir.
const (
	APISocket   = "fc.sock"
	VsockSocket = "vsock.sock"
	ConsoleFile = "console.log"
	LogFile     = "firecracker.log"
	MetricsFile = "firecracker.metrics"
	StderrFile  = "firecracker.stderr"
)

// GuestCID is every guest's vsock context ID. Firecracker's vsock is
// hybrid: the host end is a unix socket of the VM's own, not the host
// kernel's vhost-vsock, so the CIDs of different VMs never meet and each
// guest can take the lowest CID that is not reserved.
const GuestCID = 3

// NICID is the iface_id of the guest's only network interface.
const NICID = "eth0"

// CmdlinePrefix starts every guest's kernel command line; Spec.Boot.Cmdline
// follows. Firecracker replaces its default command line by boot_args, so
// this is what banger keeps of that default: the serial console (ttyS0,
// which Firecracker connects to its stdout), reboot through the keyboard
// controller (a guest reboot ends Firecracker), a reboot (hence exit) one
// second after a panic, and Firecracker's i8042 settings (no mouse port,
// no multiplexer, no LED control: a faster boot; the keyboard stays,
// which SendCtrlAltDel needs). Left out on purpose: nomodule (banger's
// initramfs loads modules), 8250.nr_uarts=0 (it would silence the
// console) and i8042.nopnp (it breaks Ctrl-Alt-Del on ACPI guests,
// Firecracker v1.12.0 changelog). Releases before PCISince also get
// pci=off, which later releases add themselves.
const CmdlinePrefix = "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd"

// BootArgs returns the kernel command line the driver gives Firecracker
// release v for a guest whose banger part is cmdline.
func BootArgs(cmdline string, v *semver.Version) string {
	args := CmdlinePrefix
	if v.LessThan(PCISince) {
		args += " pci=off"
	}
	if c := strings.TrimSpace(cmdline); c != "" {
		args += " " + c
	}
	return args
}

// Request bodies. Only the fields the driver sends: every struct Firecracker
// decodes them into rejects unknown fields (serde deny_unknown_fields), so
// nothing optional is sent that an older release might not know.
type (
	loggerBody struct {
		LogPath       string `json:"log_path"`
		Level         string `json:"level"`
		ShowLevel     bool   `json:"show_level"`
		ShowLogOrigin bool   `json:"show_log_origin"`
	}
	metricsBody struct {
		MetricsPath string `json:"metrics_path"`
	}
	machineConfigBody struct {
		VCPUCount  int `json:"vcpu_count"`
		MemSizeMiB int `json:"mem_size_mib"`
	}
	bootSourceBody struct {
		KernelImagePath string `json:"kernel_image_path"`
		InitrdPath      string `json:"initrd_path,omitempty"`
		BootArgs        string `json:"boot_args"`
	}
	driveBody struct {
		DriveID      string `json:"drive_id"`
		PathOnHost   string `json:"path_on_host"`
		IsRootDevice bool   `json:"is_root_device"`
		IsReadOnly   bool   `json:"is_read_only"`
	}
	networkInterfaceBody struct {
		IfaceID     string `json:"iface_id"`
		HostDevName string `json:"host_dev_name"`
		GuestMAC    string `json:"guest_mac,omitempty"`
	}
	vsockBody struct {
		GuestCID uint32 `json:"guest_cid"`
		UDSPath  string `json:"uds_path"`
	}
	entropyBody struct{}
	actionBody  struct {
		ActionType string `json:"action_type"`
	}
)

// call is one API request of a launch: the sequence is data, so a test
// can compare it, and Launch applies it in order.
type call struct {
	// Step is what failed when Firecracker refuses the request:
	// "configuring drives".
	Step         string
	Method, Path string
	Body         any
}

// fcPaths are the files as Firecracker opens them: host paths, or paths
// inside the chroot when the VM is jailed.
type fcPaths struct {
	Log, Metrics, Kernel, Initrd, Vsock string
	Disks                               []string // in Spec.Disks order
}

// launchCalls is the configuration sequence for spec on release v, ending
// with InstanceStart.
//
// The drives: banger boots through its initramfs, which mounts the root
// filesystem named by root= in Spec.Boot.Cmdline (root=/dev/vda), and the
// work disk must be /dev/vdb. Firecracker attaches drives in the order
// they were added, except that a drive with is_root_device=true is moved
// to the front and makes Firecracker append its own root=/dev/vda and
// ro/rw to the command line. So no drive is a root device: the disks are
// added in Spec.Disks order (the root filesystem first, /dev/vda; the work
// disk second, /dev/vdb) and the command line says root= once, as banger
// wrote it.
func launchCalls(spec hypervisor.Spec, p fcPaths, v *semver.Version) []call {
	calls := append(setupCalls(p), []call{
		{"configuring the machine", http.MethodPut, "/machine-config", machineConfigBody{VCPUCount: spec.VCPUs, MemSizeMiB: spec.MemoryMiB}},
		{"configuring the boot source", http.MethodPut, "/boot-source", bootSourceBody{
			KernelImagePath: p.Kernel,
			InitrdPath:      p.Initrd,
			BootArgs:        BootArgs(spec.Boot.Cmdline, v),
		}},
	}...)
	for i, disk := range spec.Disks {
		calls = append(calls, call{"configuring drives", http.MethodPut, "/drives/" + disk.ID, driveBody{
			DriveID:    disk.ID,
			PathOnHost: p.Disks[i],
			IsReadOnly: disk.ReadOnly,
		}})
	}
	if n := spec.NIC; n != nil {
		calls = append(calls, call{"configuring the network interface", http.MethodPut, "/network-interfaces/" + NICID, networkInterfaceBody{
			IfaceID:     NICID,
			HostDevName: n.TAP,
			GuestMAC:    n.MAC,
		}})
	}
	calls = append(calls, call{"configuring vsock", http.MethodPut, "/vsock", vsockBody{GuestCID: GuestCID, UDSPath: p.Vsock}})
	if v.GreaterThanEqual(EntropySince) {
		calls = append(calls, call{"configuring the entropy device", http.MethodPut, "/entropy", entropyBody{}})
	}
	return append(calls, call{"starting the microVM", http.MethodPut, "/actions", actionBody{ActionType: "InstanceStart"}})
}

// setupCalls configure the logger and the metrics: what a launch and a
// restore both send first (a snapshot load allows nothing else before it).
func setupCalls(p fcPaths) []call {
	return []call{
		{"configuring the logger", http.MethodPut, "/logger", loggerBody{LogPath: p.Log, Level: "Warning", ShowLevel: true}},
		{"configuring metrics", http.MethodPut, "/metrics", metricsBody{MetricsPath: p.Metrics}},
	}
}

// MaxVCPUs is the most vCPUs Firecracker gives a microVM.
const MaxVCPUs = 32

// maxSocketPath is the longest path a sockaddr_un holds.
const maxSocketPath = localsock.MaxPath

// SocketPaths are the longest Unix socket paths Firecracker uses in the
// directory dir (a VM's runtime directory, or its jail's root): the API
// socket, and the vsock socket with the longest suffix a guest-initiated
// connection adds. Each must fit in maxSocketPath, which the config's
// state_dir is held to as well.
func SocketPaths(dir string) []string {
	return []string{filepath.Join(dir, APISocket), filepath.Join(dir, VsockSocket) + longestVsockSuffix}
}

// longestVsockSuffix is the longest suffix of a guest-initiated
// connection's listener: Firecracker connects to uds_path + "_" + the
// 32-bit port.
const longestVsockSuffix = "_4294967295"

// Firecracker's API resource IDs (drive_id, iface_id): alphanumeric and '_'.
var resourceIDRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// Firecracker's instance IDs (--id): alphanumeric and '-', 1 to 64 bytes.
var instanceIDRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// validate checks the spec before anything runs, so the error names what
// is wrong (a missing file by its path) instead of Firecracker's fault.
func validate(spec hypervisor.Spec) error {
	if err := validateShape(spec); err != nil {
		return err
	}
	if spec.Boot.Vmlinux == "" {
		return errors.New("Firecracker boots an uncompressed ELF kernel (Boot.Vmlinux) and the spec has none: stage the image's kernel again")
	}
	if err := hypervisor.RegularFile(spec.Boot.Vmlinux); err != nil {
		return fmt.Errorf("kernel %s: %w: stage the image's kernel again", spec.Boot.Vmlinux, err)
	}
	if spec.Boot.Initrd != "" {
		if err := hypervisor.RegularFile(spec.Boot.Initrd); err != nil {
			return fmt.Errorf("initrd %s: %w: stage the image's kernel again", spec.Boot.Initrd, err)
		}
	}
	return nil
}

// validateShape checks what a launch and a restore both need: the id, the
// runtime directory, the machine, the disks and the NIC.
func validateShape(spec hypervisor.Spec) error {
	if !instanceIDRE.MatchString(spec.ID) {
		return fmt.Errorf("VM id %q is not a Firecracker instance id (1 to 64 letters, digits and '-')", spec.ID)
	}
	if spec.Accel != "" && spec.Accel != "kvm" {
		return fmt.Errorf("accelerator %q: Firecracker runs guests with KVM only; use the QEMU driver for software emulation", spec.Accel)
	}
	if spec.Dir == "" || !filepath.IsAbs(spec.Dir) {
		return fmt.Errorf("runtime directory %q is not an absolute path", spec.Dir)
	}
	if spec.VCPUs < 1 || spec.VCPUs > MaxVCPUs {
		return fmt.Errorf("%d vCPUs: Firecracker runs 1 to %d", spec.VCPUs, MaxVCPUs)
	}
	if spec.MemoryMiB <= 0 {
		return fmt.Errorf("%d MiB of memory: give the VM some", spec.MemoryMiB)
	}
	seen := map[string]bool{}
	for _, disk := range spec.Disks {
		if !resourceIDRE.MatchString(disk.ID) {
			return fmt.Errorf("disk id %q is not a Firecracker drive id (letters, digits and '_')", disk.ID)
		}
		if seen[disk.ID] {
			return fmt.Errorf("two disks have the id %q", disk.ID)
		}
		seen[disk.ID] = true
		if err := hypervisor.RegularFile(disk.Path); err != nil {
			return fmt.Errorf("disk %s (%s): %w: recreate the VM's disks", disk.ID, disk.Path, err)
		}
	}
	if n := spec.NIC; n != nil {
		if n.TAP == "" {
			return errors.New("the NIC has no TAP device: take one from the pool")
		}
		if len(n.TAP) > 15 {
			return fmt.Errorf("TAP device name %q is longer than the 15 bytes Linux allows", n.TAP)
		}
		if mac, err := net.ParseMAC(n.MAC); err != nil || len(mac) != 6 {
			return fmt.Errorf("NIC MAC %q is not a 6-byte MAC address", n.MAC)
		}
	}
	return nil
}

func checkSocketPaths(paths ...string) error {
	for _, s := range paths {
		if len(s) > maxSocketPath {
			return fmt.Errorf("socket path %s is %d bytes, over the %d a unix socket allows: use a shorter runtime directory", s, len(s), maxSocketPath)
		}
	}
	return nil
}
