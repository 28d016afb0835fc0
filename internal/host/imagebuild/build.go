package imagebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/diskclone"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/provision"
)

// Presets by name. Each returns its step and what it adds to the manifest.
var presets = map[string]func(b *Builder) (provision.Step, []api.Probe, []api.Service){
	"agents": func(b *Builder) (provision.Step, []api.Probe, []api.Service) {
		preset := provision.AgentsPreset{CacheDir: filepath.Join(b.CacheDir, "npm")}
		var probes []api.Probe
		var services []api.Service
		for _, p := range preset.Probes() {
			probes = append(probes, api.Probe{Name: p.Name, Kind: p.Kind, Port: p.Port})
			services = append(services, api.Service{Name: p.Name, Port: p.Port})
		}
		return preset, probes, services
	},
}

// PresetNames lists the known presets.
func PresetNames() []string {
	var out []string
	for n := range presets {
		out = append(out, n)
	}
	return out
}

// maxScript bounds a provisioning script sent over the API.
const maxScript = 1 << 20

// What a build request's checked fields accept (api.Error.Allowed).
const (
	AllowedFrom     = "the name or id of a ready image"
	AllowedPackages = "Debian package names (optionally :arch and =version)"
	AllowedScript   = "a shell script of up to 1MiB"
)

// ValidateBuild checks a build request before an operation starts: first
// what the request alone shows (presets, packages, script), then what
// needs the catalog (the parent, the new name).
func (b *Builder) ValidateBuild(ctx context.Context, req api.BuildImageRequest) (image.Image, error) {
	for _, p := range req.Presets {
		if _, ok := presets[p]; !ok {
			names := strings.Join(PresetNames(), ", ")
			return image.Image{}, api.FieldErrorf("presets", names, "presets: %q is unknown: use %s", p, names)
		}
	}
	// The check Packages.Apply makes, so a name apt-get would refuse
	// (or read as an option) is refused now, not minutes into the build.
	for _, pkg := range req.Packages {
		if err := provision.ValidPackage(pkg); err != nil {
			return image.Image{}, api.FieldErrorf("packages", AllowedPackages, "packages: %v", err)
		}
	}
	if len(req.Script) > maxScript {
		return image.Image{}, api.FieldErrorf("script", AllowedScript, "script is %d bytes; the limit is %d", len(req.Script), maxScript)
	}
	if len(req.Presets) == 0 && len(req.Packages) == 0 && req.Script == "" {
		// Three fields, none at fault alone: no Field.
		return image.Image{}, api.Errorf(api.CodeInvalidArgument, "nothing to build: give presets, packages or a script")
	}
	if req.From == "" {
		return image.Image{}, api.FieldErrorf("from", AllowedFrom, "from is required: give the image to build on (see `banger image list`)")
	}
	parent, err := b.Catalog.Get(ctx, req.From)
	if errors.Is(err, api.ErrNotFound) {
		return parent, &api.Error{Code: api.CodeNotFound, Field: "from", Allowed: AllowedFrom,
			Message: fmt.Sprintf("from %q is not an image: see `banger image list`", req.From)}
	}
	if err != nil {
		return parent, err
	}
	if parent.State != api.ImageReady {
		return parent, &api.Error{Code: api.CodeFailedPrecondition, Field: "from", Allowed: AllowedFrom,
			Message: fmt.Sprintf("from %s is %s: run `banger image promote %s` first", parent.Name, parent.State, parent.Name)}
	}
	for _, p := range req.Presets {
		if p == "agents" && parent.Manifest.Libc == "musl" {
			return parent, &api.Error{Code: api.CodeFailedPrecondition, Field: "presets",
				Message: fmt.Sprintf("presets: agents needs a glibc image; %s is musl", parent.Name)}
		}
	}
	if err := b.Catalog.CheckName(ctx, req.Name); err != nil {
		return parent, err
	}
	return parent, requireRoot("image build")
}

// scriptStep runs a script sent over the API; its manifest line names the
// script and its digest, not a temporary path.
type scriptStep struct {
	name, body, dir string
}

func (s scriptStep) Name() string {
	sum := sha256.Sum256([]byte(s.body))
	return fmt.Sprintf("script %s (sha256 %s)", s.name, hex.EncodeToString(sum[:8]))
}

func (s scriptStep) Apply(ctx context.Context, c *provision.Chroot, log func(string)) error {
	path := filepath.Join(s.dir, "script.sh")
	if err := os.WriteFile(path, []byte(s.body), 0o700); err != nil {
		return err
	}
	defer os.Remove(path)
	return provision.Script{Path: path}.Apply(ctx, c, log)
}

// Build derives a new image from a registered one.
func (b *Builder) Build(ctx context.Context, req api.BuildImageRequest, p image.Progress) (image.Image, error) {
	parent, err := b.ValidateBuild(ctx, req)
	if err != nil {
		return image.Image{}, err
	}
	var steps []provision.Step
	var probes []api.Probe
	var services []api.Service
	if len(req.Packages) > 0 {
		steps = append(steps, provision.Packages{Names: req.Packages})
	}
	for _, name := range req.Presets {
		step, pr, sv := presets[name](b)
		steps = append(steps, step)
		probes, services = append(probes, pr...), append(services, sv...)
	}
	extra := int64(1 << 30)
	for _, n := range req.Presets {
		if n == "agents" {
			extra = 4 << 30
		}
	}

	// The rootfs is grown (sparsely) by extra and filled in the chroot:
	// like a VM's disks, it is checked at its full size (Spec.Need), so
	// a build is refused before it starts rather than the loop-mounted
	// rootfs meeting a full disk half way through a package install.
	var need int64
	if fi, err := os.Stat(parent.Path(image.Rootfs)); err == nil {
		need = roundGiB(fi.Size() + extra)
	}

	return b.Catalog.Create(ctx, image.Spec{Name: req.Name, ParentID: parent.ID, Need: need, Fill: func(ctx context.Context, st *image.Staging, man *image.Manifest) error {
		if req.Script != "" {
			name := req.ScriptName
			if name == "" {
				name = "script"
			}
			steps = append(steps, scriptStep{name: name, body: req.Script, dir: st.Dir})
		}
		*man = parent.Manifest
		// A new image: its own agent version (Create fills it), never healed.
		man.AgentVersion, man.HealedAt = "", time.Time{}
		man.Source = "build from " + parent.Name
		man.Provisioning = append(append([]string{}, parent.Manifest.Provisioning...), provision.Describe(steps)...)
		man.Probes = append(append([]api.Probe{}, parent.Manifest.Probes...), probes...)
		man.Services = append(append([]api.Service{}, parent.Manifest.Services...), services...)

		p.Stage("copy rootfs")
		rootfs := st.Path(image.Rootfs)
		method, err := diskclone.Clone(rootfs, parent.Path(image.Rootfs))
		if err != nil {
			return err
		}
		fi, err := os.Stat(rootfs)
		if err != nil {
			return err
		}
		if err := b.Catalog.Tools.Grow(ctx, rootfs, roundGiB(fi.Size()+extra)); err != nil {
			return fmt.Errorf("growing the rootfs: %w", err)
		}
		p.Detail("%s, grown to %s", method, human(roundGiB(fi.Size()+extra)))

		mnt := filepath.Join(st.Dir, ".mnt")
		if err := os.Mkdir(mnt, 0o755); err != nil {
			return err
		}
		unmount, err := mountLoop(ctx, rootfs, mnt)
		if err != nil {
			return err
		}
		mounted := true
		defer func() {
			if mounted {
				unmount()
			}
		}()
		chroot, err := provision.OpenChroot(mnt, func(s string) { p.Logf("%s", s) })
		if err != nil {
			return err
		}
		chroot.Hostname = req.Name
		for _, step := range steps {
			p.Stage(stageName(step))
			if err := step.Apply(ctx, chroot, func(s string) { p.Logf("%s", s) }); err != nil {
				chroot.Close()
				return fmt.Errorf("%s: %w", step.Name(), err)
			}
		}
		if err := chroot.Close(); err != nil {
			return fmt.Errorf("leaving the chroot: %w", err)
		}

		p.Stage("agent")
		files, err := b.Catalog.AgentFiles(b.Catalog.AgentBin)
		if err != nil {
			return err
		}
		if err := writeTree(mnt, files); err != nil {
			return err
		}
		mounted = false
		if err := unmount(); err != nil {
			return err
		}
		os.Remove(mnt)

		p.Stage("work-seed")
		if err := b.Catalog.MakeWorkSeed(ctx, rootfs, st.Path(image.WorkSeed)); err != nil {
			return err
		}

		p.Stage("kernel")
		for _, k := range []image.Kind{image.Vmlinux, image.Vmlinuz, image.Initrd, image.Modules} {
			if !parent.Has(k) {
				continue
			}
			if err := linkArtifact(ctx, parent.Path(k), st.Path(k)); err != nil {
				return err
			}
		}
		p.Detail("shared with %s", parent.Name)
		return nil
	}}, p)
}

func stageName(s provision.Step) string {
	name := s.Name()
	switch {
	case strings.HasPrefix(name, "agents preset"):
		return "preset agents"
	case strings.HasPrefix(name, "packages "):
		return "packages"
	case strings.HasPrefix(name, "script "):
		return "script"
	}
	if len(name) > 30 {
		name = name[:30]
	}
	return name
}

// linkArtifact shares an immutable artifact with the parent image: a hard
// link (or, across filesystems, a copy); trees are copied with hard links.
func linkArtifact(ctx context.Context, src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		out, err := exec.CommandContext(ctx, "cp", "-al", "--", src, dst).CombinedOutput()
		if err != nil {
			return fmt.Errorf("linking %s: %v: %s", src, err, out)
		}
		return nil
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	_, err = diskclone.Clone(dst, src)
	return err
}

// mountLoop mounts an ext4 image file on dir through a loop device and
// returns the function that unmounts it (lazily if busy; the loop device
// goes with the last unmount).
func mountLoop(ctx context.Context, file, dir string) (func() error, error) {
	out, err := exec.CommandContext(ctx, "mount", "-o", "loop,noatime", "-t", "ext4", file, dir).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mounting %s: %v: %s", file, err, strings.TrimSpace(string(out)))
	}
	return func() error {
		out, err := exec.Command("umount", dir).CombinedOutput()
		if err == nil {
			return nil
		}
		if out2, err2 := exec.Command("umount", "-l", dir).CombinedOutput(); err2 != nil {
			return errors.Join(fmt.Errorf("unmounting %s: %s", dir, out), fmt.Errorf("%s", out2))
		}
		return nil
	}, nil
}
