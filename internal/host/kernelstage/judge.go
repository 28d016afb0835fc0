package kernelstage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Suitability says which hypervisors can boot a kernel with banger's
// devices, and the facts the verdict is derived from.
type Suitability struct {
	Firecracker bool
	// FirecrackerReason is "" when the kernel is fine with any Firecracker
	// release; otherwise one actionable line: why it cannot work, or the
	// condition under which it does (a minimum Firecracker release), or
	// that the verdict is inferred without a config.
	FirecrackerReason string
	// FirecrackerMinVersion is the oldest Firecracker release the verdict
	// holds for ("" = any): "1.8" when the kernel finds devices only
	// through ACPI, which Firecracker provides from 1.8 on.
	FirecrackerMinVersion string
	QEMU                  bool
	QEMUReason            string // "" when fine; why not, or that the verdict is inferred
	ConfigKnown           bool   // the facts come from the kernel config; false: inferred from modules

	// The facts the verdict is derived from (config symbols, or module
	// presence when the config is unknown). A symbol =m counts only when
	// its module is among the modules Judge was given.
	VirtioMMIO        bool // CONFIG_VIRTIO_MMIO: Firecracker's device transport
	VirtioMMIOCmdline bool // CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES: virtio_mmio.device= on the command line (every Firecracker release)
	ACPI              bool // CONFIG_ACPI and CONFIG_PCI: device discovery through ACPI (Firecracker ≥ 1.8)
	VirtioPCI         bool // CONFIG_VIRTIO_PCI (with CONFIG_PCI): QEMU's transport
	VirtioBlk         bool // CONFIG_VIRTIO_BLK
	VirtioNet         bool // CONFIG_VIRTIO_NET
	Vsock             bool // CONFIG_VSOCKETS and CONFIG_VIRTIO_VSOCKETS: banger-agent's channel
	VirtioConsole     bool // CONFIG_VIRTIO_CONSOLE: the agent's virtio-serial fallback under QEMU
	SerialConsole     bool // CONFIG_SERIAL_8250 and CONFIG_SERIAL_8250_CONSOLE built in: the boot console
}

// firecrackerACPIVersion is the first Firecracker release that describes
// its virtio-mmio devices in ACPI tables (CHANGELOG 1.8.0, PR #4428), so
// guests need no CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES.
const firecrackerACPIVersion = "1.8"

// ParseConfig reads a kernel .config (or a gzip-compressed one, as
// /proc/config.gz). The map is keyed by full symbol name ("CONFIG_EXT4_FS");
// values are as written ("y", "m", numbers, strings without their quotes),
// and "n" for "# CONFIG_X is not set".
func ParseConfig(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kernelstage: reading kernel config: %w; pass the kernel's config (boot/config-<release>) or none", err)
	}
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("kernelstage: kernel config %s: %w", path, err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("kernelstage: kernel config %s: %w", path, err)
		}
	}
	cfg := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if sym, ok := strings.CutSuffix(strings.TrimSpace(line[1:]), " is not set"); ok && strings.HasPrefix(sym, "CONFIG_") {
				cfg[sym] = "n"
			}
			continue
		}
		sym, val, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(sym, "CONFIG_") || strings.ContainsAny(sym, " \t") {
			return nil, fmt.Errorf("kernelstage: %s:%d: %q is not a kernel config line; pass the kernel's .config (boot/config-<release>)", path, lineNo, line)
		}
		if strings.HasPrefix(val, `"`) {
			uq, err := strconv.Unquote(val)
			if err != nil {
				return nil, fmt.Errorf("kernelstage: %s:%d: bad string value %s", path, lineNo, val)
			}
			val = uq
		}
		cfg[sym] = val
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernelstage: reading %s: %w", path, err)
	}
	if len(cfg) == 0 {
		return nil, fmt.Errorf("kernelstage: %s has no CONFIG_ symbols; pass the kernel's .config (boot/config-<release>)", path)
	}
	return cfg, nil
}

// Judge decides which hypervisors can boot a kernel with banger's devices.
// cfg is the parsed config (nil when unknown). modules lists what the guest
// has at boot besides the config's =y symbols: the module files in the
// initramfs and the built-in modules (names or paths such as
// "kernel/drivers/block/virtio_blk.ko"). With a config, a symbol set to m
// counts only if its module is listed. Without one, the facts are inferred
// from the modules alone: ACPI from any module under drivers/acpi/, the
// serial console from a built-in 8250, and the verdicts say so.
//
// Firecracker needs virtio-mmio, virtio-blk, virtio-net, virtio vsock (the
// agent's channel), the 8250 serial console, and a way to find its devices:
// CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES (every release), or ACPI (Firecracker
// ≥ 1.8). It boots only an ELF vmlinux, which Stage always produces. QEMU
// (q35) needs virtio-pci, virtio-blk, virtio-net, and vsock or
// virtio-console for the agent.
func Judge(cfg map[string]string, modules []string) Suitability {
	have := map[string]bool{}
	acpiModule := false
	for _, m := range modules {
		have[moduleName(m)] = true
		if strings.Contains(m, "drivers/acpi/") {
			acpiModule = true
		}
	}
	s := Suitability{ConfigKnown: cfg != nil}
	if s.ConfigKnown {
		on := func(symbol, module string) bool {
			switch cfg[symbol] {
			case "y":
				return true
			case "m":
				return have[module]
			}
			return false
		}
		pci := cfg["CONFIG_PCI"] == "y"
		s.VirtioMMIO = on("CONFIG_VIRTIO_MMIO", "virtio_mmio")
		s.VirtioMMIOCmdline = s.VirtioMMIO && cfg["CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES"] == "y"
		s.ACPI = cfg["CONFIG_ACPI"] == "y" && pci
		s.VirtioPCI = pci && on("CONFIG_VIRTIO_PCI", "virtio_pci")
		s.VirtioBlk = on("CONFIG_VIRTIO_BLK", "virtio_blk")
		s.VirtioNet = on("CONFIG_VIRTIO_NET", "virtio_net")
		s.Vsock = on("CONFIG_VSOCKETS", "vsock") && on("CONFIG_VIRTIO_VSOCKETS", "vmw_vsock_virtio_transport")
		s.VirtioConsole = on("CONFIG_VIRTIO_CONSOLE", "virtio_console")
		s.SerialConsole = cfg["CONFIG_SERIAL_8250"] == "y" && cfg["CONFIG_SERIAL_8250_CONSOLE"] == "y"
	} else {
		s.VirtioMMIO = have["virtio_mmio"]
		s.ACPI = acpiModule
		s.VirtioPCI = have["virtio_pci"]
		s.VirtioBlk = have["virtio_blk"]
		s.VirtioNet = have["virtio_net"]
		s.Vsock = have["vsock"] && have["vmw_vsock_virtio_transport"]
		s.VirtioConsole = have["virtio_console"]
		s.SerialConsole = have["8250"]
	}
	judgeFirecracker(&s)
	judgeQEMU(&s)
	return s
}

const (
	inferredPrefix = "inferred from the modules (no kernel config given): "
	lacksSuffix    = ": use a kernel built with them (=y, or =m with the module in its modules tree)"
)

func judgeFirecracker(s *Suitability) {
	var lacks []string
	if !s.VirtioMMIO {
		lacks = append(lacks, "virtio-mmio (CONFIG_VIRTIO_MMIO)")
	}
	if !s.VirtioBlk {
		lacks = append(lacks, "virtio-blk (CONFIG_VIRTIO_BLK)")
	}
	if !s.VirtioNet {
		lacks = append(lacks, "virtio-net (CONFIG_VIRTIO_NET)")
	}
	if !s.Vsock {
		lacks = append(lacks, "virtio vsock for banger-agent (CONFIG_VIRTIO_VSOCKETS)")
	}
	if !s.SerialConsole {
		lacks = append(lacks, "the 8250 serial console (CONFIG_SERIAL_8250_CONSOLE=y)")
	}
	switch {
	case len(lacks) > 0:
		s.FirecrackerReason = "kernel lacks " + strings.Join(lacks, ", ") + lacksSuffix
	case s.VirtioMMIOCmdline:
		s.Firecracker = true // every release passes virtio_mmio.device= on the command line
	case s.ACPI:
		s.Firecracker = true
		s.FirecrackerMinVersion = firecrackerACPIVersion
		s.FirecrackerReason = "needs Firecracker ≥ " + firecrackerACPIVersion + ": the kernel finds virtio-mmio devices only through ACPI (no CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES), which Firecracker provides from " + firecrackerACPIVersion + " on; older releases will find no disks"
	case !s.ConfigKnown:
		s.FirecrackerReason = "cannot tell how the kernel would find Firecracker's devices (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, or ACPI with Firecracker ≥ " + firecrackerACPIVersion + "): pass the kernel config"
	default:
		s.FirecrackerReason = "kernel cannot find Firecracker's virtio-mmio devices: it has neither CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y (every release) nor CONFIG_ACPI=y with CONFIG_PCI=y (Firecracker ≥ " + firecrackerACPIVersion + "): use a kernel built with one of them"
	}
	if !s.ConfigKnown {
		if s.FirecrackerReason == "" {
			s.FirecrackerReason = "looks usable; pass the kernel config for a firm verdict"
		}
		s.FirecrackerReason = inferredPrefix + s.FirecrackerReason
	}
}

func judgeQEMU(s *Suitability) {
	var lacks []string
	if !s.VirtioPCI {
		lacks = append(lacks, "virtio-pci (CONFIG_VIRTIO_PCI)")
	}
	if !s.VirtioBlk {
		lacks = append(lacks, "virtio-blk (CONFIG_VIRTIO_BLK)")
	}
	if !s.VirtioNet {
		lacks = append(lacks, "virtio-net (CONFIG_VIRTIO_NET)")
	}
	if !s.Vsock && !s.VirtioConsole {
		lacks = append(lacks, "a banger-agent channel: virtio vsock (CONFIG_VIRTIO_VSOCKETS) or virtio-console (CONFIG_VIRTIO_CONSOLE)")
	}
	s.QEMU = len(lacks) == 0
	if !s.QEMU {
		s.QEMUReason = "kernel lacks " + strings.Join(lacks, ", ") + lacksSuffix
	}
	if !s.ConfigKnown {
		if s.QEMUReason == "" {
			s.QEMUReason = "looks usable; pass the kernel config for a firm verdict"
		}
		s.QEMUReason = inferredPrefix + s.QEMUReason
	}
}
