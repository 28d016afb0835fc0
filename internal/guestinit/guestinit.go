// Package guestinit is the code banger-agent runs as PID 1 inside an
// initramfs.
//
// It owns two inits. Init (init.go) is the real one: it loads the modules
// the initramfs lists in ModulesFile, mounts the root device named on the
// kernel command line and switches to the image's own init; its boot is
// planned as data (plan.go) and carried out by one executor over a small
// system interface. Probe is the KVM usability probe's guest side: it
// prints ProbeMarker on the console and powers the machine off;
// ProbeInitramfs writes the archive that carries it, and package kvmprobe
// boots that archive and waits for the marker.
//
// How the probe is wired: the kernel passes every word after " -- " on its
// command line to /init as arguments, so booting ProbeInitramfs with a command
// line ending in ProbeKernelArgs runs "/init probe", and banger-agent calls
// Probe when IsProbe reports that invocation. Any other start as PID 1 under
// the name /init is the real init (IsInit).
package guestinit

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/initramfs"
)

const (
	// ProbeMarker starts the line Probe writes to the console once the guest
	// runs userspace code. The host looks for it in the serial log.
	ProbeMarker = "BANGER-PROBE-OK"

	// ProbeArg is the argument that makes banger-agent run Probe.
	ProbeArg = "probe"

	// ProbeKernelArgs ends the kernel command line of a probe boot: the
	// kernel hands the words after "--" to /init as its arguments.
	ProbeKernelArgs = "-- " + ProbeArg
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

// ProbeInitramfs writes the probe initramfs to w: /init is agentBinary (a
// static Linux executable that calls Probe when IsProbe(os.Args)), plus the
// /dev/console device (5:1) the kernel opens as init's stdin, stdout and
// stderr, and empty /dev, /proc and /sys directories.
func ProbeInitramfs(w io.Writer, agentBinary string) error {
	info, err := os.Stat(agentBinary)
	if err != nil {
		return fmt.Errorf("guestinit: probe initramfs needs the banger-agent binary: %w", err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("guestinit: probe initramfs: agent binary %s is not a regular file", agentBinary)
	}
	if err := checkStatic(agentBinary); err != nil {
		return err
	}
	a := initramfs.NewWriter(w)
	steps := []func() error{
		func() error { return a.AddDir("dev", 0o755) },
		func() error { return a.AddCharDev("dev/console", 0o600, 5, 1) },
		func() error { return a.AddDir("proc", 0o555) },
		func() error { return a.AddDir("sys", 0o555) },
		func() error { return a.AddFileFrom("init", 0o755, agentBinary) },
		a.Close,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("guestinit: writing probe initramfs: %w", err)
		}
	}
	return nil
}

// checkStatic makes sure path is an ELF executable without a program
// interpreter: the initramfs holds no dynamic loader or libc, so the kernel
// could not start a dynamically linked /init and the probe would fail with a
// misleading "no working init found" panic.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("guestinit: agent binary %s is not a Linux ELF executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("guestinit: agent binary %s is dynamically linked and cannot run as /init in an initramfs; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}
