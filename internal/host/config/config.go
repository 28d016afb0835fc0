// Package config owns banger's configuration: where its files live (XDG
// directories or one BANGER_HOME root), loading config.toml, defaults, and
// validation.
//
// The daemon and the CLI resolve paths with DefaultPaths, then read the file
// with Load. Nothing here reads the process environment or writes a file:
// the environment comes in as an Env, and creating directories is the
// daemon's job.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/bangerdev/banger/internal/shared/bootpayload"
)

// Hypervisor choices.
const (
	HypervisorAuto        = "auto" // Firecracker where it can boot a guest, else QEMU
	HypervisorFirecracker = "firecracker"
	HypervisorQEMU        = "qemu"
)

// Defaults for values the file does not set.
const (
	DefaultQEMUBin = "qemu-system-x86_64"
	// DefaultVMUser is the system user a daemon running as root runs
	// QEMU and the jailed Firecracker as (created on first use).
	DefaultVMUser      = "banger-vm"
	DefaultLogLevel    = "info"
	DefaultBridge      = "banger0"
	DefaultSubnet      = "172.30.0.0/24"
	DefaultTAPPoolSize = 4
	DefaultVCPUs       = 2
	DefaultMemoryMiB   = 1024
	DefaultDiskBytes   = 8 * GiB
	// DefaultCopyMaxBytes bounds one `vm cp` out of a guest: twice the
	// default work disk, so whatever a default VM can hold comes out,
	// while a guest's sparse or endless stream writes at most this much.
	DefaultCopyMaxBytes = 16 * GiB
	// DefaultPullMaxBytes bounds what one `vm pull` or `vm diff -p` takes
	// from a guest: a git bundle of the agent's work, a patch, or its
	// changed files. Work worth reviewing is far smaller.
	DefaultPullMaxBytes = 1 * GiB
)

// GuestHome is the guest user's home, the mount point of the VM's work disk.
// Auth files are written under it (by the boot payload, whose rule it is).
const GuestHome = bootpayload.GuestHome

// Config is banger's effective configuration: defaults, overridden by the
// config file.
type Config struct {
	Paths          Paths      `json:"paths"`
	Hypervisor     string     `json:"hypervisor"`      // "auto" (default) | "firecracker" | "qemu"
	FirecrackerBin string     `json:"firecracker_bin"` // "" = look up "firecracker" on PATH
	Jailer         bool       `json:"jailer"`          // run Firecracker under its jailer when the daemon is root; default true
	QEMUBin        string     `json:"qemu_bin"`        // default "qemu-system-x86_64"
	VMUser         string     `json:"vm_user"`         // default "banger-vm": the user a root daemon runs hypervisors as; "" keeps them root
	SSHKey         string     `json:"ssh_key"`         // "" = auto-managed key at Paths.ManagedSSHKey(); otherwise an absolute path
	LogLevel       string     `json:"log_level"`       // debug|info|warn|error, default info
	Network        Network    `json:"network"`
	VM             VMDefaults `json:"vm"`
	AuthFiles      []AuthFile `json:"auth_files"`
	Copy           Copy       `json:"copy"`
	Pull           Pull       `json:"pull"`
	Egress         Egress     `json:"egress"`
	Web            Web        `json:"web"`

	// home is the host user's home, used to write auth files as "~/..." again.
	home string
	// envPaths are the paths before the file moved any directory; a directory
	// equal to its envPaths value is written as "" (the default).
	envPaths Paths
}

// Network configures the bridge the VMs share.
type Network struct {
	Bridge      string       `json:"bridge"`        // default "banger0"; a valid Linux interface name
	Subnet      netip.Prefix `json:"subnet"`        // default 172.30.0.0/24; IPv4, masked, prefix length 16..29
	TAPPoolSize int          `json:"tap_pool_size"` // default 4, range 0..64
	// AllowCIDRs are IPv4 destinations guests may reach although they are
	// private, link-local, CGNAT, loopback, multicast or reserved (all
	// blocked by default), e.g. the user's LAN. Default none.
	AllowCIDRs []netip.Prefix `json:"allow_cidrs"`
}

// VMDefaults are the resources of a VM that does not ask for others.
type VMDefaults struct {
	VCPUs     int   `json:"vcpus"`      // default 2, range 1..64
	MemoryMiB int   `json:"memory_mib"` // default 1024, >= 256
	DiskBytes int64 `json:"disk_bytes"` // default 8 GiB, >= 1 GiB, whole MiB; the work disk (/root) size
	// AutoWarm warms an image for a shape (`banger image warm`) in the
	// background after its first cold create of that shape; default false.
	AutoWarm bool `json:"auto_warm"`
}

// Copy bounds what `banger vm cp` takes from a guest.
type Copy struct {
	MaxBytes int64 `json:"max_bytes"` // default 16 GiB, > 0; files at full (unsparse) size plus 512 bytes per entry
}

// Pull bounds what `banger vm pull` and `banger vm diff -p` take from a
// guest.
type Pull struct {
	MaxBytes int64 `json:"max_bytes"` // default 1 GiB, > 0
}

// Egress holds the named egress allowlists a VM's policy may use
// ("@agents").
type Egress struct {
	Presets map[string][]string `json:"presets"`
}

// DefaultEgressPresets are the presets every config has unless it
// redefines them: "agents" lets opencode, claude and pi reach their model
// APIs and install from the npm and Debian registries.
func DefaultEgressPresets() map[string][]string {
	return map[string][]string{
		"agents": {
			"api.anthropic.com:443", "statsig.anthropic.com:443", "console.anthropic.com:443",
			"api.openai.com:443", "openrouter.ai:443", "generativelanguage.googleapis.com:443",
			"opencode.ai:443", "models.dev:443",
			"registry.npmjs.org:443",
			"deb.debian.org:80", "deb.debian.org:443", "security.debian.org:80", "security.debian.org:443",
		},
	}
}

// AuthFile is a host file copied into every VM at start.
type AuthFile struct {
	Host  string `json:"host"`  // absolute host path
	Guest string `json:"guest"` // absolute guest path under /root
}

// CheckHost reports why the host file cannot be copied into a VM: a
// directory cannot be, nor a regular file this user cannot read. A missing
// file passes, since VM starts skip it with a notice (the defaults name
// credentials not every user has), and so does anything else that reads
// as a file (a FIFO a secret manager feeds is not opened here: that would
// wait for its writer). VM starts hold each file to it before reading it,
// and Validate holds the config to it.
func (a AuthFile) CheckHost() error {
	fi, err := os.Stat(a.Host)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("%s is a directory", a.Host)
	case !fi.Mode().IsRegular():
		return nil
	}
	f, err := os.Open(a.Host)
	if err != nil {
		return err
	}
	return f.Close()
}

// defaultAuthFiles are the agents' credentials, relative to both homes.
func defaultAuthFiles() []string {
	return []string{
		".local/share/opencode/auth.json",
		".claude/.credentials.json",
		".claude.json",
		".pi/agent/auth.json",
	}
}

// Default returns the configuration used when the file sets nothing. home is
// the host user's home directory; when it is empty or relative there are no
// default auth files, since there is nowhere to copy them from.
func Default(paths Paths, home string) *Config {
	c := &Config{
		Paths:      paths,
		Hypervisor: HypervisorAuto,
		Jailer:     true,
		QEMUBin:    DefaultQEMUBin,
		VMUser:     DefaultVMUser,
		LogLevel:   DefaultLogLevel,
		Network: Network{
			Bridge:      DefaultBridge,
			Subnet:      netip.MustParsePrefix(DefaultSubnet),
			TAPPoolSize: DefaultTAPPoolSize,
		},
		VM: VMDefaults{
			VCPUs:     DefaultVCPUs,
			MemoryMiB: DefaultMemoryMiB,
			DiskBytes: DefaultDiskBytes,
		},
		Copy:     Copy{MaxBytes: DefaultCopyMaxBytes},
		Pull:     Pull{MaxBytes: DefaultPullMaxBytes},
		Egress:   Egress{Presets: DefaultEgressPresets()},
		envPaths: paths,
	}
	if filepath.IsAbs(home) {
		c.home = filepath.Clean(home)
		for _, rel := range defaultAuthFiles() {
			c.AuthFiles = append(c.AuthFiles, AuthFile{
				Host:  filepath.Join(c.home, rel),
				Guest: filepath.Join(GuestHome, rel),
			})
		}
	}
	return c
}

// SSHKeyPath is the private key banger uses: SSHKey, or the managed key.
func (c *Config) SSHKeyPath() string {
	if c.SSHKey != "" {
		return c.SSHKey
	}
	return c.Paths.ManagedSSHKey()
}

// SlogLevel is LogLevel as a slog.Level (info for anything unknown; Validate
// rejects those).
func (c *Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Validate checks every value and returns an *Error for the first bad one, in
// file order. It refuses every value a later stage would refuse (a VM
// create using the defaults, a VM start, the host network), calling that
// stage's own check where it has one. It reads the file system only for
// ssh_key (the key and its .pub), auth_files (each existing host file)
// and vm_user (the user database); it never writes.
//
// What it leaves to `banger doctor` is the host: whether qemu_bin and
// firecracker_bin are installed, KVM, free space, the network.
func (c *Config) Validate() error {
	for _, f := range fields() {
		if f.check == nil {
			continue
		}
		if e := f.check(c); e != nil {
			return f.fill(e, c.Paths.ConfigFile)
		}
	}
	return nil
}

// fileFormat is config.toml as written by TOML. Load reads the same keys
// through fields.
type fileFormat struct {
	Hypervisor     string      `toml:"hypervisor"`
	FirecrackerBin string      `toml:"firecracker_bin"`
	Jailer         bool        `toml:"jailer"`
	QEMUBin        string      `toml:"qemu_bin"`
	VMUser         string      `toml:"vm_user"`
	SSHKey         string      `toml:"ssh_key"`
	LogLevel       string      `toml:"log_level"`
	DataDir        string      `toml:"data_dir"`
	StateDir       string      `toml:"state_dir"`
	RuntimeDir     string      `toml:"runtime_dir"`
	AuthFiles      []string    `toml:"auth_files"`
	Network        fileNetwork `toml:"network"`
	VM             fileVM      `toml:"vm"`
	Copy           fileCopy    `toml:"copy"`
	Pull           filePull    `toml:"pull"`
	Egress         fileEgress  `toml:"egress"`
	Web            fileWeb     `toml:"web"`
}

type fileWeb struct {
	Listen string `toml:"listen"`
}

type fileNetwork struct {
	Bridge      string   `toml:"bridge"`
	Subnet      string   `toml:"subnet"`
	TAPPoolSize int      `toml:"tap_pool_size"`
	AllowCIDRs  []string `toml:"allow_cidrs"`
}

type fileCopy struct {
	MaxSize string `toml:"max_size"`
}

type filePull struct {
	MaxSize string `toml:"max_size"`
}

type fileEgress struct {
	Presets map[string][]string `toml:"presets"`
}

type fileVM struct {
	VCPUs    int    `toml:"vcpus"`
	Memory   string `toml:"memory"`
	Disk     string `toml:"disk"`
	AutoWarm bool   `toml:"auto_warm"`
}

// TOML renders the effective configuration in config.toml's format, every
// key included, so that the output can be saved as a config file and loads
// back to the same configuration. A directory that is where the environment
// puts it is written as "" (the default), which keeps the output portable.
func (c *Config) TOML() ([]byte, error) {
	f := fileFormat{
		Hypervisor:     c.Hypervisor,
		FirecrackerBin: c.FirecrackerBin,
		Jailer:         c.Jailer,
		QEMUBin:        c.QEMUBin,
		VMUser:         c.VMUser,
		SSHKey:         c.SSHKey,
		LogLevel:       c.LogLevel,
		DataDir:        dirOverride(c.Paths.DataDir, c.envPaths.DataDir),
		StateDir:       dirOverride(c.Paths.StateDir, c.envPaths.StateDir),
		RuntimeDir:     dirOverride(c.Paths.RuntimeDir, c.envPaths.RuntimeDir),
		AuthFiles:      make([]string, 0, len(c.AuthFiles)),
		Network: fileNetwork{
			Bridge:      c.Network.Bridge,
			TAPPoolSize: c.Network.TAPPoolSize,
			AllowCIDRs:  make([]string, 0, len(c.Network.AllowCIDRs)),
		},
		VM: fileVM{
			VCPUs:    c.VM.VCPUs,
			Memory:   FormatSize(int64(c.VM.MemoryMiB) * MiB),
			Disk:     FormatSize(c.VM.DiskBytes),
			AutoWarm: c.VM.AutoWarm,
		},
		Copy:   fileCopy{MaxSize: FormatSize(c.Copy.MaxBytes)},
		Pull:   filePull{MaxSize: FormatSize(c.Pull.MaxBytes)},
		Egress: fileEgress{Presets: c.Egress.Presets},
		Web:    fileWeb{Listen: c.Web.Listen},
	}
	if c.Network.Subnet.IsValid() {
		f.Network.Subnet = c.Network.Subnet.String()
	}
	for _, p := range c.Network.AllowCIDRs {
		f.Network.AllowCIDRs = append(f.Network.AllowCIDRs, p.String())
	}
	for _, a := range c.AuthFiles {
		f.AuthFiles = append(f.AuthFiles, c.authFileEntry(a))
	}
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("rendering config as TOML: %w", err)
	}
	return b.Bytes(), nil
}

func dirOverride(dir, envDir string) string {
	if dir == envDir {
		return ""
	}
	return dir
}

// authFileEntry writes a as an auth_files entry: "~/REL" when the host and
// guest paths are REL under the two homes, "HOST:GUEST" otherwise.
func (c *Config) authFileEntry(a AuthFile) string {
	if c.home != "" {
		if rel, ok := strings.CutPrefix(a.Host, c.home+"/"); ok && a.Guest == GuestHome+"/"+rel {
			return "~/" + rel
		}
	}
	return a.Host + ":" + a.Guest
}
