package hypervisor

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// GiveTAP makes the existing TAP device name attachable by uid and gid,
// for a hypervisor that opens its TAP by name as an unprivileged user (a
// jailed Firecracker); the kernel lets a process attach a TAP only if it
// owns it or the TAP has no owner. The caller must be root. A missing TAP
// is an error, never created.
func GiveTAP(name string, uid, gid int) error {
	if _, err := net.InterfaceByName(name); err != nil {
		return fmt.Errorf("TAP %s: %w: take a TAP from the pool", name, err)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/net/tun for TAP %s: %w", name, err)
	}
	// The TAP is persistent: closing fd detaches this queue and keeps
	// the device with its new owner.
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("TAP %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("TAP %s: %w: another process holds it (a VM still running?)", name, err)
		}
		return fmt.Errorf("attaching TAP %s: %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, uid); err != nil {
		return fmt.Errorf("TAP %s: TUNSETOWNER %d: %w", name, uid, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETGROUP, gid); err != nil {
		return fmt.Errorf("TAP %s: TUNSETGROUP %d: %w", name, gid, err)
	}
	return nil
}
