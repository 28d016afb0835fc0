package qemu

import (
	"fmt"
	"hash/fnv"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/bangerdev/banger/internal/agentproto"
	"github.com/bangerdev/banger/internal/hypervisor"
)

// Files QEMU and the driver keep in Spec.Dir.
const (
	QMPSocket   = "qmp.sock"
	AgentSocket = "agent.sock"
	PIDFile     = "qemu.pid"
	StderrFile  = "qemu.stderr"
	ConsoleFile = "console.log"
)

// Accelerators.
const (
	// AccelKVM runs the guest with hardware virtualisation, by default on
	// the microvm machine.
	AccelKVM = "kvm"
	// AccelTCG emulates the CPU (slow), by default on q35: the project's
	// measurements found microvm under TCG unusably slow on some hosts.
	AccelTCG = "tcg"
)

// Machine is a QEMU machine type.
type Machine string

const (
	// Microvm is QEMU's minimal machine: virtio-mmio devices (described
	// to the guest in ACPI, acpi=on, which also gives system_powerdown a
	// power button), one ISA serial port, and an uncompressed ELF kernel
	// (Boot.Vmlinux) booted through its PVH entry point.
	Microvm Machine = "microvm"
	// Q35 is a PC with PCIe: virtio-pci devices, ACPI, and a bzImage
	// (Boot.Vmlinuz).
	Q35 Machine = "q35"
)

// MachineFor returns the machine for an accelerator: Microvm for
// AccelKVM, Q35 otherwise.
func MachineFor(accel string) Machine {
	if accel == AccelKVM {
		return Microvm
	}
	return Q35
}

// CmdlinePrefix starts every guest's kernel command line on q35: the
// serial console, reboot through the keyboard controller (which QEMU turns
// into an exit with -no-reboot), and an immediate reboot — hence exit — on
// panic. Spec.Boot.Cmdline follows.
const CmdlinePrefix = "console=ttyS0 reboot=k panic=-1 "

// MicrovmCmdlinePrefix is CmdlinePrefix for microvm, which has no keyboard
// controller: QEMU's microvm documentation recommends a triple fault
// (reboot=t) so that -no-reboot ends QEMU.
const MicrovmCmdlinePrefix = "console=ttyS0 reboot=t panic=-1 "

// Paths are the files of one VM in its runtime directory.
type Paths struct {
	Dir, QMP, Agent, PID, Stderr, Console string
}

// PathsIn returns the files of the VM whose runtime directory is dir.
func PathsIn(dir string) Paths {
	return Paths{
		Dir:     dir,
		QMP:     filepath.Join(dir, QMPSocket),
		Agent:   filepath.Join(dir, AgentSocket),
		PID:     filepath.Join(dir, PIDFile),
		Stderr:  filepath.Join(dir, StderrFile),
		Console: filepath.Join(dir, ConsoleFile),
	}
}

// CID is the vsock context ID of the VM with this id: FNV-1a of the id
// mapped into 3..2^32-2 (0-2 are reserved for the hypervisor, the local
// loopback and the host; 2^32-1 is VMADDR_CID_ANY). The same id always
// gets the same CID, so a restarted daemon can dial an adopted VM. Two ids
// collide with a chance of about n²/2^33 for n VMs; QEMU then refuses the
// second launch with "unable to set guest cid: Address already in use".
func CID(id string) uint32 {
	h := fnv.New64a()
	h.Write([]byte(id))
	const lo, hi = 3, 1<<32 - 2
	return uint32(lo + h.Sum64()%(hi-lo+1))
}

// Args returns QEMU's command line (without the binary) for spec on
// machine m with accelerator accel (-cpu host with AccelKVM, -cpu max
// otherwise). Microvm gets virtio-mmio devices and Boot.Vmlinux, Q35
// virtio-pci devices and Boot.Vmlinuz. agent selects the agent
// channel: hypervisor.AgentVsock adds a vhost-vsock device with CID(spec.ID);
// anything else a virtio-serial port named agentproto.SerialPortName
// behind the unix socket Dir/agent.sock.
//
// Disks are raw files with cache=writeback: the host page cache absorbs
// the guest's I/O (much faster under TCG, and it works on every host
// filesystem, where cache=none's O_DIRECT fails on tmpfs), and QEMU still
// turns the guest's flushes into fdatasync, so a guest that flushes its
// journal loses nothing to a host crash. discard=unmap lets the guest's
// TRIM punch holes back into the sparse files.
//
// Args is pure: it reads no files and checks nothing (Launch validates the
// spec first).
func Args(spec hypervisor.Spec, accel string, m Machine, agent hypervisor.AgentTransport) []string {
	p := PathsIn(spec.Dir)
	microvm := m == Microvm
	vcpus, mem := spec.VCPUs, spec.MemoryMiB
	if vcpus <= 0 {
		vcpus = DefaultVCPUs
	}
	if mem <= 0 {
		mem = DefaultMemoryMiB
	}

	var a []string
	add := func(s ...string) { a = append(a, s...) }
	add("-name", "guest="+escape(spec.ID))
	machine := escape(string(m)) + ",accel=" + escape(accel)
	if microvm {
		machine += ",acpi=on"
	}
	cpu := "max"
	if accel == AccelKVM {
		cpu = "host"
	}
	add("-machine", machine, "-cpu", cpu)
	add("-smp", strconv.Itoa(vcpus), "-m", strconv.Itoa(mem))
	add("-nodefaults", "-no-user-config", "-nographic", "-display", "none", "-no-reboot")
	add("-pidfile", p.PID)
	add("-qmp", "unix:"+escape(p.QMP)+",server=on,wait=off")
	// The console goes to a file QEMU opens with O_APPEND, so the driver
	// can trim it in place (see console.go).
	add("-chardev", "file,id=con,path="+escape(p.Console)+",append=on", "-serial", "chardev:con")

	if microvm {
		add("-kernel", spec.Boot.Vmlinux)
	} else {
		add("-kernel", spec.Boot.Vmlinuz)
	}
	if spec.Boot.Initrd != "" {
		add("-initrd", spec.Boot.Initrd)
	}
	prefix := CmdlinePrefix
	if microvm {
		prefix = MicrovmCmdlinePrefix
	}
	add("-append", strings.TrimSpace(prefix+spec.Boot.Cmdline))

	dev := func(pci, mmio string) string {
		if microvm {
			return mmio
		}
		return pci
	}
	for i, d := range spec.Disks {
		id := fmt.Sprintf("disk%d", i)
		drive := "file=" + escape(d.Path) + ",if=none,id=" + id + ",format=raw,cache=writeback"
		if d.ReadOnly {
			drive += ",readonly=on"
		} else {
			drive += ",discard=unmap"
		}
		device := dev("virtio-blk-pci", "virtio-blk-device") + ",drive=" + id
		if serialRE.MatchString(d.ID) {
			// The guest sees it in /sys/block/vdX/serial.
			device += ",serial=" + d.ID
		}
		add("-drive", drive, "-device", device)
	}
	if spec.NIC != nil {
		add("-netdev", "tap,id=net0,ifname="+escape(spec.NIC.TAP)+",script=no,downscript=no,vhost=off",
			"-device", dev("virtio-net-pci", "virtio-net-device")+",netdev=net0,mac="+escape(spec.NIC.MAC))
	}
	if agent == hypervisor.AgentVsock {
		add("-device", dev("vhost-vsock-pci", "vhost-vsock-device")+",guest-cid="+strconv.FormatUint(uint64(CID(spec.ID)), 10))
	} else {
		add("-device", dev("virtio-serial-pci", "virtio-serial-device")+",id=vser0",
			"-chardev", "socket,id=agent,path="+escape(p.Agent)+",server=on,wait=off",
			"-device", "virtserialport,bus=vser0.0,chardev=agent,name="+agentproto.SerialPortName)
	}
	return a
}

// Defaults for a Spec that leaves the machine size zero.
const (
	DefaultVCPUs     = 1
	DefaultMemoryMiB = 512
)

// serialRE is what a disk ID must look like to become the virtio-blk
// serial (at most 20 bytes, nothing QEMU's option parser treats specially).
var serialRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,20}$`)

// escape doubles commas, so a value cannot end a QEMU option early.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
