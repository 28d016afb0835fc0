package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/guest/growfs"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
	"github.com/bangerdev/banger/internal/shared/poll"
)

// appliedMark, in the staged payload's directory, says this boot's files
// are in place: an agent that restarts does not write them again over
// what the guest changed since.
const appliedMark = ".applied"

// Payload states the agent reports in Health.Payload.
const (
	payloadPending = "pending"
	payloadApplied = "applied"
	payloadNone    = "none"
)

// bootState is this boot's payload as the agent holds it: the key that
// authenticates the host, and how applying the files went.
type bootState struct {
	mu     sync.Mutex
	status string
}

func (b *bootState) set(s string) {
	b.mu.Lock()
	b.status = s
	b.mu.Unlock()
}

// Status is what Health reports: pending, applied, none, or the failure.
func (b *bootState) Status() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// loadBoot reads this boot's payload from dir (bootpayload.StageDir, put
// there by the init from the host's boot archive) and returns the agent
// key. It applies the payload's files and SSH keys under home once per
// boot, in the background: home is the VM's work disk, which systemd
// mounts on its own schedule (nofail), so applying waits until home is a
// mount point, at most mountWait. Without a payload there is no key, and
// the agent serves no host (the channel refuses every request and says
// why).
func loadBoot(dir, home string, mountWait time.Duration, log *slog.Logger) ([]byte, *bootState) {
	st := &bootState{status: payloadNone}
	p, err := bootpayload.Load(dir)
	if err != nil {
		log.Error("no boot payload from the host: the agent channel refuses every request until bangerd restarts the VM", "dir", dir, "err", err)
		return nil, st
	}
	mark := filepath.Join(dir, appliedMark)
	if _, err := os.Stat(mark); err == nil {
		st.set(payloadApplied)
		return p.Key, st
	}
	st.set(payloadPending)
	go func() {
		if waitMountPoint(home, mountWait) {
			growHome(home, log)
		} else {
			log.Warn("applying the boot payload although its target is not a mount point yet", "home", home, "waited", mountWait)
		}
		if err := bootpayload.Apply(p, home); err != nil {
			log.Error("applying the boot payload", "err", err)
			st.set("failed: " + err.Error())
			return
		}
		if err := os.WriteFile(mark, nil, 0o600); err != nil {
			log.Error("marking the boot payload applied", "err", err)
		}
		log.Info("boot payload applied", "files", len(p.Files), "authorized_keys", len(p.AuthorizedKeys))
		st.set(payloadApplied)
	}()
	return p.Key, st
}

// growHome grows the work disk's file system mounted at home to fill the
// disk: the host extends a new VM's work disk file to its size but never
// resizes the file system in it (internal/guest/growfs). It runs before
// the payload is applied, so the host sees the VM ready only with /root
// at its full size. A failure leaves /root at its old size and is logged.
func growHome(home string, log *slog.Logger) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		log.Warn("not growing the work disk", "err", err)
		return
	}
	mounts, err := parseMountinfo(f)
	f.Close()
	if err != nil {
		log.Warn("not growing the work disk", "err", err)
		return
	}
	m, ok := lastMountAt(mounts, home)
	if !ok || !strings.HasPrefix(m.Source, "/dev/") || m.FSType != "ext4" {
		log.Info("not growing the work disk: not an ext4 disk", "home", home, "source", m.Source, "type", m.FSType)
		return
	}
	r, err := growfs.Fill(home, m.Source)
	switch {
	case err != nil:
		log.Warn("the work disk keeps its size", "home", home, "err", err)
	case r.Grown():
		log.Info("work disk grown", "home", home, "device", r.Device, "from", r.Before, "to", r.After, "disk", r.Disk)
	}
}

// waitMountPoint polls until dir is on another filesystem than its
// parent, at most wait.
func waitMountPoint(dir string, wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return poll.Until(ctx, 100*time.Millisecond, func() (bool, error) {
		ok, err := isMountPoint(dir)
		return err == nil && ok, nil
	}) == nil
}

func isMountPoint(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return false, err
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	if st.Dev != parent.Dev {
		return true, nil
	}
	return false, errors.New("same device as its parent")
}
