package agent

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// guestOps answers probe_tcp, host_keys, poweroff and meminfo with the guest's real
// state and actions.
type guestOps struct {
	sshDir  string // "/etc/ssh"
	meminfo string // "" means /proc/meminfo
}

var _ agentproto.GuestOps = guestOps{}

// ProbeTCP connects to the port on loopback with a short timeout.
func (guestOps) ProbeTCP(ctx context.Context, port int) agentproto.ProbeResult {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return agentproto.ProbeResult{Port: port, Error: err.Error()}
	}
	c.Close()
	return agentproto.ProbeResult{Port: port, Open: true}
}

// HostKeys returns the SSH host public keys, sorted by file name.
func (g guestOps) HostKeys(context.Context) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(g.sshDir, "ssh_host_*_key.pub"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var keys []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if k := strings.TrimSpace(string(b)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// PowerOff asks systemd for a clean poweroff without waiting for it, so
// the reply still leaves; without systemd it syncs and powers off a moment
// later.
func (guestOps) PowerOff(context.Context) error {
	if path, err := exec.LookPath("systemctl"); err == nil {
		return exec.Command(path, "poweroff", "--no-block").Run()
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}()
	return nil
}

// fullHandler is the handler serve uses: health plus the guest operations.
type fullHandler struct {
	*healthReporter
	guestOps
}
