package kvmprobe

import (
	"debug/elf"
	"fmt"
	"io"
	"os"

	"github.com/bangerdev/banger/internal/shared/initramfs"
)

// WriteInitramfs writes the probe initramfs to w: /init is agentBinary (a
// static Linux executable that calls Probe when IsProbe(os.Args)), plus the
// /dev/console device (5:1) the kernel opens as init's stdin, stdout and
// stderr, and empty /dev, /proc and /sys directories.
func WriteInitramfs(w io.Writer, agentBinary string) error {
	info, err := os.Stat(agentBinary)
	if err != nil {
		return fmt.Errorf("kvmprobe: probe initramfs needs the banger-agent binary: %w", err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("kvmprobe: probe initramfs: agent binary %s is not a regular file", agentBinary)
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
			return fmt.Errorf("kvmprobe: writing probe initramfs: %w", err)
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
		return fmt.Errorf("kvmprobe: agent binary %s is not a Linux ELF executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("kvmprobe: agent binary %s is dynamically linked and cannot run as /init in an initramfs; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}
