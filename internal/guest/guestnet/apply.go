package guestnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	// netlink rather than running ip(8): the agent is a static binary that
	// must work in images without iproute2, and netlink's Handle can be
	// bound to any network namespace, which is how the tests configure a
	// throwaway namespace instead of the host's. It is the library
	// containerd, Docker and CNI use for the same job.
	"github.com/vishvananda/netlink"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
	"github.com/bangerdev/banger/internal/shared/poll"
)

// System is where Apply makes its changes.
type System struct {
	// Netlink is bound to the network namespace to configure (the guest's
	// own: netlink.NewHandle()).
	Netlink *netlink.Handle
	// EtcDir receives resolv.conf, hostname and hosts ("/etc").
	EtcDir string
	// SetHostname sets the kernel's hostname (unix.Sethostname).
	SetHostname func(name string) error
	// LinkWait bounds how long Apply waits for the NIC to appear (its
	// driver may still be loading). Zero means do not wait.
	LinkWait time.Duration
	Log      *slog.Logger
}

// linkPoll is how often Apply looks for the NIC while it waits.
const linkPoll = 100 * time.Millisecond

// Apply configures the guest as cfg asks: the address on the chosen NIC,
// the link up, the default route, /etc/resolv.conf, the hostname. Every
// step replaces what is there, so Apply can run again (after a crash, or
// on every boot) and ends in the same state. The zero Config changes
// nothing.
func Apply(ctx context.Context, cfg Config, sys System) error {
	log := sys.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Address.IsValid() {
		if err := configureLink(ctx, cfg, sys, log); err != nil {
			return err
		}
	}
	if len(cfg.DNS) > 0 {
		var b bytes.Buffer
		b.WriteString("# Written by banger-agent net-up from banger.dns= on the kernel command line.\n")
		for _, a := range cfg.DNS {
			fmt.Fprintf(&b, "nameserver %s\n", a)
		}
		p := filepath.Join(sys.EtcDir, "resolv.conf")
		if err := writeFileAtomic(p, b.Bytes()); err != nil {
			return fmt.Errorf("guestnet: writing %s: %w", p, err)
		}
		log.Info("name servers set", "file", p, "dns", cfg.DNS)
	}
	if cfg.Hostname != "" {
		if err := setHostname(cfg.Hostname, sys); err != nil {
			return err
		}
		log.Info("hostname set", "hostname", cfg.Hostname)
	}
	return nil
}

func configureLink(ctx context.Context, cfg Config, sys System, log *slog.Logger) error {
	h := sys.Netlink
	if h == nil {
		return errors.New("guestnet: no netlink handle to configure the network with")
	}
	link, err := FindLink(ctx, h, cfg.MAC, sys.LinkWait)
	if err != nil {
		return err
	}
	name := link.Attrs().Name
	addr := &netlink.Addr{IPNet: prefixIPNet(cfg.Address)}
	if err := h.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("guestnet: setting address %s on %s: %w", cfg.Address, name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("guestnet: bringing %s up: %w", name, err)
	}
	log.Info("address set", "link", name, "address", cfg.Address)
	if cfg.Gateway.IsValid() {
		route := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Gw:        net.IP(cfg.Gateway.AsSlice()),
			Dst:       defaultDst(cfg.Gateway),
		}
		// A gateway outside the guest's own subnet is still reachable
		// on the link (a point-to-point setup); say so, or the kernel
		// refuses the route.
		if !cfg.Address.Masked().Contains(cfg.Gateway) {
			route.Flags = int(netlink.FLAG_ONLINK)
		}
		if err := h.RouteReplace(route); err != nil {
			return fmt.Errorf("guestnet: adding the default route via %s on %s: %w", cfg.Gateway, name, err)
		}
		log.Info("default route set", "link", name, "gateway", cfg.Gateway)
	}
	return nil
}

// FindLink returns the NIC Apply configures: the link with mac when mac
// is set, else eth0 (or the first Ethernet link), waiting up to wait for
// it to appear.
func FindLink(ctx context.Context, h *netlink.Handle, mac net.HardwareAddr, wait time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(wait)
	var link netlink.Link
	err := poll.Until(ctx, linkPoll, func() (bool, error) {
		links, err := h.LinkList()
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return false, fmt.Errorf("guestnet: listing network links: %w", err)
		}
		if link = pickLink(links, mac); link != nil {
			return true, nil
		}
		if !time.Now().Before(deadline) {
			want := "eth0 or another Ethernet link"
			if mac != nil {
				want = "a link with MAC " + mac.String()
			}
			return false, fmt.Errorf("guestnet: no network link found (want %s; have %s); is virtio_net loaded and does the VM have a NIC?", want, linkNames(links))
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return link, nil
}

// pickLink chooses the link with mac when given; otherwise eth0, else the
// first non-loopback Ethernet link by index.
func pickLink(links []netlink.Link, mac net.HardwareAddr) netlink.Link {
	if mac != nil {
		for _, l := range links {
			if bytes.Equal(l.Attrs().HardwareAddr, mac) {
				return l
			}
		}
		return nil
	}
	var first netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "eth0" {
			return l
		}
		if a.EncapType != "ether" || a.Flags&net.FlagLoopback != 0 {
			continue
		}
		if first == nil || a.Index < first.Attrs().Index {
			first = l
		}
	}
	return first
}

func linkNames(links []netlink.Link) string {
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func prefixIPNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

func defaultDst(gw netip.Addr) *net.IPNet {
	if gw.Is4() {
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}

// setHostname sets the kernel hostname, /etc/hostname, and makes sure
// /etc/hosts resolves the name (sudo and hostname -f want that), as
// Debian's installer does with a 127.0.1.1 line.
func setHostname(name string, sys System) error {
	if sys.SetHostname != nil {
		if err := sys.SetHostname(name); err != nil {
			return fmt.Errorf("guestnet: setting the hostname to %s: %w", name, err)
		}
	}
	p := filepath.Join(sys.EtcDir, "hostname")
	if err := writeFileAtomic(p, []byte(name+"\n")); err != nil {
		return fmt.Errorf("guestnet: writing %s: %w", p, err)
	}
	hosts := filepath.Join(sys.EtcDir, "hosts")
	old, err := os.ReadFile(hosts)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("guestnet: reading %s: %w", hosts, err)
	}
	updated := hostsWith(string(old), name)
	if updated == string(old) {
		return nil
	}
	if err := writeFileAtomic(hosts, []byte(updated)); err != nil {
		return fmt.Errorf("guestnet: writing %s: %w", hosts, err)
	}
	return nil
}

// hostsWith returns an /etc/hosts whose 127.0.1.1 line names name,
// replacing an earlier 127.0.1.1 line (a previous hostname).
func hostsWith(hosts, name string) string {
	if hosts == "" {
		hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	}
	want := "127.0.1.1\t" + name
	lines := strings.Split(strings.TrimSuffix(hosts, "\n"), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "127.0.1.1" {
			if len(f) == 2 && f[1] == name {
				return hosts
			}
			lines[i] = want
			return strings.Join(lines, "\n") + "\n"
		}
	}
	return strings.Join(append(lines, want), "\n") + "\n"
}

// writeFileAtomic replaces path (a file, or a dangling symlink such as a
// resolv.conf pointing into /run) with data.
func writeFileAtomic(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o644, 0)
}
