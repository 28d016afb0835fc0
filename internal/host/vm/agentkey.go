package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bangerdev/banger/internal/host/crashpoint"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/shared/atomicfile"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
)

// The boot payload (internal/shared/bootpayload) is how the daemon hands a guest
// its agent key, the user's credential files and the SSH key: host →
// guest only, through a per-boot initramfs in the VM's 0700 directory. The
// daemon never reads the guest's disks to do it.

// agentKeyFile is where a VM's agent key lives, in its 0700 directory.
func agentKeyFile(dir string) string { return filepath.Join(dir, "agent.key") }

// bootInitrd is the VM's per-boot initramfs: the image's plus the payload.
func bootInitrd(dir string) string { return filepath.Join(dir, "initrd.img") }

// agentKey reads the key the VM's agent was booted with. Only the daemon's
// owner can read it; the guest received it in its boot payload.
func agentKey(dir string) ([]byte, error) {
	b, err := os.ReadFile(agentKeyFile(dir))
	if err != nil {
		return nil, fmt.Errorf("reading the VM's agent key: %w (restart the VM with `banger vm restart` to give it a new one)", err)
	}
	if len(b) != bootpayload.KeySize {
		return nil, fmt.Errorf("the VM's agent key %s is %d bytes, want %d: restart the VM with `banger vm restart`", agentKeyFile(dir), len(b), bootpayload.KeySize)
	}
	return b, nil
}

// writeBootPayload gives this boot a fresh agent key and writes the VM's
// initramfs: the image's, with the daemon's agent as /init, the key, the
// configured credential files (missing ones are skipped with a notice)
// and the configured SSH public key. It returns the initramfs's path and
// the payload (a restored VM gets it through the agent: see identity.go).
func (m *Manager) writeBootPayload(ctx context.Context, dir string, img image.Image, p Progress) (string, bootpayload.Payload, error) {
	key, err := bootpayload.NewKey()
	if err != nil {
		return "", bootpayload.Payload{}, err
	}
	payload := bootpayload.Payload{Key: key}
	var missing []string
	for _, a := range m.Cfg.AuthFiles {
		if err := a.CheckHost(); err != nil {
			return "", payload, fmt.Errorf("auth file %s: %w: fix auth_files in the config (see `banger config validate`)", a.Host, err)
		}
		b, err := os.ReadFile(a.Host)
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, a.Host)
			continue
		}
		if err != nil {
			return "", payload, fmt.Errorf("reading auth file %s: %w", a.Host, err)
		}
		payload.Files = append(payload.Files, bootpayload.File{Path: a.Guest, Mode: 0o600, Data: b})
	}
	for _, f := range missing {
		p.Logf("skipping %s: not on this host", f)
	}
	// The configured SSH key is authorized on every start, so any image
	// (registered ones too) takes `banger vm ssh`, and a changed ssh_key
	// applies at the next start.
	if m.PublicKey != nil {
		k, err := m.PublicKey()
		if err != nil {
			return "", payload, err
		}
		payload.AuthorizedKeys = []string{strings.TrimSpace(k)}
	}
	// The image's initramfs has the daemon's agent as /init when banger
	// staged it with this agent; otherwise the payload brings it.
	agentBin := m.Images.AgentBin
	if build, err := m.Images.AgentBuild(ctx); err == nil && build == img.Manifest.InitrdAgent {
		agentBin = ""
	}
	initrd := bootInitrd(dir)
	if err := bootpayload.WriteInitrd(initrd, img.Path(image.Initrd), agentBin, payload); err != nil {
		return "", payload, fmt.Errorf("writing the boot payload: %w", err)
	}
	crashpoint.Here(ctx)
	if err := atomicfile.Write(agentKeyFile(dir), key, 0o600, 0); err != nil {
		return "", payload, fmt.Errorf("writing the agent key: %w", err)
	}
	p.Detail("%d written, %d missing", len(payload.Files), len(missing))
	return initrd, payload, nil
}
