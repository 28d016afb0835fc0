package identity

import (
	"context"
	"fmt"

	"github.com/bangerdev/banger/internal/guest/guestnet"
	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// writeMachineID replaces /etc/machine-id. Debian's
// /var/lib/dbus/machine-id is a link to it (or absent), so nothing else
// holds the old one.
func writeMachineID(sys System, id string) error {
	p := sys.etc("machine-id")
	if err := atomicfile.Replace(p, []byte(id+"\n"), 0o444, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// setHostname sets the hostname as net-up does at boot (guestnet.Apply):
// the kernel's, /etc/hostname and /etc/hosts.
func setHostname(ctx context.Context, sys System, name string) error {
	return guestnet.Apply(ctx, guestnet.Config{Hostname: name}, guestnet.System{
		EtcDir:      sys.etc(),
		SetHostname: sys.SetHostname,
		Log:         sys.log(),
	})
}
