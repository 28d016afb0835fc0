package config

import (
	"fmt"
	"path/filepath"
)

// EnvHome roots every banger path under one directory. Tests set it to a
// t.TempDir so that nothing touches the real home.
const EnvHome = "BANGER_HOME"

// EnvConfig overrides only the config file path.
const EnvConfig = "BANGER_CONFIG"

// Env looks up an environment variable. Production passes os.LookupEnv; tests
// pass MapEnv. Nothing in this package reads the process environment itself.
type Env func(key string) (string, bool)

// MapEnv returns an Env that answers from m only.
func MapEnv(m map[string]string) Env {
	return func(key string) (string, bool) {
		v, ok := m[key]
		return v, ok
	}
}

// get returns the value of key, treating an empty value as unset.
func (e Env) get(key string) (string, bool) {
	if e == nil {
		return "", false
	}
	v, ok := e(key)
	if !ok || v == "" {
		return "", false
	}
	return v, true
}

// Paths says where banger's files live. Every field is an absolute path.
type Paths struct {
	ConfigFile string `json:"config_file" toml:"-"`
	DataDir    string `json:"data_dir"`    // images, managed ssh key, caches
	StateDir   string `json:"state_dir"`   // database, VM dirs, logs
	RuntimeDir string `json:"runtime_dir"` // API socket, pid file
	// CacheDir holds downloads cached by content (kernel packages,
	// debootstrap trees, npm tarballs); default DataDir/cache. BANGER_CACHE_DIR
	// moves it, so several BANGER_HOMEs (tests) can share one.
	CacheDir string `json:"cache_dir"`
}

// EnvCacheDir overrides Paths.CacheDir.
const EnvCacheDir = "BANGER_CACHE_DIR"

// Cache returns the download cache directory.
func (p Paths) Cache() string {
	if p.CacheDir != "" {
		return p.CacheDir
	}
	return filepath.Join(p.DataDir, "cache")
}

// Socket is the daemon's API socket.
func (p Paths) Socket() string { return filepath.Join(p.RuntimeDir, "bangerd.sock") }

// PIDFile holds the running daemon's pid.
func (p Paths) PIDFile() string { return filepath.Join(p.RuntimeDir, "bangerd.pid") }

// InstanceLock is the lock a daemon holds for its whole life on the state
// directory, where the store lives: one daemon per store, whatever runtime
// directory (socket) each was given. Its holder writes its pid and socket
// into it, so a refused second daemon can name them.
func (p Paths) InstanceLock() string { return filepath.Join(p.StateDir, "bangerd.lock") }

// SocketLock is the lock a daemon holds on its runtime directory, so that
// two daemons never displace each other's socket. Its name differs from
// InstanceLock's so that one directory can serve as both.
func (p Paths) SocketLock() string { return filepath.Join(p.RuntimeDir, "bangerd.sock.lock") }

// StartLock serialises starting the daemon on demand: several banger
// commands finding no daemon at once start one between them.
func (p Paths) StartLock() string { return filepath.Join(p.RuntimeDir, "bangerd.start.lock") }

// VMDir is the directory of the VM with this id: its disks, its boot
// payload and its hypervisor's sockets.
func (p Paths) VMDir(id string) string { return filepath.Join(p.StateDir, "vms", id) }

// LongestVMID is as long as every VM id ("vm-" and 12 hex digits): the
// state directory must leave room for the sockets of a VM directory so
// named.
const LongestVMID = "vm-0123456789ab"

// DBFile is the daemon's SQLite database.
func (p Paths) DBFile() string { return filepath.Join(p.StateDir, "banger.db") }

// LogFile is the daemon's log.
func (p Paths) LogFile() string { return filepath.Join(p.StateDir, "bangerd.log") }

// ManagedSSHKey is the private key banger creates and uses when ssh_key is
// not set.
func (p Paths) ManagedSSHKey() string { return filepath.Join(p.DataDir, "ssh", "id_ed25519") }

// DefaultPaths resolves banger's paths from the environment alone, before the
// config file is read (the file may then move the data, state and runtime
// directories; see Load).
//
// With BANGER_HOME=/r every path is under /r: /r/config/config.toml, /r/data,
// /r/state and /r/run. Otherwise the XDG base directories apply:
// $XDG_CONFIG_HOME/banger/config.toml, $XDG_DATA_HOME/banger,
// $XDG_STATE_HOME/banger and $XDG_RUNTIME_DIR/banger, falling back to
// ~/.config, ~/.local/share and ~/.local/state; a relative XDG value is
// ignored, as the XDG spec says. Root's runtime directory is always
// /run/banger; without XDG_RUNTIME_DIR everyone else's is
// $TMPDIR/banger-UID (TMPDIR defaulting to /tmp). BANGER_CONFIG, when set, replaces the config file path in
// both cases. Empty variables count as unset.
//
// These are names only: a shared directory such as /tmp lets another user
// create banger-UID first (as a symbolic link, or a directory of theirs), so
// whoever creates or uses the runtime and state directories checks them
// (localsock.EnsurePrivateDir) before putting anything there.
func DefaultPaths(env Env, uid int) (Paths, error) {
	var p Paths
	if root, ok := env.get(EnvHome); ok {
		if !filepath.IsAbs(root) {
			return Paths{}, fmt.Errorf("%s=%q is not an absolute path: set it to an absolute directory, e.g. %s=$PWD/%s", EnvHome, root, EnvHome, root)
		}
		root = filepath.Clean(root)
		p = Paths{
			ConfigFile: filepath.Join(root, "config", "config.toml"),
			DataDir:    filepath.Join(root, "data"),
			StateDir:   filepath.Join(root, "state"),
			RuntimeDir: filepath.Join(root, "run"),
		}
	} else {
		x := xdg{env: env}
		if _, ok := env.get(EnvConfig); !ok {
			p.ConfigFile = filepath.Join(x.dir("XDG_CONFIG_HOME", ".config"), "banger", "config.toml")
		}
		p.DataDir = filepath.Join(x.dir("XDG_DATA_HOME", ".local/share"), "banger")
		p.StateDir = filepath.Join(x.dir("XDG_STATE_HOME", ".local/state"), "banger")
		if x.err != nil {
			return Paths{}, x.err
		}
		p.RuntimeDir = runtimeDir(env, uid)
	}
	if dir, ok := env.get(EnvCacheDir); ok {
		if !filepath.IsAbs(dir) {
			return Paths{}, fmt.Errorf("%s=%q is not an absolute path: set it to an absolute directory", EnvCacheDir, dir)
		}
		p.CacheDir = filepath.Clean(dir)
	}
	if file, ok := env.get(EnvConfig); ok {
		if !filepath.IsAbs(file) {
			return Paths{}, fmt.Errorf("%s=%q is not an absolute path: set it to the config file's absolute path, e.g. %s=$PWD/%s", EnvConfig, file, EnvConfig, file)
		}
		p.ConfigFile = filepath.Clean(file)
	}
	return p, nil
}

// xdg resolves XDG base directories, remembering the first failure so that
// DefaultPaths can report it once.
type xdg struct {
	env Env
	err error
}

// dir returns $name when it is absolute, else $HOME/fallback.
func (x *xdg) dir(name, fallback string) string {
	if v, ok := x.env.get(name); ok && filepath.IsAbs(v) {
		return filepath.Clean(v)
	}
	home, ok := x.env.get("HOME")
	switch {
	case !ok:
		if x.err == nil {
			x.err = fmt.Errorf("HOME is not set and %s is not an absolute path: set HOME, or set %s=/some/dir to keep every banger path in one directory", name, EnvHome)
		}
		return ""
	case !filepath.IsAbs(home):
		if x.err == nil {
			x.err = fmt.Errorf("HOME=%q is not an absolute path and %s is not set: set HOME to your home directory, or set %s=/some/dir", home, name, EnvHome)
		}
		return ""
	}
	return filepath.Join(home, fallback)
}

// runtimeDir is /run/banger for root, else $XDG_RUNTIME_DIR/banger, or a
// per-user fallback. Root's is fixed: root's daemon is the system's (the
// systemd unit serves /run/banger), and a root shell reaches it whether it
// came from sudo (no XDG_RUNTIME_DIR) or a login (/run/user/0, which logind
// removes at logout).
func runtimeDir(env Env, uid int) string {
	if uid == 0 {
		return "/run/banger"
	}
	if v, ok := env.get("XDG_RUNTIME_DIR"); ok && filepath.IsAbs(v) {
		return filepath.Join(v, "banger")
	}
	return filepath.Join(tempDir(env), fmt.Sprintf("banger-%d", uid))
}

// tempDir is os.TempDir for Unix, answered from env: $TMPDIR when absolute,
// else /tmp.
func tempDir(env Env) string {
	if v, ok := env.get("TMPDIR"); ok && filepath.IsAbs(v) {
		return filepath.Clean(v)
	}
	return "/tmp"
}
