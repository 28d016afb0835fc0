package agent

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/bangerdev/banger/internal/bootpayload"
)

// appliedMark, in the staged payload's directory, says this boot's files
// are in place: an agent that restarts does not write them again over
// what the guest changed since.
const appliedMark = ".applied"

// loadBoot reads this boot's payload from dir (bootpayload.StageDir, put
// there by the init from the host's boot archive), applies its files and
// SSH keys under home once per boot, and returns the agent key. Without a
// payload there is no key, and the agent serves no host (the channel
// refuses every request and says why).
func loadBoot(dir, home string, log *slog.Logger) []byte {
	p, err := bootpayload.Load(dir)
	if err != nil {
		log.Error("no boot payload from the host: the agent channel refuses every request until the VM is restarted by bangerd", "dir", dir, "err", err)
		return nil
	}
	mark := filepath.Join(dir, appliedMark)
	if _, err := os.Stat(mark); errors.Is(err, os.ErrNotExist) {
		if err := bootpayload.Apply(p, home); err != nil {
			log.Error("applying the boot payload", "err", err)
		} else {
			log.Info("boot payload applied", "files", len(p.Files), "authorized_keys", len(p.AuthorizedKeys))
		}
		if err := os.WriteFile(mark, nil, 0o600); err != nil {
			log.Error("marking the boot payload applied", "err", err)
		}
	}
	return p.Key
}
