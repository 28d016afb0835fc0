package imagebuild

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/names"
	"github.com/bangerdev/banger/internal/host/provision"
)

// Builder makes images into a catalog.
type Builder struct {
	Catalog *image.Catalog
	// CacheDir holds downloads cached by content (debootstrap trees,
	// kernel packages, npm tarballs).
	CacheDir string
	// PublicKey returns the SSH public key baked into new images
	// (authorized_keys line); it may create the managed key.
	PublicKey func() (string, error)
	// FetchKernel returns a Debian kernel package unpacked: the bzImage, its
	// modules tree and config.
	FetchKernel func(ctx context.Context, cacheDir string) (vmlinuz, modules, config string, err error)
	Log         *slog.Logger
}

// requireRoot explains why image building needs root.
func requireRoot(what string) error {
	if os.Geteuid() != 0 {
		return api.Errorf(api.CodeFailedPrecondition,
			"%s needs root (debootstrap, chroot and loop mounts): run bangerd as root, e.g. `sudo banger daemon restart`, or register an image you built elsewhere with `banger image register`", what)
	}
	return nil
}

// AllowedSuite is what a bootstrap request's suite accepts
// (api.Error.Allowed).
const AllowedSuite = "a Debian suite name, e.g. bookworm or trixie"

// ValidateBootstrap checks a bootstrap request before an operation starts
// and fills in defaults.
func (b *Builder) ValidateBootstrap(ctx context.Context, req *api.BootstrapImageRequest) error {
	if req.Distro != "debian" {
		return api.FieldErrorf("distro", "debian", "distro %q cannot be bootstrapped: banger bootstraps debian (register other distros with `banger image register`)", req.Distro)
	}
	if req.Suite == "" {
		req.Suite = "bookworm"
	}
	if err := names.Validate(req.Suite); err != nil {
		return api.FieldErrorf("suite", AllowedSuite, "suite %q is not a Debian suite name: use e.g. bookworm", req.Suite)
	}
	if req.Name == "" {
		req.Name = "debian-" + req.Suite
	}
	if err := b.Catalog.CheckName(ctx, req.Name); err != nil {
		return err
	}
	if err := requireRoot("image bootstrap"); err != nil {
		return err
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return api.Errorf(api.CodeFailedPrecondition, "debootstrap is not installed: apt-get install debootstrap")
	}
	return nil
}

// Bootstrap builds a Debian base image from nothing.
func (b *Builder) Bootstrap(ctx context.Context, req api.BootstrapImageRequest, p image.Progress) (image.Image, error) {
	if err := b.ValidateBootstrap(ctx, &req); err != nil {
		return image.Image{}, err
	}
	m := provision.DebianBase(req.Suite)
	if req.Mirror != "" {
		m.Mirror = req.Mirror
	}
	return b.Catalog.Create(ctx, image.Spec{Name: req.Name, Fill: func(ctx context.Context, st *image.Staging, man *image.Manifest) error {
		root := filepath.Join(st.Dir, ".rootfs")
		if err := os.Mkdir(root, 0o755); err != nil {
			return err
		}
		defer os.RemoveAll(root)
		man.Distro, man.Suite, man.Libc = "debian", req.Suite, "glibc"
		man.Source = fmt.Sprintf("bootstrap debian %s", req.Suite)

		p.Stage("debootstrap")
		if err := provision.Debootstrap(ctx, m, root, filepath.Join(b.CacheDir, "debootstrap"), func(s string) { p.Logf("%s", s) }); err != nil {
			return err
		}
		man.Provisioning = append(man.Provisioning,
			fmt.Sprintf("debootstrap %s %s (%s) %s", m.Suite, m.Variant, m.Digest()[:12], strings.Join(m.Packages, " ")))

		p.Stage("kernel")
		vmlinuz, modules, config, err := b.FetchKernel(ctx, filepath.Join(b.CacheDir, "kernels"))
		if err != nil {
			return fmt.Errorf("fetching the kernel: %w", err)
		}
		if err := b.Catalog.StageKernel(ctx, vmlinuz, modules, config, st.Dir, man); err != nil {
			return fmt.Errorf("staging the kernel: %w", err)
		}
		info := man.Kernel
		p.Detail("%s, %s, %d modules in the initramfs", info.Release, info.Compression, len(info.Modules))
		if err := copyTree(ctx, modules, st.Path(image.Modules)); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(root, "lib", "modules"), 0o755); err != nil {
			return err
		}
		if err := copyTree(ctx, modules, filepath.Join(root, "lib", "modules", info.Release)); err != nil {
			return err
		}
		man.Provisioning = append(man.Provisioning, "kernel "+info.Release)

		p.Stage("agent")
		files, err := b.Catalog.AgentFiles(b.Catalog.AgentBin)
		if err != nil {
			return err
		}
		if err := writeTree(root, files); err != nil {
			return fmt.Errorf("installing banger-agent: %w", err)
		}

		p.Stage("ssh access")
		pub, err := b.PublicKey()
		if err != nil {
			return err
		}
		if err := authorizeKey(root, pub); err != nil {
			return err
		}
		if err := newHostKeys(root); err != nil {
			return err
		}
		p.Detail("%s", keyComment(pub))

		p.Stage("guest config")
		if err := writeTree(root, guestFiles("banger")); err != nil {
			return err
		}

		p.Stage("rootfs image")
		used, err := duBytes(root)
		if err != nil {
			return err
		}
		size := roundGiB(max(2<<30, used*3/2+(512<<20)))
		if err := b.Catalog.Tools.MakeFromDir(ctx, st.Path(image.Rootfs), root, "banger-root", size); err != nil {
			return err
		}
		p.Detail("%s used of %s", human(used), human(size))

		p.Stage("work-seed")
		seedUsed, err := duBytes(filepath.Join(root, "root"))
		if err != nil {
			return err
		}
		seed := roundMiB(max(64<<20, seedUsed*2+(32<<20)))
		return b.Catalog.Tools.MakeFromDir(ctx, st.Path(image.WorkSeed), filepath.Join(root, "root"), image.WorkSeedLabel, seed)
	}}, p)
}

func keyComment(pub string) string {
	f := strings.Fields(pub)
	if len(f) >= 2 {
		return f[0] + " " + f[1][:min(12, len(f[1]))] + "…"
	}
	return "key"
}

// duBytes is the apparent size of a tree's regular files.
func duBytes(root string) (int64, error) {
	var n int64
	err := filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

func roundMiB(n int64) int64 { return (n + (1<<20 - 1)) &^ (1<<20 - 1) }
func roundGiB(n int64) int64 { return (n + (1<<30 - 1)) &^ (1<<30 - 1) }

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	default:
		return fmt.Sprintf("%dMiB", n>>20)
	}
}

func copyTree(ctx context.Context, src, dst string) error {
	out, err := exec.CommandContext(ctx, "cp", "-a", "--", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copying %s: %v: %s", src, err, out)
	}
	return nil
}
