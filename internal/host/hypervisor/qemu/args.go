package qemu

import (
	"fmt"
	"hash/fnv"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/agentproto"
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
// panic. q35 is the machine for software emulation (MachineFor), where a
// busy host can starve the emulated CPU long enough for the kernel's
// IO-APIC timer check to give up and panic ("IO-APIC + timer doesn't
// work!"): no_timer_check skips that check, as cloud images booted under
// QEMU do. Spec.Boot.Cmdline follows.
const CmdlinePrefix = "console=ttyS0 reboot=k panic=-1 no_timer_check "

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
	return args(spec, accel, m, agent, nil)
}

// Passed are the descriptors a daemon running as root opens for a QEMU
// that runs as the VM user (Driver.User), which may open none of the VM's
// files itself: each field is the descriptor number QEMU inherits.
type Passed struct {
	// QMP and Agent are unix sockets the daemon bound at Paths.QMP and
	// Paths.Agent (mode 0600, root's); QEMU listens on them, so their
	// peer credentials are QEMU's. Agent is unused with vsock.
	QMP, Agent int
	// Console is the console log, open for appending.
	Console int
	// Kernel and Initrd are sealed in-memory copies (memfd) of the boot
	// files, which QEMU reads through /proc/self/fd: a memfd can be
	// reopened by any holder, a root-only image file cannot. Initrd is
	// unused when the spec has none.
	Kernel, Initrd int
	// Disks are the spec's disks, in order.
	Disks []DiskFDs
	// TAP is the NIC's TAP queue, attached by the daemon; unused without
	// a NIC.
	TAP int
	// VhostVsock is an open /dev/vhost-vsock; unused without vsock.
	VhostVsock int
}

// DiskFDs are one disk's descriptors, in one QEMU fd set: QEMU opens an
// image read-only first and read-write when the guest device attaches.
type DiskFDs struct {
	RO int
	RW int // unused for a read-only disk
}

// ArgsPassed is Args for a QEMU that runs as the VM user: every file is a
// passed descriptor (fds) instead of a path, and there is no -pidfile (the
// driver locks the pid file for QEMU; see Launch).
func ArgsPassed(spec hypervisor.Spec, accel string, m Machine, agent hypervisor.AgentTransport, fds Passed) []string {
	return args(spec, accel, m, agent, &fds)
}

// Sandbox is QEMU's seccomp filter, on for every VM: no obsolete system
// calls, no set*uid/set*gid, no fork or exec, no scheduler or priority
// changes. A guest that takes over QEMU keeps only what QEMU needs to run.
const Sandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

func args(spec hypervisor.Spec, accel string, m Machine, agent hypervisor.AgentTransport, fds *Passed) []string {
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
	add("-sandbox", Sandbox)
	// fdset adds descriptors to one QEMU fd set, named by the first.
	fdset := func(fd ...int) string {
		for _, f := range fd {
			add("-add-fd", "fd="+strconv.Itoa(f)+",set="+strconv.Itoa(fd[0]))
		}
		return "/dev/fdset/" + strconv.Itoa(fd[0])
	}
	console := escape(p.Console)
	if fds == nil {
		add("-pidfile", p.PID)
		add("-qmp", "unix:"+escape(p.QMP)+",server=on,wait=off")
	} else {
		add("-chardev", "socket,id=qmp,fd="+strconv.Itoa(fds.QMP)+",server=on,wait=off", "-mon", "chardev=qmp,mode=control")
		console = fdset(fds.Console)
	}
	// The console goes to a file QEMU opens with O_APPEND, so the driver
	// can trim it in place (see console.go).
	add("-chardev", "file,id=con,path="+console+",append=on", "-serial", "chardev:con")

	kernel, initrd := spec.Boot.Vmlinuz, spec.Boot.Initrd
	if microvm {
		kernel = spec.Boot.Vmlinux
	}
	if fds != nil {
		kernel = "/proc/self/fd/" + strconv.Itoa(fds.Kernel)
		if initrd != "" {
			initrd = "/proc/self/fd/" + strconv.Itoa(fds.Initrd)
		}
	}
	add("-kernel", kernel)
	if initrd != "" {
		add("-initrd", initrd)
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
		file := escape(d.Path)
		if fds != nil {
			if d.ReadOnly {
				file = fdset(fds.Disks[i].RO)
			} else {
				file = fdset(fds.Disks[i].RW, fds.Disks[i].RO)
			}
		}
		drive := "file=" + file + ",if=none,id=" + id + ",format=raw,cache=writeback"
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
		tap := "ifname=" + escape(spec.NIC.TAP) + ",script=no,downscript=no"
		if fds != nil {
			tap = "fd=" + strconv.Itoa(fds.TAP)
		}
		add("-netdev", "tap,id=net0,"+tap+",vhost=off",
			"-device", dev("virtio-net-pci", "virtio-net-device")+",netdev=net0,mac="+escape(spec.NIC.MAC))
	}
	if agent == hypervisor.AgentVsock {
		vsock := dev("vhost-vsock-pci", "vhost-vsock-device") + ",guest-cid=" + strconv.FormatUint(uint64(CID(spec.ID)), 10)
		if fds != nil {
			vsock += ",vhostfd=" + strconv.Itoa(fds.VhostVsock)
		}
		add("-device", vsock)
	} else {
		chardev := "path=" + escape(p.Agent)
		if fds != nil {
			chardev = "fd=" + strconv.Itoa(fds.Agent)
		}
		add("-device", dev("virtio-serial-pci", "virtio-serial-device")+",id=vser0",
			"-chardev", "socket,id=agent,"+chardev+",server=on,wait=off",
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
