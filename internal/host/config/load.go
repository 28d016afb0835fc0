package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/bangerdev/banger/internal/host/egress"
	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker"
	"github.com/bangerdev/banger/internal/host/hypervisor/qemu"
	"github.com/bangerdev/banger/internal/host/localsock"
	"github.com/bangerdev/banger/internal/host/sshkey"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
)

// vmUserRE is what useradd accepts as a system user name.
var vmUserRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// Load reads paths.ConfigFile over the defaults and validates the result.
// A missing file (or an empty ConfigFile) is not an error: the defaults
// apply. HOME comes from env and expands "~/" in paths. The file's data_dir,
// state_dir and runtime_dir, when set, replace those in paths. Load never
// writes anything.
func Load(paths Paths, env Env) (*Config, error) {
	home, _ := env.get("HOME")
	if !filepath.IsAbs(home) {
		home = ""
	}
	c := Default(paths, home)
	if paths.ConfigFile != "" {
		data, err := os.ReadFile(paths.ConfigFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, &Error{File: paths.ConfigFile, Problem: fmt.Sprintf("cannot be read (%v): fix its permissions, or set %s to another file", err, EnvConfig), Err: err}
		default:
			if err := c.parse(data); err != nil {
				return nil, err
			}
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// parse applies the TOML document data to c, key by key in file order.
func (c *Config) parse(data []byte) error {
	file := c.Paths.ConfigFile
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line := pe.Position.Line
			if start := pe.Position.Start; start >= 0 && start <= len(data) {
				// The parser counts a newline it trips over as the next
				// line; the mistake is on the line that newline ends.
				line = 1 + bytes.Count(data[:start], []byte("\n"))
			}
			// The parser's message may quote the input raw.
			return &Error{File: file, Line: line, Problem: "invalid TOML: " + termsafe.Line(pe.Message), Err: err}
		}
		return &Error{File: file, Problem: "invalid TOML: " + termsafe.Line(err.Error()), Err: err}
	}
	known := fields()
	for _, key := range md.Keys() {
		v, ok := lookupKey(doc, key)
		if !ok {
			continue // under a value that already failed as the wrong type
		}
		name := strings.Join(key, ".")
		i := slices.IndexFunc(known, func(f field) bool { return f.key == name })
		if i < 0 && len(key) > 1 {
			// A key a table names freely (egress.presets.NAME).
			parent := strings.Join(key[:len(key)-1], ".") + ".*"
			if j := slices.IndexFunc(known, func(f field) bool { return f.key == parent }); j >= 0 {
				f := known[j]
				if e := f.setNamed(c, key[len(key)-1], v); e != nil {
					e.Key = keyText(key)
					return f.fill(e, file)
				}
				continue
			}
		}
		if i < 0 {
			problem := "is not a known key: remove it, or see \"banger config show\" for every key"
			if s := suggest(key); s != "" {
				problem = fmt.Sprintf("is not a known key: did you mean %q?", s)
			}
			return &Error{File: file, Key: keyText(key), Problem: problem}
		}
		f := known[i]
		if f.table {
			if _, ok := v.(map[string]any); !ok {
				return f.fill(&Error{Value: tomlValue(v)}, file)
			}
			continue
		}
		if e := f.set(c, v); e != nil {
			return f.fill(e, file)
		}
	}
	return nil
}

// lookupKey finds key's value in doc.
func lookupKey(doc map[string]any, key toml.Key) (any, bool) {
	var v any = doc
	for _, k := range key {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// field is one key of config.toml: how the file sets it and how Validate
// checks it. fields lists them in file order.
type field struct {
	key   string
	want  string // what a valid value looks like, for errors that do not say
	table bool
	// set applies a decoded TOML value to c. It checks the value's type and
	// form; ranges are left to check.
	set func(c *Config, v any) *Error
	// check validates the field's effective value.
	check func(c *Config) *Error
	// setNamed, for a key ending in ".*", applies the value of one key the
	// table names freely (the last component is name).
	setNamed func(c *Config, name string, v any) *Error
}

// fill completes e with the field's file, key and want.
func (f field) fill(e *Error, file string) *Error {
	if e.File == "" {
		e.File = file
	}
	if e.Key == "" {
		e.Key = f.key
	}
	if e.Want == "" && e.Problem == "" {
		e.Want = f.want
	}
	return e
}

// Bounds of the numeric values. The VM bounds are what a create request
// may ask for (vm.ValidateCreate holds requests to them), so the defaults
// the file sets are ones every create can use.
const (
	maxTAPPoolSize = 64
	MaxVCPUs       = 64
	MinMemoryMiB   = 256
	MaxMemoryMiB   = 256 << 10
	MinDiskBytes   = GiB
	MaxDiskBytes   = 4 * TiB
)

// maxSocketPath is the longest path a Unix socket address holds.
const maxSocketPath = localsock.MaxPath

func fields() []field {
	return []field{
		{
			key:  "hypervisor",
			want: `"auto", "firecracker" or "qemu"`,
			set:  setString(func(c *Config) *string { return &c.Hypervisor }),
			check: func(c *Config) *Error {
				switch c.Hypervisor {
				case HypervisorAuto, HypervisorFirecracker, HypervisorQEMU:
					return nil
				}
				return &Error{Value: quote(c.Hypervisor)}
			},
		},
		{
			key:   "firecracker_bin",
			want:  `"" (find "firecracker" on PATH), a command name, or an absolute path`,
			set:   setPath(func(c *Config) *string { return &c.FirecrackerBin }),
			check: checkBinary(func(c *Config) string { return c.FirecrackerBin }, true),
		},
		{
			key:  "jailer",
			want: "true or false",
			set: func(c *Config, v any) *Error {
				b, ok := v.(bool)
				if !ok {
					return &Error{Value: tomlValue(v)}
				}
				c.Jailer = b
				return nil
			},
			check: func(*Config) *Error { return nil },
		},
		{
			key:   "qemu_bin",
			want:  `a command name or an absolute path, e.g. "qemu-system-x86_64"`,
			set:   setPath(func(c *Config) *string { return &c.QEMUBin }),
			check: checkBinary(func(c *Config) string { return c.QEMUBin }, false),
		},
		{
			key:  "vm_user",
			want: `"" (hypervisors stay root under a root daemon: not recommended) or a user name, e.g. "banger-vm"`,
			set: func(c *Config, v any) *Error {
				s, ok := v.(string)
				if !ok {
					return &Error{Value: tomlValue(v)}
				}
				c.VMUser = s
				return nil
			},
			check: func(c *Config) *Error {
				switch {
				case c.VMUser == "":
					return nil
				case !vmUserRE.MatchString(c.VMUser):
					return &Error{Value: quote(c.VMUser)}
				}
				if err := hypervisor.CheckVMUser(c.VMUser); err != nil {
					return &Error{Value: quote(c.VMUser), Problem: "is refused: " + err.Error(), Err: err}
				}
				return nil
			},
		},
		{
			key:   "ssh_key",
			want:  `"" (use banger's managed key) or the absolute path of a private key, e.g. "~/.ssh/id_ed25519"`,
			set:   setPath(func(c *Config) *string { return &c.SSHKey }),
			check: checkSSHKey,
		},
		{
			key:  "log_level",
			want: `"debug", "info", "warn" or "error"`,
			set:  setString(func(c *Config) *string { return &c.LogLevel }),
			check: func(c *Config) *Error {
				switch c.LogLevel {
				case "debug", "info", "warn", "error":
					return nil
				}
				return &Error{Value: quote(c.LogLevel)}
			},
		},
		{
			key:   "data_dir",
			want:  `"" (the default) or an absolute directory; "~/" is allowed`,
			set:   setPath(func(c *Config) *string { return &c.Paths.DataDir }),
			check: checkDir(func(c *Config) string { return c.Paths.DataDir }),
		},
		{
			key:   "state_dir",
			want:  `"" (the default) or an absolute directory; "~/" is allowed`,
			set:   setPath(func(c *Config) *string { return &c.Paths.StateDir }),
			check: checkStateDir,
		},
		{
			key:  "runtime_dir",
			want: `"" (the default) or an absolute directory; "~/" is allowed`,
			set:  setPath(func(c *Config) *string { return &c.Paths.RuntimeDir }),
			check: func(c *Config) *Error {
				if e := checkDir(func(c *Config) string { return c.Paths.RuntimeDir })(c); e != nil {
					return e
				}
				if len(c.Paths.Socket()) > maxSocketPath {
					return &Error{Value: quote(c.Paths.RuntimeDir), Want: fmt.Sprintf("a directory of at most %d bytes, so that the API socket path fits in a Unix socket address", maxSocketPath-len("/bangerd.sock"))}
				}
				return nil
			},
		},
		{
			key:   "auth_files",
			want:  `a list of "~/PATH" or "HOSTPATH:GUESTPATH" entries, with absolute paths and the guest path under /root, e.g. ["~/.claude.json"]`,
			set:   setAuthFiles,
			check: checkAuthFiles,
		},
		{key: "network", want: "a table, e.g. [network]", table: true},
		{
			key:  "network.bridge",
			want: `a Linux interface name of 1 to 15 bytes without "/", ":" or spaces, not starting with "tap-pool-", e.g. "banger0"`,
			set:  setString(func(c *Config) *string { return &c.Network.Bridge }),
			check: func(c *Config) *Error {
				if err := hostnet.CheckBridge(c.Network.Bridge); err != nil {
					return &Error{Value: quote(c.Network.Bridge), Err: err}
				}
				return nil
			},
		},
		{
			key:   "network.subnet",
			want:  `an IPv4 CIDR with prefix 16..29, e.g. "172.30.0.0/24"`,
			set:   setSubnet,
			check: checkSubnet,
		},
		{
			key:   "network.tap_pool_size",
			want:  fmt.Sprintf("an integer from 0 to %d, e.g. %d", maxTAPPoolSize, DefaultTAPPoolSize),
			set:   setInt(func(c *Config) *int { return &c.Network.TAPPoolSize }),
			check: checkRange(func(c *Config) int { return c.Network.TAPPoolSize }, 0, maxTAPPoolSize),
		},
		{
			key:   "network.allow_cidrs",
			want:  `a list of IPv4 CIDRs that guests may reach although they are private, link-local or CGNAT, e.g. ["192.168.1.0/24"]`,
			set:   setAllowCIDRs,
			check: checkAllowCIDRs,
		},
		{key: "vm", want: "a table, e.g. [vm]", table: true},
		{
			key:   "vm.vcpus",
			want:  fmt.Sprintf("an integer from 1 to %d, e.g. %d", MaxVCPUs, DefaultVCPUs),
			set:   setInt(func(c *Config) *int { return &c.VM.VCPUs }),
			check: checkVCPUs,
		},
		{
			key:  "vm.memory",
			want: fmt.Sprintf(`a size from %s to %s in whole MiB, e.g. "1GiB" (a bare number is bytes)`, FormatSize(MinMemoryMiB*MiB), FormatSize(MaxMemoryMiB*MiB)),
			set: func(c *Config, v any) *Error {
				n, e := sizeValue(v)
				if e != nil {
					return e
				}
				if n%MiB != 0 || n/MiB > int64(maxInt()) {
					return &Error{Value: tomlValue(v)}
				}
				c.VM.MemoryMiB = int(n / MiB)
				return nil
			},
			check: func(c *Config) *Error {
				if c.VM.MemoryMiB < MinMemoryMiB || c.VM.MemoryMiB > MaxMemoryMiB {
					return &Error{Value: quote(FormatSize(int64(c.VM.MemoryMiB) * MiB))}
				}
				return nil
			},
		},
		{
			key:  "vm.disk",
			want: fmt.Sprintf(`a size from %s to %s in whole MiB, e.g. "8GiB" (a bare number is bytes)`, FormatSize(MinDiskBytes), FormatSize(MaxDiskBytes)),
			set: func(c *Config, v any) *Error {
				n, e := sizeValue(v)
				if e != nil {
					return e
				}
				c.VM.DiskBytes = n
				return nil
			},
			check: func(c *Config) *Error {
				if c.VM.DiskBytes < MinDiskBytes || c.VM.DiskBytes > MaxDiskBytes || c.VM.DiskBytes%MiB != 0 {
					return &Error{Value: quote(FormatSize(c.VM.DiskBytes))}
				}
				return nil
			},
		},
		{
			key:  "vm.auto_warm",
			want: "true or false",
			set: func(c *Config, v any) *Error {
				b, ok := v.(bool)
				if !ok {
					return &Error{Value: tomlValue(v)}
				}
				c.VM.AutoWarm = b
				return nil
			},
			check: func(*Config) *Error { return nil },
		},
		{key: "copy", want: "a table, e.g. [copy]", table: true},
		{
			key:  "copy.max_size",
			want: fmt.Sprintf(`a size above zero, e.g. %q (a bare number is bytes); the most one "vm cp" out of a guest may write`, FormatSize(DefaultCopyMaxBytes)),
			set: func(c *Config, v any) *Error {
				n, e := sizeValue(v)
				if e != nil {
					return e
				}
				c.Copy.MaxBytes = n
				return nil
			},
			check: func(c *Config) *Error {
				if c.Copy.MaxBytes <= 0 {
					return &Error{Value: quote(FormatSize(c.Copy.MaxBytes))}
				}
				return nil
			},
		},
		{key: "pull", want: "a table, e.g. [pull]", table: true},
		{
			key:  "pull.max_size",
			want: fmt.Sprintf(`a size above zero, e.g. %q (a bare number is bytes); the most one "vm pull" or "vm diff -p" takes from a guest`, FormatSize(DefaultPullMaxBytes)),
			set: func(c *Config, v any) *Error {
				n, e := sizeValue(v)
				if e != nil {
					return e
				}
				c.Pull.MaxBytes = n
				return nil
			},
			check: func(c *Config) *Error {
				if c.Pull.MaxBytes <= 0 {
					return &Error{Value: quote(FormatSize(c.Pull.MaxBytes))}
				}
				return nil
			},
		},
		{key: "egress", want: "a table, e.g. [egress]", table: true},
		{key: "egress.presets", want: "a table, e.g. [egress.presets]", table: true},
		{
			key:      "egress.presets.*",
			want:     `a list of egress allowlist entries (domains, *.wildcards, IPv4 addresses or CIDRs, each with an optional :PORT), e.g. ["github.com:443", "*.npmjs.org"]`,
			setNamed: setEgressPreset,
			check:    checkEgressPresets,
		},
		{key: "web", want: "a table, e.g. [web]", table: true},
		{
			key:   "web.listen",
			want:  `"" (the web UI is off until "banger web") or a loopback address with a port, e.g. "127.0.0.1:7180"`,
			set:   setString(func(c *Config) *string { return &c.Web.Listen }),
			check: checkWebListen,
		},
	}
}

func maxInt() int { return int(^uint(0) >> 1) }

func setString(ptr func(*Config) *string) func(*Config, any) *Error {
	return func(c *Config, v any) *Error {
		s, ok := v.(string)
		if !ok {
			return &Error{Value: tomlValue(v)}
		}
		*ptr(c) = s
		return nil
	}
}

// setPath sets a string that may start with "~/". An empty string leaves the
// default in place.
func setPath(ptr func(*Config) *string) func(*Config, any) *Error {
	return func(c *Config, v any) *Error {
		s, ok := v.(string)
		if !ok {
			return &Error{Value: tomlValue(v)}
		}
		if s == "" {
			return nil
		}
		p, e := c.expandHome(s)
		if e != nil {
			return e
		}
		*ptr(c) = p
		return nil
	}
}

// expandHome replaces a leading "~" or "~/" with the home directory and
// cleans absolute paths. Anything else is returned as it is, for the checks
// to judge.
func (c *Config) expandHome(s string) (string, *Error) {
	if s == "~" || strings.HasPrefix(s, "~/") {
		if c.home == "" {
			return "", &Error{Value: quote(s), Want: `an absolute path: HOME is not set to an absolute path, so "~" cannot be expanded`}
		}
		s = c.home + s[1:]
	}
	if filepath.IsAbs(s) {
		s = filepath.Clean(s)
	}
	return s, nil
}

func setInt(ptr func(*Config) *int) func(*Config, any) *Error {
	return func(c *Config, v any) *Error {
		n, ok := v.(int64)
		if !ok || int64(int(n)) != n {
			return &Error{Value: tomlValue(v)}
		}
		*ptr(c) = int(n)
		return nil
	}
}

// sizeValue reads a size given as a string ("8GiB") or as a number of bytes.
func sizeValue(v any) (int64, *Error) {
	switch v := v.(type) {
	case string:
		n, err := ParseSize(v)
		if err != nil {
			return 0, &Error{Value: tomlValue(v), Err: err}
		}
		return n, nil
	case int64:
		if v >= 0 {
			return v, nil
		}
	}
	return 0, &Error{Value: tomlValue(v)}
}

func setSubnet(c *Config, v any) *Error {
	s, ok := v.(string)
	if !ok {
		return &Error{Value: tomlValue(v)}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return &Error{Value: quote(s), Err: err}
	}
	c.Network.Subnet = p
	return nil
}

// checkSubnet holds network.subnet to the host network's rule
// (hostnet.CheckSubnet) and to banger's policy on top: a masked, private
// range of /16 or smaller.
func checkSubnet(c *Config) *Error {
	p := c.Network.Subnet
	if !p.IsValid() {
		return &Error{Value: quote("")}
	}
	if err := hostnet.CheckSubnet(p); err != nil {
		return &Error{Value: quote(p.String()), Err: err}
	}
	a := p.Addr()
	switch {
	case p.Bits() < 16:
		return &Error{Value: quote(p.String())}
	case p.Masked() != p:
		return &Error{Value: quote(p.String()), Want: fmt.Sprintf("the network address, with the host bits zero: %q", p.Masked().String())}
	case a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.As4()[0] == 0 || a.As4()[0] >= 240:
		return &Error{Value: quote(p.String()), Want: `a private IPv4 range that no host service uses, e.g. "172.30.0.0/24"`}
	}
	return nil
}

func setAllowCIDRs(c *Config, v any) *Error {
	list, ok := v.([]any)
	if !ok {
		return &Error{Value: tomlValue(v)}
	}
	var out []netip.Prefix
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return &Error{Value: tomlValue(item)}
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return &Error{Value: quote(s), Err: err}
		}
		out = append(out, p)
	}
	c.Network.AllowCIDRs = out
	return nil
}

// checkAllowCIDRs holds network.allow_cidrs to the host network's rule
// (hostnet.CheckAllowCIDR); the Want says which part failed.
func checkAllowCIDRs(c *Config) *Error {
	for _, p := range c.Network.AllowCIDRs {
		err := hostnet.CheckAllowCIDR(p)
		switch {
		case err == nil:
		case !p.Addr().Is4():
			return &Error{Value: quote(p.String()), Want: `IPv4 CIDRs only (guests get no IPv6), e.g. ["192.168.1.0/24"]`, Err: err}
		default:
			return &Error{Value: quote(p.String()), Want: fmt.Sprintf("the network address, with the host bits zero: %q", p.Masked().String()), Err: err}
		}
	}
	return nil
}

func setAuthFiles(c *Config, v any) *Error {
	list, ok := v.([]any)
	if !ok {
		return &Error{Value: tomlValue(v)}
	}
	files := make([]AuthFile, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return &Error{Value: tomlValue(item)}
		}
		a, e := c.parseAuthFile(s)
		if e != nil {
			return e
		}
		files = append(files, a)
	}
	c.AuthFiles = nil
	if len(files) > 0 {
		c.AuthFiles = files
	}
	return nil
}

// parseAuthFile reads one auth_files entry: "~/REL" (host $HOME/REL, guest
// /root/REL) or "HOST:GUEST" (split at the first colon).
func (c *Config) parseAuthFile(s string) (AuthFile, *Error) {
	host, guest, explicit := strings.Cut(s, ":")
	if !explicit {
		rel, ok := strings.CutPrefix(s, "~/")
		if !ok || filepath.Clean(rel) == "." {
			return AuthFile{}, &Error{Value: quote(s)}
		}
		guest = filepath.Join(GuestHome, rel)
	}
	host, e := c.expandHome(host)
	if e != nil {
		e.Value = quote(s)
		return AuthFile{}, e
	}
	if !filepath.IsAbs(host) || !filepath.IsAbs(guest) {
		return AuthFile{}, &Error{Value: quote(s)}
	}
	guest = filepath.Clean(guest)
	if bootpayload.CheckGuestPath(guest) != nil {
		return AuthFile{}, &Error{Value: quote(s), Want: wantGuestUnderRoot}
	}
	return AuthFile{Host: host, Guest: guest}, nil
}

const wantGuestUnderRoot = `a clean guest path under /root, where the VM's work disk is, e.g. "/root/.claude.json"`

func checkAuthFiles(c *Config) *Error {
	seen := map[string]bool{}
	for _, a := range c.AuthFiles {
		value := quote(c.authFileEntry(a))
		switch {
		case !filepath.IsAbs(a.Host) || filepath.Clean(a.Host) != a.Host || strings.Contains(a.Host, ":"):
			return &Error{Value: value, Want: "an absolute, clean host path without \":\""}
		case bootpayload.CheckGuestPath(a.Guest) != nil:
			return &Error{Value: value, Want: wantGuestUnderRoot}
		case seen[a.Guest]:
			return &Error{Value: value, Want: fmt.Sprintf("each guest path only once: %s is already written by an earlier entry", a.Guest)}
		}
		if err := a.CheckHost(); err != nil {
			return &Error{Value: value, Problem: fmt.Sprintf("cannot be used: %v: point it at a file you can read, or remove it", err), Err: err}
		}
		seen[a.Guest] = true
	}
	return nil
}

func checkBinary(get func(*Config) string, emptyOK bool) func(*Config) *Error {
	return func(c *Config) *Error {
		s := get(c)
		switch {
		case s == "" && emptyOK:
			return nil
		case s == "", !filepath.IsAbs(s) && strings.ContainsRune(s, '/'):
			return &Error{Value: quote(s)}
		}
		return nil
	}
}

func checkDir(get func(*Config) string) func(*Config) *Error {
	return func(c *Config) *Error {
		if s := get(c); !filepath.IsAbs(s) {
			return &Error{Value: quote(s)}
		}
		return nil
	}
}

func checkRange(get func(*Config) int, lo, hi int) func(*Config) *Error {
	return func(c *Config) *Error {
		if n := get(c); n < lo || n > hi {
			return &Error{Value: strconv.Itoa(n)}
		}
		return nil
	}
}

// checkStateDir holds state_dir to what VM starts need: the VMs'
// directories are under it, and the hypervisors put their sockets there.
func checkStateDir(c *Config) *Error {
	if e := checkDir(func(c *Config) string { return c.Paths.StateDir })(c); e != nil {
		return e
	}
	dir := c.Paths.VMDir(LongestVMID)
	longest := ""
	for _, s := range append(qemu.SocketPaths(dir), firecracker.SocketPaths(dir)...) {
		if len(s) > len(longest) {
			longest = s
		}
	}
	if over := len(longest) - maxSocketPath; over > 0 {
		return &Error{Value: quote(c.Paths.StateDir), Want: fmt.Sprintf(
			"a directory of at most %d bytes, so that the sockets of the VMs' directories under it fit in a Unix socket address (%d bytes at most, and %s is %d)",
			len(c.Paths.StateDir)-over, maxSocketPath, longest, len(longest))}
	}
	return nil
}

// checkVCPUs holds vm.vcpus to what every create can use: the bounds of
// a create request, and Firecracker's own when hypervisor may pick it.
func checkVCPUs(c *Config) *Error {
	if e := checkRange(func(c *Config) int { return c.VM.VCPUs }, 1, MaxVCPUs)(c); e != nil {
		return e
	}
	if c.VM.VCPUs > firecracker.MaxVCPUs && c.Hypervisor != HypervisorQEMU {
		picks := ""
		if c.Hypervisor == HypervisorAuto {
			picks = " (it picks Firecracker where KVM boots guests)"
		}
		return &Error{Value: strconv.Itoa(c.VM.VCPUs), Want: fmt.Sprintf(
			`at most %d while hypervisor is %q%s, since Firecracker runs 1 to %d vCPUs: lower vm.vcpus, or set hypervisor = "qemu"`,
			firecracker.MaxVCPUs, c.Hypervisor, picks, firecracker.MaxVCPUs)}
	}
	return nil
}

// checkSSHKey holds ssh_key to what VM starts need of it (sshkey.Inspect
// is the same check): an unencrypted OpenSSH private key, readable by its
// owner only, with a matching .pub if it has one.
func checkSSHKey(c *Config) *Error {
	p := c.SSHKey
	if p == "" {
		return nil
	}
	if !filepath.IsAbs(p) {
		return &Error{Value: quote(p)}
	}
	if _, err := sshkey.Inspect(p); err != nil {
		return &Error{Value: quote(p), Problem: "cannot be used: " + err.Error(), Err: err}
	}
	return nil
}

// keyText writes a key path as TOML would: bare parts as they are, other
// parts (spaces, control bytes, ...) quoted.
func keyText(key toml.Key) string {
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = k
		if k == "" || strings.IndexFunc(k, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
		}) >= 0 {
			parts[i] = quote(k)
		}
	}
	return strings.Join(parts, ".")
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlValue writes a decoded TOML value back in TOML syntax, for errors.
func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return v.Format(time.RFC3339Nano)
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = tomlValue(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []map[string]any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = tomlValue(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + " = " + tomlValue(v[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

func setEgressPreset(c *Config, name string, v any) *Error {
	list, ok := v.([]any)
	if !ok {
		return &Error{Value: tomlValue(v)}
	}
	entries := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return &Error{Value: tomlValue(item)}
		}
		entries = append(entries, s)
	}
	if c.Egress.Presets == nil {
		c.Egress.Presets = map[string][]string{}
	}
	c.Egress.Presets[name] = entries
	return nil
}

// checkEgressPresets holds every preset's entries to the allowlist's
// syntax (egress.ParseRule; presets may not name presets).
func checkEgressPresets(c *Config) *Error {
	for _, name := range slices.Sorted(maps.Keys(c.Egress.Presets)) {
		if !presetNameRE.MatchString(name) {
			return &Error{Key: "egress.presets." + name, Value: quote(name), Want: "a preset name of letters, digits, '-' and '_', e.g. agents"}
		}
		for _, e := range c.Egress.Presets[name] {
			if _, err := egress.ParseRule(e); err != nil {
				return &Error{Key: "egress.presets." + name, Value: quote(e), Problem: "is refused: " + err.Error(), Err: err}
			}
		}
	}
	return nil
}

var presetNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
