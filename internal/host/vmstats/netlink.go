package vmstats

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// Netlink reads a device's counters over rtnetlink, in the calling
// thread's network namespace.
type Netlink struct{}

var _ LinkCounters = Netlink{}

// Counters returns the device's received and transmitted bytes.
func (Netlink) Counters(name string) (rx, tx uint64, err error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, 0, fmt.Errorf("device %s: %w", name, err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		return 0, 0, fmt.Errorf("device %s: the kernel sent no counters", name)
	}
	return s.RxBytes, s.TxBytes, nil
}
