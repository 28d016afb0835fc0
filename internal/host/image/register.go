package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/diskclone"
	"github.com/bangerdev/banger/internal/host/ext4img"
)

// KernelStager turns a kernel and its modules into banger's boot set;
// package kernelstage provides it (wired by the daemon).
type KernelStager interface {
	// Stage writes vmlinux, vmlinuz (when the input is compressed) and
	// initrd.img into outDir.
	Stage(ctx context.Context, kernel, modulesDir, config, outDir string) (api.KernelInfo, error)
	// ExtractVmlinux writes the uncompressed ELF of a bzImage to dst.
	ExtractVmlinux(bzImage, dst string) (compression string, err error)
}

// AgentInstaller lists the files that put banger-agent and its services
// into a root filesystem (binary, units, enable links).
type AgentInstaller func(agentBin string) ([]ext4img.File, error)

// MinRootfsSize is the smallest root filesystem register accepts.
const MinRootfsSize = 64 << 20

// ValidateRegister checks a register request without writing anything, so
// the caller can answer bad input at once, before an operation begins.
func (c *Catalog) ValidateRegister(ctx context.Context, req api.RegisterImageRequest) error {
	if err := c.CheckName(ctx, req.Name); err != nil {
		return err
	}
	if _, err := DetectKernel(req.Kernel); err != nil {
		return err
	}
	if req.Initrd != "" {
		if _, err := DetectInitrd(req.Initrd); err != nil {
			return err
		}
	}
	if req.Modules != "" {
		if _, err := CheckModules(req.Modules); err != nil {
			return err
		}
	}
	if req.Initrd == "" && req.Modules == "" {
		return api.FieldErrorf("modules", allowed["modules"],
			"modules is required when there is no initrd: from lib/modules/<release> banger builds an initramfs holding the virtio modules and its agent (or give an initramfs of your own as initrd, used as is)")
	}
	if _, err := CheckExt4("rootfs", req.Rootfs, MinRootfsSize); err != nil {
		return err
	}
	if req.WorkSeed != "" {
		if _, err := CheckExt4("work_seed", req.WorkSeed, 1<<20); err != nil {
			return err
		}
	}
	return nil
}

// Register copies (or, with Link, records) the user's artifacts as a new
// image: the kernel is unpacked to vmlinux where needed, an initramfs is
// built from the modules when none is given, banger-agent and its services
// are installed into the (copied) rootfs, and a work-seed is made from the
// rootfs's /root when none is given.
func (c *Catalog) Register(ctx context.Context, req api.RegisterImageRequest, p Progress) (Image, error) {
	if err := c.ValidateRegister(ctx, req); err != nil {
		return Image{}, err
	}
	state := api.ImageReady
	if req.Link {
		state = api.ImageUnmanaged
	}
	return c.Create(ctx, Spec{Name: req.Name, State: state, Need: RegisterNeed(req), Fill: func(ctx context.Context, st *Staging, m *Manifest) error {
		m.Source = "register"
		p.Stage("kernel")
		format, _ := DetectKernel(req.Kernel)
		if req.Modules != "" && req.Initrd == "" {
			if err := c.StageKernel(ctx, req.Kernel, req.Modules, "", st.Dir, m); err != nil {
				return fmt.Errorf("staging the kernel: %w", err)
			}
			info := m.Kernel
			p.Detail("%s, %d modules in the initramfs", info.Release, len(info.Modules))
		} else {
			if err := c.copyKernel(req.Kernel, format, st, req.Link); err != nil {
				return err
			}
			if req.Link {
				st.External[Initrd] = req.Initrd
			} else if err := copyFile(req.Initrd, st.Path(Initrd)); err != nil {
				return err
			}
			if req.Modules != "" {
				rel, _ := CheckModules(req.Modules)
				m.Kernel.Release = rel
			}
		}
		if req.Modules != "" {
			if req.Link {
				st.External[Modules] = req.Modules
			} else if err := copyTree(ctx, req.Modules, st.Path(Modules)); err != nil {
				return err
			}
		} else if req.Link && format == FormatBzImage {
			st.External[Vmlinuz] = req.Kernel
		}

		p.Stage("rootfs")
		if req.Link {
			st.External[Rootfs] = req.Rootfs
		} else {
			method, err := diskclone.Clone(st.Path(Rootfs), req.Rootfs)
			if err != nil {
				return fmt.Errorf("copying the rootfs: %w", err)
			}
			p.Detail("%s", method)
			p.Stage("agent")
			if err := c.InstallAgent(ctx, st.Path(Rootfs)); err != nil {
				return err
			}
		}

		p.Stage("work-seed")
		switch {
		case req.WorkSeed != "" && req.Link:
			st.External[WorkSeed] = req.WorkSeed
		case req.WorkSeed != "":
			if _, err := diskclone.Clone(st.Path(WorkSeed), req.WorkSeed); err != nil {
				return fmt.Errorf("copying the work-seed: %w", err)
			}
		case req.Link:
			p.Detail("none (promote makes one)")
		default:
			if err := c.MakeWorkSeed(ctx, st.Path(Rootfs), st.Path(WorkSeed)); err != nil {
				return err
			}
			p.Detail("made from the rootfs's /root")
		}
		return nil
	}}, p)
}

// copyKernel records the kernel: an ELF becomes vmlinux; a bzImage is kept
// as vmlinuz and unpacked to vmlinux.
func (c *Catalog) copyKernel(kernel string, format KernelFormat, st *Staging, link bool) error {
	if format == FormatELF {
		if link {
			st.External[Vmlinux] = kernel
			return nil
		}
		return copyFile(kernel, st.Path(Vmlinux))
	}
	if !link {
		if err := copyFile(kernel, st.Path(Vmlinuz)); err != nil {
			return err
		}
	}
	if _, err := c.Kernels.ExtractVmlinux(kernel, st.Path(Vmlinux)); err != nil {
		return fmt.Errorf("unpacking vmlinux from %s: %w", kernel, err)
	}
	return nil
}

// InstallAgent writes this daemon's banger-agent and its systemd units
// into a rootfs image (an image's, or a stopped VM's root disk), without
// mounting it.
func (c *Catalog) InstallAgent(ctx context.Context, rootfs string) error {
	files, err := c.AgentFiles(c.AgentBin)
	if err != nil {
		return err
	}
	if err := c.Tools.WriteFiles(ctx, rootfs, files); err != nil {
		return fmt.Errorf("installing banger-agent into the rootfs: %w", err)
	}
	return nil
}

// MakeWorkSeed builds the work-seed (an ext4 image of the guest's /root)
// from the rootfs's /root, without mounting anything: debugfs copies the
// tree out, mkfs.ext4 -d packs it. The seed is small; VM create grows each
// clone to the VM's disk size.
func (c *Catalog) MakeWorkSeed(ctx context.Context, rootfs, dst string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ok, err := c.Tools.Exists(ctx, rootfs, "/root")
	if err != nil {
		return err
	}
	src := filepath.Join(tmp, "root")
	if ok {
		if err := c.Tools.DumpDir(ctx, rootfs, "/root", tmp); err != nil {
			return fmt.Errorf("reading /root from the rootfs: %w", err)
		}
	} else if err := os.Mkdir(src, 0o700); err != nil {
		return err
	}
	_, used, err := Digest(src)
	if err != nil {
		return err
	}
	size := roundMiB(max(64<<20, used*2+32<<20))
	return c.Tools.MakeFromDir(ctx, dst, src, WorkSeedLabel, size)
}

// WorkSeedLabel is the ext4 label of every work disk.
const WorkSeedLabel = "banger-work"

func roundMiB(n int64) int64 { return (n + (1<<20 - 1)) &^ (1<<20 - 1) }

func copyFile(src, dst string) error {
	if _, err := diskclone.Clone(dst, src); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return nil
}

// copyTree copies a directory tree with cp -a (owners, modes, links).
func copyTree(ctx context.Context, src, dst string) error {
	out, err := exec.CommandContext(ctx, "cp", "-a", "--", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copying %s: %v: %s", src, err, out)
	}
	return nil
}
