package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/debkernel"
	"github.com/bangerdev/banger/internal/host/ext4img"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/kernelstage"
	"github.com/bangerdev/banger/internal/host/sshkey"
	"github.com/bangerdev/banger/internal/shared/agentimage"
)

// kernelStager adapts package kernelstage to what the image catalog needs,
// converting its result to the API's KernelInfo at this one boundary.
type kernelStager struct{ agentBin string }

var _ image.KernelStager = kernelStager{}

func (k kernelStager) Stage(ctx context.Context, kernel, modulesDir, config, outDir string) (api.KernelInfo, error) {
	res, err := kernelstage.Stage(ctx, kernelstage.Input{Kernel: kernel, ModulesDir: modulesDir, Config: config, AgentBin: k.agentBin}, outDir)
	if err != nil {
		return api.KernelInfo{}, err
	}
	s := res.Suitability
	return api.KernelInfo{
		Release: res.Release, Compression: res.Compression, Modules: res.Modules, ConfigKnown: s.ConfigKnown,
		Firecracker: s.Firecracker, FirecrackerReason: s.FirecrackerReason, FirecrackerMinVersion: s.FirecrackerMinVersion,
		QEMU: s.QEMU, QEMUReason: s.QEMUReason,
	}, nil
}

func (kernelStager) ExtractVmlinux(bzImage, dst string) (string, error) {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	comp, err := kernelstage.ExtractVmlinux(bzImage, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return comp, err
}

// agentFiles lists banger-agent, its systemd units and their enable links
// as files to write into a root filesystem image.
func agentFiles(agentBin string) ([]ext4img.File, error) {
	bin, err := os.ReadFile(agentBin)
	if err != nil {
		return nil, api.Errorf(api.CodeFailedPrecondition, "reading the banger-agent companion binary: %v: reinstall banger (`make install`)", err)
	}
	files := []ext4img.File{{Path: agentimage.InstallPath, Mode: 0o755, Content: bin}}
	for name, unit := range agentimage.SystemdUnits() {
		files = append(files, ext4img.File{Path: filepath.Join("/etc/systemd/system", name), Mode: 0o644, Content: []byte(unit)})
	}
	for link, target := range agentimage.EnableLinks() {
		files = append(files, ext4img.File{Path: link, Mode: os.ModeSymlink, Target: target})
	}
	// Units before their links, in a stable order.
	sort.SliceStable(files[1:], func(i, j int) bool {
		a, b := files[1+i], files[1+j]
		if (a.Mode&os.ModeSymlink != 0) != (b.Mode&os.ModeSymlink != 0) {
			return b.Mode&os.ModeSymlink != 0
		}
		return a.Path < b.Path
	})
	return files, nil
}

// fetchDebianKernel fetches Debian's cloud kernel (cached by content) for
// image bootstrap.
func fetchDebianKernel(log *slog.Logger) func(ctx context.Context, cacheDir string) (string, string, string, error) {
	return func(ctx context.Context, cacheDir string) (string, string, string, error) {
		k, err := debkernel.Fetch(ctx, cacheDir, debkernel.DefaultPackage, log)
		if err != nil {
			return "", "", "", err
		}
		return k.Vmlinuz, k.ModulesDir, k.Config, nil
	}
}

// publicKey returns the configured SSH key's public half, generating the
// managed key on first need.
func publicKey(cfg *config.Config) func() (string, error) {
	return func() (string, error) {
		k, err := sshkey.Ensure(cfg.SSHKeyPath(), cfg.SSHKey == "")
		if err != nil {
			return "", api.Errorf(api.CodeFailedPrecondition, "ssh key: %v", err)
		}
		return k.PublicKey, nil
	}
}
