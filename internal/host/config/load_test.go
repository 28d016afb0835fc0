package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// fixture is an isolated banger home: BANGER_HOME and HOME under t.TempDir.
type fixture struct {
	root  string // BANGER_HOME
	home  string // HOME
	paths Paths
	env   Env
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := shortTempDir(t)
	f := fixture{root: filepath.Join(dir, "b"), home: filepath.Join(dir, "home")}
	f.env = MapEnv(map[string]string{EnvHome: f.root, "HOME": f.home})
	paths, err := DefaultPaths(f.env, 1000)
	if err != nil {
		t.Fatalf("DefaultPaths: %v", err)
	}
	f.paths = paths
	return f
}

// shortTempDir is a fresh directory with a short path, removed at the end
// of the test: t.TempDir's paths, named after the test, leave a state
// directory under them too little room for the VMs' sockets.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// write saves content as the fixture's config file.
func (f fixture) write(t *testing.T, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(f.paths.ConfigFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.paths.ConfigFile, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sshKey creates an unencrypted ed25519 private key under HOME and
// returns its path.
func (f fixture) sshKey(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return f.keyFile(t, "id_ed25519", pem.EncodeToMemory(block), 0o600)
}

// keyFile writes content as ~/.ssh/name with mode and returns its path.
func (f fixture) keyFile(t *testing.T, name string, content []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(f.home, ".ssh", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func cmpConfig() cmp.Options {
	return cmp.Options{
		cmp.AllowUnexported(Config{}),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	}
}

func TestLoadDefaults(t *testing.T) {
	tests := []struct {
		name string
		file *string // nil: no file
		env  func(f fixture) Env
		want func(f fixture) *Config
	}{
		{
			name: "no file",
			want: func(f fixture) *Config { return Default(f.paths, f.home) },
		},
		{
			name: "empty file",
			file: ptr(""),
			want: func(f fixture) *Config { return Default(f.paths, f.home) },
		},
		{
			name: "comments only",
			file: ptr("# nothing set\n\n[vm]\n# vcpus = 4\n"),
			want: func(f fixture) *Config { return Default(f.paths, f.home) },
		},
		{
			name: "one key, the rest defaults",
			file: ptr("[vm]\nvcpus = 4\n"),
			want: func(f fixture) *Config {
				c := Default(f.paths, f.home)
				c.VM.VCPUs = 4
				return c
			},
		},
		{
			name: "dotted keys and inline tables",
			file: ptr("network.bridge = \"br1\"\nvm = {memory = \"2G\", disk = 4294967296}\n"),
			want: func(f fixture) *Config {
				c := Default(f.paths, f.home)
				c.Network.Bridge = "br1"
				c.VM.MemoryMiB = 2048
				c.VM.DiskBytes = 4 * GiB
				return c
			},
		},
		{
			name: "allowed destinations",
			file: ptr("[network]\nallow_cidrs = [\"192.168.1.0/24\", \"10.20.0.0/16\"]\n"),
			want: func(f fixture) *Config {
				c := Default(f.paths, f.home)
				c.Network.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("10.20.0.0/16")}
				return c
			},
		},
		{
			name: "copy limit",
			file: ptr("[copy]\nmax_size = \"40GiB\"\n"),
			want: func(f fixture) *Config {
				c := Default(f.paths, f.home)
				c.Copy.MaxBytes = 40 * GiB
				return c
			},
		},
		{
			name: "empty values keep the defaults",
			file: ptr("firecracker_bin = \"\"\nqemu_bin = \"\"\nssh_key = \"\"\ndata_dir = \"\"\nstate_dir = \"\"\nruntime_dir = \"\"\n"),
			want: func(f fixture) *Config { return Default(f.paths, f.home) },
		},
		{
			name: "directories move, with ~ expanded",
			file: ptr("data_dir = \"~/data\"\nstate_dir = \"/var/lib/../lib/banger\"\nruntime_dir = \"/run/b\"\n"),
			want: func(f fixture) *Config {
				c := Default(f.paths, f.home)
				c.Paths.DataDir = filepath.Join(f.home, "data")
				c.Paths.StateDir = "/var/lib/banger"
				c.Paths.RuntimeDir = "/run/b"
				return c
			},
		},
		{
			name: "no HOME: no default auth files",
			env:  func(f fixture) Env { return MapEnv(map[string]string{EnvHome: f.root}) },
			want: func(f fixture) *Config {
				c := Default(f.paths, f.home)
				c.AuthFiles, c.home = nil, ""
				return c
			},
		},
		{
			name: "auth_files replaces the default list",
			file: ptr("auth_files = [\"~/.config/gh/hosts.yml\", \"~/tokens/a:/root/.a\"]\n"),
			want: func(f fixture) *Config {
				c := Default(f.paths, f.home)
				c.AuthFiles = []AuthFile{
					{Host: filepath.Join(f.home, ".config/gh/hosts.yml"), Guest: "/root/.config/gh/hosts.yml"},
					{Host: filepath.Join(f.home, "tokens/a"), Guest: "/root/.a"},
				}
				return c
			},
		},
		{
			name: "empty auth_files syncs nothing",
			file: ptr("auth_files = []\n"),
			want: func(f fixture) *Config {
				c := Default(f.paths, f.home)
				c.AuthFiles = nil
				return c
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.file != nil {
				f.write(t, *tt.file)
			}
			env := f.env
			if tt.env != nil {
				env = tt.env(f)
			}
			got, err := Load(f.paths, env)
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			if diff := cmp.Diff(tt.want(f), got, cmpConfig()); diff != "" {
				t.Errorf("Load() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestLoadEmptyConfigFile(t *testing.T) {
	f := newFixture(t)
	paths := f.paths
	paths.ConfigFile = ""
	got, err := Load(paths, f.env)
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if diff := cmp.Diff(Default(paths, f.home), got, cmpConfig()); diff != "" {
		t.Errorf("Load() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadWritesNothing(t *testing.T) {
	f := newFixture(t)
	if _, err := Load(f.paths, f.env); err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(f.root))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("Load() created %v, want nothing", entries[0].Name())
	}
}

// TestRoundTrip sets every key to a value other than its default, renders the
// configuration, and loads the rendering back.
func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	key := f.sshKey(t)

	orig := Default(f.paths, f.home)
	orig.Hypervisor = HypervisorQEMU
	orig.FirecrackerBin = "/opt/firecracker/bin/firecracker"
	orig.QEMUBin = "qemu-kvm"
	orig.SSHKey = key
	orig.LogLevel = "debug"
	orig.Paths.DataDir = filepath.Join(f.root, "elsewhere", "data")
	orig.Paths.StateDir = "/var/lib/banger"
	orig.Paths.RuntimeDir = "/run/banger-test"
	orig.Network = Network{Bridge: "br-test.1", Subnet: netip.MustParsePrefix("10.9.0.0/16"), TAPPoolSize: 0,
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}}
	orig.VM = VMDefaults{VCPUs: 64, MemoryMiB: 1536, DiskBytes: 20*GiB + 512*MiB}
	orig.Web.Listen = "[::1]:7181"
	orig.AuthFiles = []AuthFile{
		{Host: filepath.Join(f.home, ".claude.json"), Guest: "/root/.claude.json"},
		{Host: "/etc/agent/token", Guest: "/root/.config/agent/token"},
		{Host: filepath.Join(f.home, "a b", "x"), Guest: "/root/y"},
	}
	if err := orig.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}

	text, err := orig.TOML()
	if err != nil {
		t.Fatalf("TOML() error = %v", err)
	}
	f.write(t, string(text))
	got, err := Load(f.paths, f.env)
	if err != nil {
		t.Fatalf("Load(TOML()) error = %v\n%s", err, text)
	}
	if diff := cmp.Diff(orig, got, cmpConfig()); diff != "" {
		t.Errorf("Load(TOML()) mismatch (-want +got):\n%s\nfile:\n%s", diff, text)
	}
	again, err := got.TOML()
	if err != nil {
		t.Fatalf("TOML() error = %v", err)
	}
	if diff := cmp.Diff(string(text), string(again)); diff != "" {
		t.Errorf("TOML() of the loaded config differs (-first +second):\n%s", diff)
	}

	// Every key the file format has must be in the rendering.
	for _, fl := range fields() {
		leaf := fl.key[strings.LastIndexByte(fl.key, '.')+1:]
		switch {
		case leaf == "*":
			continue // names its keys freely: its table's rendering is checked
		case fl.table:
			leaf = "[" + fl.key + "]"
		default:
			leaf += " = "
		}
		if !strings.Contains(string(text), leaf) {
			t.Errorf("TOML() lacks key %s:\n%s", fl.key, text)
		}
	}
}

func TestLoadInvalid(t *testing.T) {
	longDir := "/" + strings.Repeat("r", 94)
	tests := []struct {
		name    string
		file    string
		setup   func(t *testing.T, f fixture) // optional
		noHome  bool
		wantKey string
		wantMsg string // {FILE} and {HOME} are replaced by the fixture's paths
	}{
		{
			name:    "hypervisor",
			file:    `hypervisor = "kvm"`,
			wantKey: "hypervisor",
			wantMsg: `config {FILE}: hypervisor = "kvm" is not valid: want "auto", "firecracker" or "qemu"`,
		},
		{
			name:    "egress preset entry",
			file:    "[egress.presets]\nweb = [\"github.com:80,443\"]",
			wantKey: "egress.presets.web",
			wantMsg: `config {FILE}: egress.presets.web = "github.com:80,443" is refused: egress entry "github.com:80,443": port "80,443" is not a number from 1 to 65535 (one port per entry: repeat the entry for another)`,
		},
		{
			name:    "egress preset type",
			file:    "[egress.presets]\nweb = \"github.com\"",
			wantKey: "egress.presets.web",
			wantMsg: `config {FILE}: egress.presets.web = "github.com" is not valid: want a list of egress allowlist entries (domains, *.wildcards, IPv4 addresses or CIDRs, each with an optional :PORT), e.g. ["github.com:443", "*.npmjs.org"]`,
		},
		{
			name:    "hypervisor type",
			file:    `hypervisor = 1`,
			wantKey: "hypervisor",
			wantMsg: `config {FILE}: hypervisor = 1 is not valid: want "auto", "firecracker" or "qemu"`,
		},
		{
			name:    "vm_user not a user name",
			file:    `vm_user = "Banger VM"`,
			wantKey: "vm_user",
			wantMsg: `config {FILE}: vm_user = "Banger VM" is not valid: want "" (hypervisors stay root under a root daemon: not recommended) or a user name, e.g. "banger-vm"`,
		},
		{
			name:    "vm_user type",
			file:    `vm_user = 0`,
			wantKey: "vm_user",
			wantMsg: `config {FILE}: vm_user = 0 is not valid: want "" (hypervisors stay root under a root daemon: not recommended) or a user name, e.g. "banger-vm"`,
		},
		{
			name:    "firecracker_bin relative path",
			file:    `firecracker_bin = "bin/firecracker"`,
			wantKey: "firecracker_bin",
			wantMsg: `config {FILE}: firecracker_bin = "bin/firecracker" is not valid: want "" (find "firecracker" on PATH), a command name, or an absolute path`,
		},
		{
			name:    "qemu_bin relative path",
			file:    `qemu_bin = "./qemu"`,
			wantKey: "qemu_bin",
			wantMsg: `config {FILE}: qemu_bin = "./qemu" is not valid: want a command name or an absolute path, e.g. "qemu-system-x86_64"`,
		},
		{
			name:    "ssh_key relative",
			file:    `ssh_key = "id_ed25519"`,
			wantKey: "ssh_key",
			wantMsg: `config {FILE}: ssh_key = "id_ed25519" is not valid: want "" (use banger's managed key) or the absolute path of a private key, e.g. "~/.ssh/id_ed25519"`,
		},
		{
			name:    "ssh_key missing",
			file:    `ssh_key = "~/.ssh/nope"`,
			wantKey: "ssh_key",
			wantMsg: `config {FILE}: ssh_key = "{HOME}/.ssh/nope" cannot be used: SSH key {HOME}/.ssh/nope: file does not exist: create it with "ssh-keygen -t ed25519 -N '' -f {HOME}/.ssh/nope", or remove ssh_key from the config to let banger manage a key`,
		},
		{
			name: "ssh_key directory",
			file: `ssh_key = "~/.ssh"`,
			setup: func(t *testing.T, f fixture) {
				f.sshKey(t)
			},
			wantKey: "ssh_key",
			wantMsg: `config {FILE}: ssh_key = "{HOME}/.ssh" cannot be used: SSH key {HOME}/.ssh is not a regular file: point ssh_key at an OpenSSH private key, or remove ssh_key from the config to use banger's managed key`,
		},
		{
			name: "ssh_key readable by others",
			file: `ssh_key = "~/.ssh/id_ed25519"`,
			setup: func(t *testing.T, f fixture) {
				os.Chmod(f.sshKey(t), 0o644)
			},
			wantKey: "ssh_key",
			wantMsg: `config {FILE}: ssh_key = "{HOME}/.ssh/id_ed25519" cannot be used: SSH key {HOME}/.ssh/id_ed25519 is accessible by other users (mode 0644) and ssh will refuse it: run "chmod 600 {HOME}/.ssh/id_ed25519"`,
		},
		{
			name: "ssh_key not a private key",
			file: `ssh_key = "~/.ssh/id_ed25519"`,
			setup: func(t *testing.T, f fixture) {
				f.keyFile(t, "id_ed25519", []byte("key\n"), 0o600)
			},
			wantKey: "ssh_key",
			wantMsg: `config {FILE}: ssh_key = "{HOME}/.ssh/id_ed25519" cannot be used: SSH key {HOME}/.ssh/id_ed25519 is not a private key banger can read (ssh: no key found): point ssh_key at an OpenSSH private key, or remove ssh_key from the config to use banger's managed key`,
		},
		{
			name: "ssh_key with a passphrase",
			file: `ssh_key = "~/.ssh/id_ed25519"`,
			setup: func(t *testing.T, f fixture) {
				_, priv, _ := ed25519.GenerateKey(rand.Reader)
				block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
				if err != nil {
					t.Fatal(err)
				}
				f.keyFile(t, "id_ed25519", pem.EncodeToMemory(block), 0o600)
			},
			wantKey: "ssh_key",
			wantMsg: `config {FILE}: ssh_key = "{HOME}/.ssh/id_ed25519" cannot be used: SSH key {HOME}/.ssh/id_ed25519 is protected by a passphrase: banger needs an unencrypted key; point ssh_key at one, or remove ssh_key from the config to use banger's managed key`,
		},
		{
			name: "ssh_key with another key's .pub",
			file: `ssh_key = "~/.ssh/id_ed25519"`,
			setup: func(t *testing.T, f fixture) {
				f.sshKey(t)
				pub, _, _ := ed25519.GenerateKey(rand.Reader)
				sp, _ := ssh.NewPublicKey(pub)
				f.keyFile(t, "id_ed25519.pub", ssh.MarshalAuthorizedKey(sp), 0o644)
			},
			wantKey: "ssh_key",
			wantMsg: `config {FILE}: ssh_key = "{HOME}/.ssh/id_ed25519" cannot be used: public key {HOME}/.ssh/id_ed25519.pub does not match its private key: regenerate it with "ssh-keygen -y -f {HOME}/.ssh/id_ed25519 > {HOME}/.ssh/id_ed25519.pub"`,
		},
		{
			name:    "ssh_key ~ without HOME",
			file:    `ssh_key = "~/.ssh/id_ed25519"`,
			noHome:  true,
			wantKey: "ssh_key",
			wantMsg: `config {FILE}: ssh_key = "~/.ssh/id_ed25519" is not valid: want an absolute path: HOME is not set to an absolute path, so "~" cannot be expanded`,
		},
		{
			name:    "log_level",
			file:    `log_level = "verbose"`,
			wantKey: "log_level",
			wantMsg: `config {FILE}: log_level = "verbose" is not valid: want "debug", "info", "warn" or "error"`,
		},
		{
			name:    "data_dir relative",
			file:    `data_dir = "relative/dir"`,
			wantKey: "data_dir",
			wantMsg: `config {FILE}: data_dir = "relative/dir" is not valid: want "" (the default) or an absolute directory; "~/" is allowed`,
		},
		{
			name:    "state_dir type",
			file:    `state_dir = 5`,
			wantKey: "state_dir",
			wantMsg: `config {FILE}: state_dir = 5 is not valid: want "" (the default) or an absolute directory; "~/" is allowed`,
		},
		{
			name:    "runtime_dir ~user",
			file:    `runtime_dir = "~bob/run"`,
			wantKey: "runtime_dir",
			wantMsg: `config {FILE}: runtime_dir = "~bob/run" is not valid: want "" (the default) or an absolute directory; "~/" is allowed`,
		},
		{
			name:    "runtime_dir too long for a socket",
			file:    `runtime_dir = "` + longDir + `"`,
			wantKey: "runtime_dir",
			wantMsg: `config {FILE}: runtime_dir = "` + longDir + `" is not valid: want a directory of at most 94 bytes, so that the API socket path fits in a Unix socket address`,
		},
		{
			name:    "auth_files not a list",
			file:    `auth_files = "~/.claude.json"`,
			wantKey: "auth_files",
			wantMsg: `config {FILE}: auth_files = "~/.claude.json" is not valid: want a list of "~/PATH" or "HOSTPATH:GUESTPATH" entries, with absolute paths and the guest path under /root, e.g. ["~/.claude.json"]`,
		},
		{
			name:    "auth_files entry not a string",
			file:    `auth_files = ["~/.a", 1]`,
			wantKey: "auth_files",
			wantMsg: `config {FILE}: auth_files = 1 is not valid: want a list of "~/PATH" or "HOSTPATH:GUESTPATH" entries, with absolute paths and the guest path under /root, e.g. ["~/.claude.json"]`,
		},
		{
			name:    "auth_files relative entry",
			file:    `auth_files = [".claude.json"]`,
			wantKey: "auth_files",
			wantMsg: `config {FILE}: auth_files = ".claude.json" is not valid: want a list of "~/PATH" or "HOSTPATH:GUESTPATH" entries, with absolute paths and the guest path under /root, e.g. ["~/.claude.json"]`,
		},
		{
			name:    "auth_files home itself",
			file:    `auth_files = ["~/"]`,
			wantKey: "auth_files",
			wantMsg: `config {FILE}: auth_files = "~/" is not valid: want a list of "~/PATH" or "HOSTPATH:GUESTPATH" entries, with absolute paths and the guest path under /root, e.g. ["~/.claude.json"]`,
		},
		{
			name:    "auth_files relative guest",
			file:    `auth_files = ["/etc/token:token"]`,
			wantKey: "auth_files",
			wantMsg: `config {FILE}: auth_files = "/etc/token:token" is not valid: want a list of "~/PATH" or "HOSTPATH:GUESTPATH" entries, with absolute paths and the guest path under /root, e.g. ["~/.claude.json"]`,
		},
		{
			name:    "auth_files guest outside /root",
			file:    `auth_files = ["/etc/token:/etc/token"]`,
			wantKey: "auth_files",
			wantMsg: `config {FILE}: auth_files = "/etc/token:/etc/token" is not valid: want a clean guest path under /root, where the VM's work disk is, e.g. "/root/.claude.json"`,
		},
		{
			name:    "auth_files guest escaping /root",
			file:    `auth_files = ["~/../x"]`,
			wantKey: "auth_files",
			wantMsg: `config {FILE}: auth_files = "~/../x" is not valid: want a clean guest path under /root, where the VM's work disk is, e.g. "/root/.claude.json"`,
		},
		{
			name:    "auth_files duplicate guest",
			file:    `auth_files = ["~/.claude.json", "/srv/claude.json:/root/.claude.json"]`,
			wantKey: "auth_files",
			wantMsg: `config {FILE}: auth_files = "/srv/claude.json:/root/.claude.json" is not valid: want each guest path only once: /root/.claude.json is already written by an earlier entry`,
		},
		{
			name:    "auth_files ~ without HOME",
			file:    `auth_files = ["~/.claude.json"]`,
			noHome:  true,
			wantKey: "auth_files",
			wantMsg: `config {FILE}: auth_files = "~/.claude.json" is not valid: want an absolute path: HOME is not set to an absolute path, so "~" cannot be expanded`,
		},
		{
			name:    "network not a table",
			file:    `network = "banger0"`,
			wantKey: "network",
			wantMsg: `config {FILE}: network = "banger0" is not valid: want a table, e.g. [network]`,
		},
		{
			name:    "vm array of tables",
			file:    "[[vm]]\nvcpus = 2",
			wantKey: "vm",
			wantMsg: `config {FILE}: vm = [{vcpus = 2}] is not valid: want a table, e.g. [vm]`,
		},
		{
			name:    "bridge too long",
			file:    "[network]\nbridge = \"this-is-sixteen!\"",
			wantKey: "network.bridge",
			wantMsg: `config {FILE}: network.bridge = "this-is-sixteen!" is not valid: want a Linux interface name of 1 to 15 bytes without "/", ":" or spaces, not starting with "tap-pool-", e.g. "banger0"`,
		},
		{
			name:    "bridge slash",
			file:    "[network]\nbridge = \"br/0\"",
			wantKey: "network.bridge",
			wantMsg: `config {FILE}: network.bridge = "br/0" is not valid: want a Linux interface name of 1 to 15 bytes without "/", ":" or spaces, not starting with "tap-pool-", e.g. "banger0"`,
		},
		{
			name:    "bridge colon",
			file:    "[network]\nbridge = \"br:0\"",
			wantKey: "network.bridge",
			wantMsg: `config {FILE}: network.bridge = "br:0" is not valid: want a Linux interface name of 1 to 15 bytes without "/", ":" or spaces, not starting with "tap-pool-", e.g. "banger0"`,
		},
		{
			name:    "bridge space",
			file:    "[network]\nbridge = \"br 0\"",
			wantKey: "network.bridge",
			wantMsg: `config {FILE}: network.bridge = "br 0" is not valid: want a Linux interface name of 1 to 15 bytes without "/", ":" or spaces, not starting with "tap-pool-", e.g. "banger0"`,
		},
		{
			name:    "bridge dotdot",
			file:    "[network]\nbridge = \"..\"",
			wantKey: "network.bridge",
			wantMsg: `config {FILE}: network.bridge = ".." is not valid: want a Linux interface name of 1 to 15 bytes without "/", ":" or spaces, not starting with "tap-pool-", e.g. "banger0"`,
		},
		{
			name:    "bridge empty",
			file:    "[network]\nbridge = \"\"",
			wantKey: "network.bridge",
			wantMsg: `config {FILE}: network.bridge = "" is not valid: want a Linux interface name of 1 to 15 bytes without "/", ":" or spaces, not starting with "tap-pool-", e.g. "banger0"`,
		},
		{
			name:    "subnet unparsable",
			file:    "[network]\nsubnet = \"10.0.0.1/33\"",
			wantKey: "network.subnet",
			wantMsg: `config {FILE}: network.subnet = "10.0.0.1/33" is not valid: want an IPv4 CIDR with prefix 16..29, e.g. "172.30.0.0/24"`,
		},
		{
			name:    "subnet type",
			file:    "[network]\nsubnet = 24",
			wantKey: "network.subnet",
			wantMsg: `config {FILE}: network.subnet = 24 is not valid: want an IPv4 CIDR with prefix 16..29, e.g. "172.30.0.0/24"`,
		},
		{
			name:    "subnet host bits",
			file:    "[network]\nsubnet = \"10.1.2.3/24\"",
			wantKey: "network.subnet",
			wantMsg: `config {FILE}: network.subnet = "10.1.2.3/24" is not valid: want the network address, with the host bits zero: "10.1.2.0/24"`,
		},
		{
			name:    "subnet IPv6",
			file:    "[network]\nsubnet = \"fd00::/64\"",
			wantKey: "network.subnet",
			wantMsg: `config {FILE}: network.subnet = "fd00::/64" is not valid: want an IPv4 CIDR with prefix 16..29, e.g. "172.30.0.0/24"`,
		},
		{
			name:    "subnet too large",
			file:    "[network]\nsubnet = \"10.0.0.0/8\"",
			wantKey: "network.subnet",
			wantMsg: `config {FILE}: network.subnet = "10.0.0.0/8" is not valid: want an IPv4 CIDR with prefix 16..29, e.g. "172.30.0.0/24"`,
		},
		{
			name:    "subnet too small",
			file:    "[network]\nsubnet = \"10.0.0.0/30\"",
			wantKey: "network.subnet",
			wantMsg: `config {FILE}: network.subnet = "10.0.0.0/30" is not valid: want an IPv4 CIDR with prefix 16..29, e.g. "172.30.0.0/24"`,
		},
		{
			name:    "subnet loopback",
			file:    "[network]\nsubnet = \"127.1.0.0/16\"",
			wantKey: "network.subnet",
			wantMsg: `config {FILE}: network.subnet = "127.1.0.0/16" is not valid: want a private IPv4 range that no host service uses, e.g. "172.30.0.0/24"`,
		},
		{
			name:    "tap_pool_size too large",
			file:    "[network]\ntap_pool_size = 65",
			wantKey: "network.tap_pool_size",
			wantMsg: `config {FILE}: network.tap_pool_size = 65 is not valid: want an integer from 0 to 64, e.g. 4`,
		},
		{
			name:    "tap_pool_size negative",
			file:    "[network]\ntap_pool_size = -1",
			wantKey: "network.tap_pool_size",
			wantMsg: `config {FILE}: network.tap_pool_size = -1 is not valid: want an integer from 0 to 64, e.g. 4`,
		},
		{
			name:    "tap_pool_size string",
			file:    "[network]\ntap_pool_size = \"4\"",
			wantKey: "network.tap_pool_size",
			wantMsg: `config {FILE}: network.tap_pool_size = "4" is not valid: want an integer from 0 to 64, e.g. 4`,
		},
		{
			name:    "allow_cidrs not a list",
			file:    "[network]\nallow_cidrs = \"192.168.1.0/24\"",
			wantKey: "network.allow_cidrs",
			wantMsg: `config {FILE}: network.allow_cidrs = "192.168.1.0/24" is not valid: want a list of IPv4 CIDRs that guests may reach although they are private, link-local or CGNAT, e.g. ["192.168.1.0/24"]`,
		},
		{
			name:    "allow_cidrs not a CIDR",
			file:    "[network]\nallow_cidrs = [\"192.168.1.1\"]",
			wantKey: "network.allow_cidrs",
			wantMsg: `config {FILE}: network.allow_cidrs = "192.168.1.1" is not valid: want a list of IPv4 CIDRs that guests may reach although they are private, link-local or CGNAT, e.g. ["192.168.1.0/24"]`,
		},
		{
			name:    "allow_cidrs IPv6",
			file:    "[network]\nallow_cidrs = [\"fd00::/8\"]",
			wantKey: "network.allow_cidrs",
			wantMsg: `config {FILE}: network.allow_cidrs = "fd00::/8" is not valid: want IPv4 CIDRs only (guests get no IPv6), e.g. ["192.168.1.0/24"]`,
		},
		{
			name:    "allow_cidrs host bits",
			file:    "[network]\nallow_cidrs = [\"192.168.1.7/24\"]",
			wantKey: "network.allow_cidrs",
			wantMsg: `config {FILE}: network.allow_cidrs = "192.168.1.7/24" is not valid: want the network address, with the host bits zero: "192.168.1.0/24"`,
		},
		{
			name:    "vcpus zero",
			file:    "[vm]\nvcpus = 0",
			wantKey: "vm.vcpus",
			wantMsg: `config {FILE}: vm.vcpus = 0 is not valid: want an integer from 1 to 64, e.g. 2`,
		},
		{
			name:    "vcpus too many",
			file:    "[vm]\nvcpus = 65",
			wantKey: "vm.vcpus",
			wantMsg: `config {FILE}: vm.vcpus = 65 is not valid: want an integer from 1 to 64, e.g. 2`,
		},
		{
			name:    "vcpus words",
			file:    "[vm]\nvcpus = \"two\"",
			wantKey: "vm.vcpus",
			wantMsg: `config {FILE}: vm.vcpus = "two" is not valid: want an integer from 1 to 64, e.g. 2`,
		},
		{
			name:    "vcpus float",
			file:    "[vm]\nvcpus = 2.5",
			wantKey: "vm.vcpus",
			wantMsg: `config {FILE}: vm.vcpus = 2.5 is not valid: want an integer from 1 to 64, e.g. 2`,
		},
		{
			name:    "memory too small",
			file:    "[vm]\nmemory = \"128M\"",
			wantKey: "vm.memory",
			wantMsg: `config {FILE}: vm.memory = "128MiB" is not valid: want a size from 256MiB to 256GiB in whole MiB, e.g. "1GiB" (a bare number is bytes)`,
		},
		{
			name:    "memory in bytes, too small",
			file:    "[vm]\nmemory = 2048",
			wantKey: "vm.memory",
			wantMsg: `config {FILE}: vm.memory = 2048 is not valid: want a size from 256MiB to 256GiB in whole MiB, e.g. "1GiB" (a bare number is bytes)`,
		},
		{
			name:    "memory not whole MiB",
			file:    "[vm]\nmemory = \"1000000000\"",
			wantKey: "vm.memory",
			wantMsg: `config {FILE}: vm.memory = "1000000000" is not valid: want a size from 256MiB to 256GiB in whole MiB, e.g. "1GiB" (a bare number is bytes)`,
		},
		{
			name:    "memory fraction",
			file:    "[vm]\nmemory = \"1.5GiB\"",
			wantKey: "vm.memory",
			wantMsg: `config {FILE}: vm.memory = "1.5GiB" is not valid: want a size from 256MiB to 256GiB in whole MiB, e.g. "1GiB" (a bare number is bytes)`,
		},
		{
			name:    "memory bool",
			file:    "[vm]\nmemory = true",
			wantKey: "vm.memory",
			wantMsg: `config {FILE}: vm.memory = true is not valid: want a size from 256MiB to 256GiB in whole MiB, e.g. "1GiB" (a bare number is bytes)`,
		},
		{
			name:    "disk too small",
			file:    "[vm]\ndisk = \"512MiB\"",
			wantKey: "vm.disk",
			wantMsg: `config {FILE}: vm.disk = "512MiB" is not valid: want a size from 1GiB to 4TiB in whole MiB, e.g. "8GiB" (a bare number is bytes)`,
		},
		{
			name:    "disk not whole MiB",
			file:    "[vm]\ndisk = 1073741825",
			wantKey: "vm.disk",
			wantMsg: `config {FILE}: vm.disk = "1073741825B" is not valid: want a size from 1GiB to 4TiB in whole MiB, e.g. "8GiB" (a bare number is bytes)`,
		},
		{
			name:    "disk negative",
			file:    "[vm]\ndisk = -1",
			wantKey: "vm.disk",
			wantMsg: `config {FILE}: vm.disk = -1 is not valid: want a size from 1GiB to 4TiB in whole MiB, e.g. "8GiB" (a bare number is bytes)`,
		},
		{
			name:    "copy limit zero",
			file:    "[copy]\nmax_size = 0",
			wantKey: "copy.max_size",
			wantMsg: `config {FILE}: copy.max_size = "0B" is not valid: want a size above zero, e.g. "16GiB" (a bare number is bytes); the most one "vm cp" out of a guest may write`,
		},
		{
			name:    "disk unit",
			file:    "[vm]\ndisk = \"8 gigs\"",
			wantKey: "vm.disk",
			wantMsg: `config {FILE}: vm.disk = "8 gigs" is not valid: want a size from 1GiB to 4TiB in whole MiB, e.g. "8GiB" (a bare number is bytes)`,
		},
		{
			name:    "state_dir too long for the VMs' sockets",
			file:    `state_dir = "/` + strings.Repeat("s", 65) + `"`,
			wantKey: "state_dir",
			wantMsg: `config {FILE}: state_dir = "/` + strings.Repeat("s", 65) + `" is not valid: want a directory of at most 65 bytes, so that the sockets of the VMs' directories under it fit in a Unix socket address (107 bytes at most, and /` + strings.Repeat("s", 65) + `/vms/vm-0123456789ab/vsock.sock_4294967295 is 108)`,
		},
		{
			name:    "auth file that is a directory",
			file:    `auth_files = ["~/.claude"]`,
			setup:   func(t *testing.T, f fixture) { os.MkdirAll(filepath.Join(f.home, ".claude"), 0o700) },
			wantKey: "auth_files",
			wantMsg: `config {FILE}: auth_files = "~/.claude" cannot be used: {HOME}/.claude is a directory: point it at a file you can read, or remove it`,
		},
		{
			name:    "bridge named like a pool TAP",
			file:    "[network]\nbridge = \"tap-pool-9\"",
			wantKey: "network.bridge",
			wantMsg: `config {FILE}: network.bridge = "tap-pool-9" is not valid: want a Linux interface name of 1 to 15 bytes without "/", ":" or spaces, not starting with "tap-pool-", e.g. "banger0"`,
		},
		{
			name:    "bridge with a control character",
			file:    "[network]\nbridge = \"br\\u00070\"",
			wantKey: "network.bridge",
			wantMsg: `config {FILE}: network.bridge = "br\u00070" is not valid: want a Linux interface name of 1 to 15 bytes without "/", ":" or spaces, not starting with "tap-pool-", e.g. "banger0"`,
		},
		{
			name:    "memory above what a create may ask",
			file:    "[vm]\nmemory = \"512GiB\"",
			wantKey: "vm.memory",
			wantMsg: `config {FILE}: vm.memory = "512GiB" is not valid: want a size from 256MiB to 256GiB in whole MiB, e.g. "1GiB" (a bare number is bytes)`,
		},
		{
			name:    "disk above what a create may ask",
			file:    "[vm]\ndisk = \"5TiB\"",
			wantKey: "vm.disk",
			wantMsg: `config {FILE}: vm.disk = "5TiB" is not valid: want a size from 1GiB to 4TiB in whole MiB, e.g. "8GiB" (a bare number is bytes)`,
		},
		{
			name:    "vcpus above Firecracker's",
			file:    "hypervisor = \"firecracker\"\n[vm]\nvcpus = 33",
			wantKey: "vm.vcpus",
			wantMsg: `config {FILE}: vm.vcpus = 33 is not valid: want at most 32 while hypervisor is "firecracker", since Firecracker runs 1 to 32 vCPUs: lower vm.vcpus, or set hypervisor = "qemu"`,
		},
		{
			name:    "vcpus above Firecracker's, hypervisor auto",
			file:    "[vm]\nvcpus = 64",
			wantKey: "vm.vcpus",
			wantMsg: `config {FILE}: vm.vcpus = 64 is not valid: want at most 32 while hypervisor is "auto" (it picks Firecracker where KVM boots guests), since Firecracker runs 1 to 32 vCPUs: lower vm.vcpus, or set hypervisor = "qemu"`,
		},
		{
			name:    "vm_user root",
			file:    `vm_user = "root"`,
			wantKey: "vm_user",
			wantMsg: `config {FILE}: vm_user = "root" is refused: the VM user "root" is uid 0, gid 0: hypervisors must not run as root; set vm_user to an unprivileged user`,
		},
		{
			name:    "first error in file order",
			file:    "log_level = \"loud\"\n[vm]\nvcpus = 0",
			wantKey: "log_level",
			wantMsg: `config {FILE}: log_level = "loud" is not valid: want "debug", "info", "warn" or "error"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.write(t, tt.file+"\n")
			if tt.setup != nil {
				tt.setup(t, f)
			}
			env := f.env
			if tt.noHome {
				env = MapEnv(map[string]string{EnvHome: f.root})
			}
			c, err := Load(f.paths, env)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load() = %+v, %v; want a *config.Error", c, err)
			}
			want := strings.NewReplacer("{FILE}", f.paths.ConfigFile, "{HOME}", f.home).Replace(tt.wantMsg)
			got := struct{ Key, Msg string }{e.Key, err.Error()}
			if diff := cmp.Diff(struct{ Key, Msg string }{tt.wantKey, want}, got); diff != "" {
				t.Errorf("Load() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadUnknownKey(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantKey string
		wantMsg string
	}{
		{
			name:    "typo",
			file:    `hypervsor = "qemu"`,
			wantKey: "hypervsor",
			wantMsg: `config {FILE}: hypervsor is not a known key: did you mean "hypervisor"?`,
		},
		{
			name:    "truncated key in a table",
			file:    "[network]\ntap_pool = 2",
			wantKey: "network.tap_pool",
			wantMsg: `config {FILE}: network.tap_pool is not a known key: did you mean "tap_pool_size"?`,
		},
		{
			name:    "allow_cidr",
			file:    "[network]\nallow_cidr = [\"192.168.1.0/24\"]",
			wantKey: "network.allow_cidr",
			wantMsg: `config {FILE}: network.allow_cidr is not a known key: did you mean "allow_cidrs"?`,
		},
		{
			name:    "dashes",
			file:    "[network]\ntap-pool-size = 2",
			wantKey: "network.tap-pool-size",
			wantMsg: `config {FILE}: network.tap-pool-size is not a known key: did you mean "tap_pool_size"?`,
		},
		{
			name:    "longer key in a table",
			file:    "[vm]\nmemory_mib = 2048",
			wantKey: "vm.memory_mib",
			wantMsg: `config {FILE}: vm.memory_mib is not a known key: did you mean "memory"?`,
		},
		{
			name:    "short typo",
			file:    "[vm]\ncpus = 2",
			wantKey: "vm.cpus",
			wantMsg: `config {FILE}: vm.cpus is not a known key: did you mean "vcpus"?`,
		},
		{
			name:    "key in the wrong table",
			file:    "vcpus = 4",
			wantKey: "vcpus",
			wantMsg: `config {FILE}: vcpus is not a known key: did you mean "vm.vcpus"?`,
		},
		{
			name:    "misspelt table",
			file:    "[netwrk]\nbridge = \"br0\"",
			wantKey: "netwrk",
			wantMsg: `config {FILE}: netwrk is not a known key: did you mean "network"?`,
		},
		{
			name:    "nothing close",
			file:    `colour = "blue"`,
			wantKey: "colour",
			wantMsg: `config {FILE}: colour is not a known key: remove it, or see "banger config show" for every key`,
		},
		{
			name:    "key under a known leaf",
			file:    "[vm.disk]\nsize = 1",
			wantKey: "vm.disk",
			wantMsg: `config {FILE}: vm.disk = {size = 1} is not valid: want a size from 1GiB to 4TiB in whole MiB, e.g. "8GiB" (a bare number is bytes)`,
		},
		{
			name:    "config_file cannot be set",
			file:    `config_file = "/etc/b.toml"`,
			wantKey: "config_file",
			wantMsg: `config {FILE}: config_file is not a known key: remove it, or see "banger config show" for every key`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.write(t, tt.file+"\n")
			_, err := Load(f.paths, f.env)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load() error = %v, want a *config.Error", err)
			}
			want := strings.ReplaceAll(tt.wantMsg, "{FILE}", f.paths.ConfigFile)
			got := struct{ Key, Msg string }{e.Key, err.Error()}
			if diff := cmp.Diff(struct{ Key, Msg string }{tt.wantKey, want}, got); diff != "" {
				t.Errorf("Load() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadSyntaxError(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		wantLine int
	}{
		{name: "unterminated string", file: "hypervisor = \"auto\nlog_level = \"info\"\n", wantLine: 1},
		{name: "missing value", file: "[vm]\nvcpus =\n", wantLine: 2},
		{name: "duplicate key", file: "[vm]\nvcpus = 2\n\nvcpus = 3\n", wantLine: 4},
		{name: "bad table header", file: "log_level = \"info\"\n[vm\n", wantLine: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.write(t, tt.file)
			_, err := Load(f.paths, f.env)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load() error = %v, want a *config.Error", err)
			}
			if e.Line != tt.wantLine || e.File != f.paths.ConfigFile {
				t.Errorf("Load() error at %s:%d, want %s:%d", e.File, e.Line, f.paths.ConfigFile, tt.wantLine)
			}
			prefix := "config " + f.paths.ConfigFile + ":" + strconv.Itoa(tt.wantLine) + ": invalid TOML: "
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || strings.Contains(msg, "\n") {
				t.Errorf("Load() error = %q, want one line starting %q", msg, prefix)
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	f := newFixture(t)
	// A directory where the file should be cannot be read, whoever runs the test.
	if err := os.MkdirAll(f.paths.ConfigFile, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Load(f.paths, f.env)
	var e *Error
	if !errors.As(err, &e) || e.File != f.paths.ConfigFile || e.Key != "" {
		t.Fatalf("Load() error = %v, want a *config.Error for the file", err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load() error = %v, want it not to look like a missing file", err)
	}
}

func TestValidate(t *testing.T) {
	paths := Paths{ConfigFile: "/c/config.toml", DataDir: "/d", StateDir: "/s", RuntimeDir: "/r"}
	tests := []struct {
		name    string
		edit    func(c *Config)
		wantKey string // "" means valid
		wantMsg string
	}{
		{name: "defaults", edit: func(c *Config) {}},
		{
			name:    "zero subnet",
			edit:    func(c *Config) { c.Network.Subnet = netip.Prefix{} },
			wantKey: "network.subnet",
			wantMsg: `config /c/config.toml: network.subnet = "" is not valid: want an IPv4 CIDR with prefix 16..29, e.g. "172.30.0.0/24"`,
		},
		{
			name:    "empty qemu_bin",
			edit:    func(c *Config) { c.QEMUBin = "" },
			wantKey: "qemu_bin",
			wantMsg: `config /c/config.toml: qemu_bin = "" is not valid: want a command name or an absolute path, e.g. "qemu-system-x86_64"`,
		},
		{
			name:    "empty data dir",
			edit:    func(c *Config) { c.Paths.DataDir = "" },
			wantKey: "data_dir",
			wantMsg: `config /c/config.toml: data_dir = "" is not valid: want "" (the default) or an absolute directory; "~/" is allowed`,
		},
		{
			name:    "relative auth host",
			edit:    func(c *Config) { c.AuthFiles = []AuthFile{{Host: "x", Guest: "/root/x"}} },
			wantKey: "auth_files",
			wantMsg: `config /c/config.toml: auth_files = "x:/root/x" is not valid: want an absolute, clean host path without ":"`,
		},
		{
			name:    "auth host with colon",
			edit:    func(c *Config) { c.AuthFiles = []AuthFile{{Host: "/a:b", Guest: "/root/x"}} },
			wantKey: "auth_files",
			wantMsg: `config /c/config.toml: auth_files = "/a:b:/root/x" is not valid: want an absolute, clean host path without ":"`,
		},
		{
			name:    "auth guest is /root",
			edit:    func(c *Config) { c.AuthFiles = []AuthFile{{Host: "/a", Guest: "/root"}} },
			wantKey: "auth_files",
			wantMsg: `config /c/config.toml: auth_files = "/a:/root" is not valid: want a clean guest path under /root, where the VM's work disk is, e.g. "/root/.claude.json"`,
		},
		{
			name:    "disk not whole MiB",
			edit:    func(c *Config) { c.VM.DiskBytes = 2*GiB + 1 },
			wantKey: "vm.disk",
			wantMsg: `config /c/config.toml: vm.disk = "2147483649B" is not valid: want a size from 1GiB to 4TiB in whole MiB, e.g. "8GiB" (a bare number is bytes)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default(paths, "/home/u")
			tt.edit(c)
			err := c.Validate()
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Validate() = %v, want a *config.Error", err)
			}
			got := struct{ Key, Msg string }{e.Key, err.Error()}
			if diff := cmp.Diff(struct{ Key, Msg string }{tt.wantKey, tt.wantMsg}, got); diff != "" {
				t.Errorf("Validate() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigHelpers(t *testing.T) {
	c := Default(Paths{DataDir: "/d"}, "/home/u")
	got := []string{c.SSHKeyPath(), c.SlogLevel().String()}
	c.SSHKey, c.LogLevel = "/k", "warn"
	got = append(got, c.SSHKeyPath(), c.SlogLevel().String())
	want := []string{"/d/ssh/id_ed25519", "INFO", "/k", "WARN"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("helpers mismatch (-want +got):\n%s", diff)
	}
}

// TestLoadGoodEdges: the values at the edges of each rule that later
// stages accept load, so that Validate refuses no more than they do.
func TestLoadGoodEdges(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		setup func(t *testing.T, f fixture)
		check func(t *testing.T, c *Config)
	}{
		{name: "bridge of 15 bytes", file: "[network]\nbridge = \"br-0123456789ab\""},
		{name: "state_dir as long as the VMs' sockets allow", file: `state_dir = "/` + strings.Repeat("s", 64) + `"`},
		{name: "bridge with a dot and a dash", file: "[network]\nbridge = \"br-test.1\""},
		{name: "bridge with tap in its name", file: "[network]\nbridge = \"tap-pool\""},
		{name: "memory at its bounds", file: "[vm]\nmemory = \"256GiB\""},
		{name: "memory at its lower bound", file: "[vm]\nmemory = \"256MiB\""},
		{name: "disk at its bounds", file: "[vm]\ndisk = \"4TiB\""},
		{name: "disk at its lower bound", file: "[vm]\ndisk = \"1GiB\""},
		{name: "32 vcpus with any hypervisor", file: "[vm]\nvcpus = 32"},
		{name: "32 vcpus with firecracker", file: "hypervisor = \"firecracker\"\n[vm]\nvcpus = 32"},
		{name: "64 vcpus with qemu", file: "hypervisor = \"qemu\"\n[vm]\nvcpus = 64"},
		{name: "vm_user that does not exist yet", file: `vm_user = "banger-vm-test"`},
		{name: "vm_user off", file: `vm_user = ""`},
		{
			name: "auth file with spaces in the guest path",
			file: `auth_files = ["/tmp/tok:/root/My App/tok"]`,
			check: func(t *testing.T, c *Config) {
				want := []AuthFile{{Host: "/tmp/tok", Guest: "/root/My App/tok"}}
				if diff := cmp.Diff(want, c.AuthFiles); diff != "" {
					t.Errorf("auth files (-want +got):\n%s", diff)
				}
			},
		},
		{name: "auth file that is missing (skipped at boot)", file: `auth_files = ["~/.nothing-here"]`},
		{
			name:  "auth file that is a file",
			file:  `auth_files = ["~/.claude.json"]`,
			setup: func(t *testing.T, f fixture) { f.keyFile(t, "../.claude.json", []byte("{}"), 0o600) },
		},
		{
			name: "auth file that is a FIFO (read at boot, not here)",
			file: `auth_files = ["~/.fifo"]`,
			setup: func(t *testing.T, f fixture) {
				os.MkdirAll(f.home, 0o700)
				if err := syscall.Mkfifo(filepath.Join(f.home, ".fifo"), 0o600); err != nil {
					t.Skipf("no FIFO here: %v", err)
				}
			},
		},
		{name: "auth file with spaces in both paths", file: `auth_files = ["~/My App/tok", "/srv/a b/c:/root/d e/\"f\""]`},
		{
			name:  "ssh_key without a .pub",
			file:  `ssh_key = "~/.ssh/id_ed25519"`,
			setup: func(t *testing.T, f fixture) { f.sshKey(t) },
		},
		{
			name: "ssh_key with its .pub",
			file: `ssh_key = "~/.ssh/id_ed25519"`,
			setup: func(t *testing.T, f fixture) {
				b, err := os.ReadFile(f.sshKey(t))
				if err != nil {
					t.Fatal(err)
				}
				k, err := ssh.ParsePrivateKey(b)
				if err != nil {
					t.Fatal(err)
				}
				f.keyFile(t, "id_ed25519.pub", ssh.MarshalAuthorizedKey(k.PublicKey()), 0o644)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.write(t, tt.file+"\n")
			if tt.setup != nil {
				tt.setup(t, f)
			}
			c, err := Load(f.paths, f.env)
			if err != nil {
				t.Fatalf("Load() = %v, want the file accepted", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}
