package kernelstage

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
		gz      bool
		want    map[string]string
		wantErr string
	}{
		{
			name: "symbols, not set, strings, comments",
			content: []byte(`#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.0 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14) 12.2.0"
CONFIG_VIRTIO_BLK=m
CONFIG_EXT4_FS=y
# CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is not set
CONFIG_NR_CPUS=8192

CONFIG_CMDLINE=""
`),
			want: map[string]string{
				"CONFIG_CC_VERSION_TEXT":             "gcc-12 (Debian 12.2.0-14) 12.2.0",
				"CONFIG_VIRTIO_BLK":                  "m",
				"CONFIG_EXT4_FS":                     "y",
				"CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES": "n",
				"CONFIG_NR_CPUS":                     "8192",
				"CONFIG_CMDLINE":                     "",
			},
		},
		{
			name:    "gzip-compressed, as /proc/config.gz",
			content: []byte("CONFIG_ACPI=y\n"),
			gz:      true,
			want:    map[string]string{"CONFIG_ACPI": "y"},
		},
		{name: "not a config line", content: []byte("CONFIG_A=y\nhello world\n"), wantErr: ":2: \"hello world\" is not a kernel config line"},
		{name: "no symbols", content: []byte("# just a comment\n"), wantErr: "has no CONFIG_ symbols"},
		{name: "bad string", content: []byte("CONFIG_A=\"unterminated\n"), wantErr: "bad string value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := tt.content
			if tt.gz {
				content = gzipBytes(t, content)
			}
			p := writeFile(t, filepath.Join(t.TempDir(), "config"), content)
			got, err := ParseConfig(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := ParseConfig(filepath.Join(t.TempDir(), "absent")); err == nil || !strings.Contains(err.Error(), "pass the kernel's config") {
		t.Errorf("missing file: error = %v, want one naming the fix", err)
	}
}

// debianLikeConfig is the relevant part of Debian 12's cloud kernel config.
func debianLikeConfig() map[string]string {
	return map[string]string{
		"CONFIG_PCI": "y", "CONFIG_ACPI": "y",
		"CONFIG_VIRTIO": "m", "CONFIG_VIRTIO_PCI": "m", "CONFIG_VIRTIO_MMIO": "m",
		"CONFIG_VIRTIO_BLK": "m", "CONFIG_VIRTIO_NET": "m", "CONFIG_VIRTIO_CONSOLE": "m",
		"CONFIG_VSOCKETS": "m", "CONFIG_VIRTIO_VSOCKETS": "m",
		"CONFIG_SERIAL_8250": "y", "CONFIG_SERIAL_8250_CONSOLE": "y",
		"CONFIG_EXT4_FS": "y",
	}
}

// firecrackerGuestConfig is like Firecracker's own guest configs:
// everything built in, devices on the command line, no PCI or ACPI.
func firecrackerGuestConfig() map[string]string {
	return map[string]string{
		"CONFIG_VIRTIO": "y", "CONFIG_VIRTIO_MMIO": "y", "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES": "y",
		"CONFIG_VIRTIO_BLK": "y", "CONFIG_VIRTIO_NET": "y", "CONFIG_VSOCKETS": "y", "CONFIG_VIRTIO_VSOCKETS": "y",
		"CONFIG_VIRTIO_VSOCKETS_COMMON": "y", "CONFIG_SERIAL_8250": "y", "CONFIG_SERIAL_8250_CONSOLE": "y",
		"CONFIG_EXT4_FS": "y", "CONFIG_CRYPTO_CRC32C": "y",
	}
}

// debianStaged lists the module files Stage puts into a Debian initramfs.
func debianStaged() []string {
	return []string{
		"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/virtio/virtio_mmio.ko",
		"kernel/drivers/block/virtio_blk.ko", "kernel/drivers/net/virtio_net.ko", "kernel/drivers/char/virtio_console.ko",
		"kernel/net/vmw_vsock/vsock.ko", "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
	}
}

func with(cfg map[string]string, kv ...string) map[string]string {
	for i := 0; i < len(kv); i += 2 {
		cfg[kv[i]] = kv[i+1]
	}
	return cfg
}

func TestJudge(t *testing.T) {
	tests := []struct {
		name    string
		cfg     map[string]string
		modules []string
		want    Suitability // reasons are checked with the *Has fields
		fcHas   string      // substring of FirecrackerReason ("" = must be empty)
		qemuHas string
	}{
		{
			name: "Debian cloud: ACPI only, so Firecracker ≥ 1.8; QEMU fine",
			cfg:  debianLikeConfig(), modules: debianStaged(),
			want: Suitability{
				Firecracker: true, FirecrackerMinVersion: "1.8", QEMU: true, ConfigKnown: true,
				VirtioMMIO: true, ACPI: true, VirtioPCI: true, VirtioBlk: true, VirtioNet: true,
				Vsock: true, VirtioConsole: true, SerialConsole: true,
			},
			fcHas: "needs Firecracker ≥ 1.8",
		},
		{
			name: "Firecracker guest config: every release; no PCI for QEMU",
			cfg:  firecrackerGuestConfig(),
			want: Suitability{
				Firecracker: true, ConfigKnown: true,
				VirtioMMIO: true, VirtioMMIOCmdline: true, VirtioBlk: true, VirtioNet: true, Vsock: true, SerialConsole: true,
			},
			qemuHas: "kernel lacks virtio-pci (CONFIG_VIRTIO_PCI): use a kernel built with them",
		},
		{
			name: "no command-line devices and no ACPI",
			cfg:  with(firecrackerGuestConfig(), "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES", "n"),
			want: Suitability{
				ConfigKnown: true, VirtioMMIO: true, VirtioBlk: true, VirtioNet: true, Vsock: true, SerialConsole: true,
			},
			fcHas:   "neither CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y",
			qemuHas: "virtio-pci",
		},
		{
			name: "=m without the module file counts as absent",
			cfg:  debianLikeConfig(),
			modules: []string{
				"kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/block/virtio_blk.ko", "kernel/drivers/net/virtio_net.ko",
			},
			want: Suitability{
				ConfigKnown: true, ACPI: true, VirtioPCI: true, VirtioBlk: true, VirtioNet: true, SerialConsole: true,
			},
			fcHas:   "kernel lacks virtio-mmio (CONFIG_VIRTIO_MMIO), virtio vsock for banger-agent",
			qemuHas: "a banger-agent channel",
		},
		{
			name: "no serial console",
			cfg:  with(firecrackerGuestConfig(), "CONFIG_SERIAL_8250_CONSOLE", "n"),
			want: Suitability{
				ConfigKnown: true, VirtioMMIO: true, VirtioMMIOCmdline: true, VirtioBlk: true, VirtioNet: true, Vsock: true,
			},
			fcHas:   "the 8250 serial console (CONFIG_SERIAL_8250_CONSOLE=y)",
			qemuHas: "virtio-pci",
		},
		{
			name:    "no config: inferred from modules, ACPI from drivers/acpi",
			modules: append([]string{"kernel/drivers/acpi/button.ko", "kernel/drivers/tty/serial/8250/8250.ko"}, debianStaged()...),
			want: Suitability{
				Firecracker: true, FirecrackerMinVersion: "1.8", QEMU: true,
				VirtioMMIO: true, ACPI: true, VirtioPCI: true, VirtioBlk: true, VirtioNet: true,
				Vsock: true, VirtioConsole: true, SerialConsole: true,
			},
			fcHas:   "inferred from the modules (no kernel config given): needs Firecracker ≥ 1.8",
			qemuHas: "inferred from the modules (no kernel config given): looks usable",
		},
		{
			name:    "no config and no ACPI hint: cannot tell",
			modules: append([]string{"kernel/drivers/tty/serial/8250/8250.ko"}, debianStaged()...),
			want: Suitability{
				QEMU: true, VirtioMMIO: true, VirtioPCI: true, VirtioBlk: true, VirtioNet: true,
				Vsock: true, VirtioConsole: true, SerialConsole: true,
			},
			fcHas:   "cannot tell how the kernel would find Firecracker's devices",
			qemuHas: "inferred",
		},
	}
	ignoreReasons := cmpopts.IgnoreFields(Suitability{}, "FirecrackerReason", "QEMUReason")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Judge(tt.cfg, tt.modules)
			if diff := cmp.Diff(tt.want, got, ignoreReasons); diff != "" {
				t.Errorf("Judge (-want +got):\n%s", diff)
			}
			checkReason(t, "FirecrackerReason", got.FirecrackerReason, tt.fcHas)
			checkReason(t, "QEMUReason", got.QEMUReason, tt.qemuHas)
		})
	}
}

func checkReason(t *testing.T, field, got, has string) {
	t.Helper()
	switch {
	case has == "" && got != "":
		t.Errorf("%s = %q, want empty", field, got)
	case !strings.Contains(got, has):
		t.Errorf("%s = %q, want it to contain %q", field, got, has)
	case strings.Contains(got, "\n"):
		t.Errorf("%s spans several lines: %q", field, got)
	}
}

// TestDebianJudge records the verdict on Debian's real cloud kernel config:
// it has ACPI but not CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so Firecracker
// works only from 1.8 on, where devices are described in ACPI.
func TestDebianJudge(t *testing.T) {
	k := debianKernel(t)
	if k.Config == "" {
		t.Fatalf("%s ships no config", k.Package)
	}
	cfg, err := ParseConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	ordered, builtin, _, err := ModuleClosure(k.ModulesDir, NeededModules)
	if err != nil {
		t.Fatal(err)
	}
	got := Judge(cfg, append(ordered, builtin...))
	want := Suitability{
		Firecracker: true, FirecrackerMinVersion: "1.8",
		FirecrackerReason: "needs Firecracker ≥ 1.8: the kernel finds virtio-mmio devices only through ACPI (no CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES), which Firecracker provides from 1.8 on; older releases will find no disks",
		QEMU:              true, ConfigKnown: true,
		VirtioMMIO: true, ACPI: true, VirtioPCI: true, VirtioBlk: true, VirtioNet: true,
		Vsock: true, VirtioConsole: true, SerialConsole: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdict on %s (-want +got):\n%s", k.Release, diff)
	}
	t.Logf("%s: %+v", k.Release, got)
}
