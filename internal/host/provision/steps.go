package provision

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Step is one provisioning step of an image build. Steps are values: the
// build is a list of them, Describe turns the list into the lines the image
// manifest records, and each Apply is idempotent, so a build interrupted
// half way can be run again from the start.
type Step interface {
	// Name says what the step does, with its arguments, in one line.
	Name() string
	// Apply performs the step in c, sending progress lines to log.
	Apply(ctx context.Context, c *Chroot, log func(string)) error
}

// Describe returns the Name of each step, in order, for the image manifest.
func Describe(steps []Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name()
	}
	return out
}

// Apply runs steps in order in c, logging each step's start and duration;
// the first failure stops the build and names the step.
func Apply(ctx context.Context, c *Chroot, steps []Step, log func(string)) error {
	log = orNop(log)
	for i, s := range steps {
		start := time.Now()
		log(fmt.Sprintf("step %d/%d: %s", i+1, len(steps), s.Name()))
		if err := s.Apply(ctx, c, log); err != nil {
			return fmt.Errorf("step %d/%d (%s): %w", i+1, len(steps), s.Name(), err)
		}
		log(fmt.Sprintf("step %d/%d done in %s", i+1, len(steps), time.Since(start).Round(time.Millisecond)))
	}
	return nil
}

// Packages installs Debian packages with apt-get (no recommends), then
// empties apt's caches so they do not end up in the image.
type Packages struct {
	Names []string // package names, optionally name=version or name:arch
}

func (p Packages) Name() string { return "packages " + strings.Join(p.Names, " ") }

func (p Packages) Apply(ctx context.Context, c *Chroot, log func(string)) error {
	if len(p.Names) == 0 {
		return nil
	}
	for _, n := range p.Names {
		if err := validAptSpec(n); err != nil {
			return err
		}
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	defer cleanApt(c.Root)
	if err := c.Stream(ctx, env, log, "apt-get", "update", "-q", "-o", "Acquire::Retries=3"); err != nil {
		return fmt.Errorf("%w\ncheck network access to the mirrors in the image's /etc/apt/sources.list", err)
	}
	args := []string{"apt-get", "install", "-y", "-q", "--no-install-recommends",
		"-o", "Acquire::Retries=3",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}
	if err := c.Stream(ctx, env, log, append(args, p.Names...)...); err != nil {
		var re *RunError
		if errors.As(err, &re) && strings.Contains(re.Output, "Unable to locate package") {
			return fmt.Errorf("%w\na package name is wrong: check it with `apt-cache search` on a Debian machine", err)
		}
		return err
	}
	if err := c.Stream(ctx, env, log, "apt-get", "clean"); err != nil {
		return err
	}
	return cleanApt(c.Root)
}

// Script copies a host shell script into the image and runs it there with
// /bin/sh as root, streaming its output. The copy is removed afterwards.
// Scripts should be idempotent like every step.
type Script struct {
	Path string // host path of the script
}

func (s Script) Name() string { return "script " + s.Path }

func (s Script) Apply(ctx context.Context, c *Chroot, log func(string)) error {
	body, err := os.ReadFile(s.Path)
	if err != nil {
		return fmt.Errorf("reading script: %w: give the path of a readable shell script", err)
	}
	sum := sha256.Sum256(body)
	guest := "/tmp/banger-script-" + hex.EncodeToString(sum[:6]) + ".sh"
	if err := c.WriteFile(guest, body, 0o700); err != nil {
		return err
	}
	defer func() {
		if p, err := resolveParentInRoot(c.Root, guest); err == nil {
			os.Remove(p)
		}
	}()
	log(fmt.Sprintf("running %s (sha256 %s) in the image", s.Path, hex.EncodeToString(sum[:])))
	if err := c.Stream(ctx, nil, log, "/bin/sh", guest); err != nil {
		return fmt.Errorf("script %s failed: %w: fix the script and build again", s.Path, err)
	}
	return nil
}

// WriteFile writes a file into the image, creating its directories.
type WriteFile struct {
	Path    string      // absolute path inside the image
	Mode    fs.FileMode // 0644 when zero
	Content []byte
}

func (w WriteFile) Name() string {
	sum := sha256.Sum256(w.Content)
	return fmt.Sprintf("write-file %s (mode %04o, %d bytes, sha256 %s)", w.Path, w.mode(), len(w.Content), hex.EncodeToString(sum[:8]))
}

func (w WriteFile) mode() fs.FileMode {
	if w.Mode == 0 {
		return 0o644
	}
	return w.Mode
}

func (w WriteFile) Apply(ctx context.Context, c *Chroot, log func(string)) error {
	if !path.IsAbs(w.Path) {
		return fmt.Errorf("write-file %q: give an absolute path inside the image", w.Path)
	}
	return c.WriteFile(w.Path, w.Content, w.mode())
}

// Service writes a systemd unit to /etc/systemd/system and, with Enable,
// enables it as systemctl enable would (symbolic links in the .wants and
// .requires directories its [Install] section names), without running
// systemctl. Without Enable, links left by an earlier enable are removed.
// (The unit's name is UnitName, not Name: Name is the Step method.)
type Service struct {
	UnitName string // e.g. "opencode.service"; ".service" is added when it has no unit suffix
	Unit     string // the unit file's content
	Enable   bool
}

func (s Service) Name() string {
	state := "disabled"
	if s.Enable {
		state = "enabled"
	}
	sum := sha256.Sum256([]byte(s.Unit))
	return fmt.Sprintf("service %s (%s, sha256 %s)", s.unitName(), state, hex.EncodeToString(sum[:8]))
}

func (s Service) Apply(ctx context.Context, c *Chroot, log func(string)) error {
	return s.install(c.Root)
}

var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+\.(service|socket|timer|path|target|mount|automount|slice)$`)

func (s Service) unitName() string {
	n := strings.TrimSpace(s.UnitName)
	if !unitNameRE.MatchString(n) {
		n += ".service"
	}
	return n
}

// install writes and enables (or disables) the unit in the tree at root.
func (s Service) install(root string) error {
	name := s.unitName()
	if !unitNameRE.MatchString(name) || strings.Contains(name, "/") {
		return fmt.Errorf("service name %q: use letters, digits and : _ . @ - (e.g. opencode.service)", s.UnitName)
	}
	c := &Chroot{Root: root}
	unitPath := "/etc/systemd/system/" + name
	if err := c.WriteFile(unitPath, []byte(s.Unit), 0o644); err != nil {
		return err
	}
	wanted, required := installTargets(s.Unit)
	if s.Enable && len(wanted)+len(required) == 0 {
		return fmt.Errorf("service %s cannot be enabled: its unit has no [Install] WantedBy= or RequiredBy=: add e.g. WantedBy=multi-user.target", name)
	}
	links := map[string]bool{}
	for _, t := range wanted {
		links["/etc/systemd/system/"+t+".wants/"+name] = true
	}
	for _, t := range required {
		links["/etc/systemd/system/"+t+".requires/"+name] = true
	}
	for link := range links {
		host, err := resolveParentInRoot(root, link)
		if err != nil {
			return err
		}
		if err := os.Remove(host); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if !s.Enable {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(unitPath, host); err != nil {
			return fmt.Errorf("enabling %s: %w", name, err)
		}
	}
	return nil
}

// installTargets reads WantedBy= and RequiredBy= from a unit's [Install]
// section.
func installTargets(unit string) (wanted, required []string) {
	section := ""
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		if section != "Install" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "WantedBy":
			wanted = append(wanted, strings.Fields(v)...)
		case "RequiredBy":
			required = append(required, strings.Fields(v)...)
		}
	}
	return wanted, required
}
