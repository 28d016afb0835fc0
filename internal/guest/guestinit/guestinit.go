// Package guestinit is the code banger-agent runs as PID 1 inside an
// initramfs.
//
// It owns two inits. Init (init.go) is the real one: it loads the modules
// the initramfs lists in ModulesFile, mounts the root device named on the
// kernel command line and switches to the image's own init; its boot is
// planned as data (plan.go) and carried out by one executor over a small
// system interface. With banger.rootfs=overlay on the command line the
// new root is an overlay of the root device (read-only, shareable by
// every VM of an image) and the VM's own upper disk (plan.go). Probe is the KVM usability probe's guest side: it
// prints ProbeMarker on the console and powers the machine off; package
// kvmprobe writes the archive that carries it (WriteInitramfs), boots it
// and waits for the marker.
//
// How the probe is wired: the kernel passes every word after " -- " on its
// command line to /init as arguments, so booting the probe archive with a
// command line ending in ProbeKernelArgs runs "/init probe", and banger-agent calls
// Probe when IsProbe reports that invocation. Any other start as PID 1 under
// the name /init is the real init (IsInit).
package guestinit

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// The probe's contract with the host (agentproto).
const (
	ProbeMarker     = agentproto.ProbeMarker
	ProbeArg        = agentproto.ProbeArg
	ProbeKernelArgs = agentproto.ProbeKernelArgs
)

// IsProbe reports whether args (os.Args of banger-agent) are the probe
// invocation the kernel makes from ProbeKernelArgs: "/init probe".
func IsProbe(args []string) bool {
	return len(args) == 2 && args[1] == ProbeArg
}

// Probe writes "BANGER-PROBE-OK <kernel release>" as one line to console,
// syncs and powers the machine off. It refuses to run unless the process is
// PID 1, so running it by mistake on a host cannot switch the host off. It
// only returns on failure; the caller (PID 1) should then exit, which makes
// the kernel panic and, with panic=-1 and QEMU's -no-reboot, ends the VM.
func Probe(console io.Writer) error {
	return probe(console, hostSystem{})
}

// system is what Probe needs from the kernel, so tests can run it without
// powering anything off.
type system interface {
	Getpid() int
	KernelRelease() (string, error)
	Sync()
	PowerOff() error
}

func probe(console io.Writer, sys system) error {
	if pid := sys.Getpid(); pid != 1 {
		return fmt.Errorf("guestinit: the probe runs only as PID 1 inside the probe VM (this is PID %d); refusing to power off this machine", pid)
	}
	release, err := sys.KernelRelease()
	if err != nil {
		return fmt.Errorf("guestinit: reading the kernel release: %w", err)
	}
	if _, err := fmt.Fprintf(console, "%s %s\n", ProbeMarker, release); err != nil {
		return fmt.Errorf("guestinit: writing the probe marker to the console (is /dev/console in the initramfs?): %w", err)
	}
	sys.Sync()
	if err := sys.PowerOff(); err != nil {
		return fmt.Errorf("guestinit: powering off after the probe: %w", err)
	}
	return errors.New("guestinit: power off returned without switching the machine off")
}

// hostSystem is the real kernel.
type hostSystem struct{}

func (hostSystem) Getpid() int { return os.Getpid() }

func (hostSystem) KernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

func (hostSystem) Sync() { unix.Sync() }

func (hostSystem) PowerOff() error {
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
