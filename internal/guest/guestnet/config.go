// Package guestnet configures a guest's network interface from the kernel
// command line.
//
// Debian's kernel is built without CONFIG_IP_PNP, so the kernel ignores
// ip=; banger passes its own parameters instead and banger-agent net-up
// applies them early in boot:
//
//	banger.ip=<addr>/<prefix>    address of the guest NIC, e.g. 172.30.0.5/24
//	banger.gw=<addr>             default gateway (needs banger.ip)
//	banger.dns=<addr>[,<addr>]   name servers, written to /etc/resolv.conf
//	banger.hostname=<name>       kernel hostname and /etc/hostname
//	banger.mac=<mac>             which NIC to configure (default eth0, else
//	                             the first non-loopback Ethernet link)
//
// The package owns parsing those parameters (ParseCmdline) and applying
// them (Apply) through netlink to a network namespace the caller chooses.
package guestnet

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Config is what the kernel command line asks for. The zero Config asks
// for nothing.
type Config struct {
	Address  netip.Prefix // banger.ip; invalid when absent
	Gateway  netip.Addr   // banger.gw; invalid when absent
	DNS      []netip.Addr // banger.dns
	Hostname string       // banger.hostname
	MAC      net.HardwareAddr
}

// IsZero reports whether c asks for nothing (a guest booted without
// networking parameters).
func (c Config) IsZero() bool {
	return !c.Address.IsValid() && !c.Gateway.IsValid() && len(c.DNS) == 0 && c.Hostname == "" && len(c.MAC) == 0
}

// ParseCmdline reads the banger.* network parameters from a kernel command
// line (the contents of /proc/cmdline). Other parameters are ignored; a
// later parameter overrides an earlier one, as in the kernel.
func ParseCmdline(cmdline string) (Config, error) {
	var c Config
	for _, word := range cmdlineWords(cmdline) {
		key, val, ok := strings.Cut(word, "=")
		if !ok || !strings.HasPrefix(key, "banger.") {
			continue
		}
		switch key {
		case "banger.ip":
			p, err := netip.ParsePrefix(val)
			if err != nil {
				return Config{}, fmt.Errorf("banger.ip=%s: want an address with its prefix length, e.g. banger.ip=172.30.0.5/24", val)
			}
			c.Address = p
		case "banger.gw":
			a, err := netip.ParseAddr(val)
			if err != nil {
				return Config{}, fmt.Errorf("banger.gw=%s: want an IP address, e.g. banger.gw=172.30.0.1", val)
			}
			c.Gateway = a
		case "banger.dns":
			c.DNS = nil
			for _, s := range strings.Split(val, ",") {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return Config{}, fmt.Errorf("banger.dns=%s: %q is not an IP address; want e.g. banger.dns=1.1.1.1,9.9.9.9", val, s)
				}
				c.DNS = append(c.DNS, a)
			}
		case "banger.hostname":
			if err := CheckHostname(val); err != nil {
				return Config{}, fmt.Errorf("banger.hostname=%s: %w", val, err)
			}
			c.Hostname = val
		case "banger.mac":
			mac, err := net.ParseMAC(val)
			if err != nil || len(mac) != 6 {
				return Config{}, fmt.Errorf("banger.mac=%s: want an Ethernet address, e.g. banger.mac=02:00:ac:1e:00:05", val)
			}
			c.MAC = mac
		}
	}
	if c.Gateway.IsValid() {
		if !c.Address.IsValid() {
			return Config{}, fmt.Errorf("banger.gw=%s needs banger.ip=<addr>/<prefix> too", c.Gateway)
		}
		if c.Gateway.Is4() != c.Address.Addr().Is4() {
			return Config{}, fmt.Errorf("banger.gw=%s and banger.ip=%s are of different IP families", c.Gateway, c.Address)
		}
	}
	return c, nil
}

// CheckHostname accepts what the kernel and RFC 1123 accept: dot-separated
// labels of letters, digits and inner hyphens, at most 64 bytes in all.
// (The agent's identity call checks a new hostname with it too.)
func CheckHostname(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("a hostname has 1 to 64 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q: each dot-separated label has 1 to 63 characters and neither starts nor ends with '-'", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q is not allowed: use letters, digits and '-'", r)
			}
		}
	}
	return nil
}

// cmdlineWords splits a kernel command line as the kernel does: spaces
// separate words, double quotes group them and are dropped, and "--" ends
// the kernel's parameters. (package guestinit splits the same way; each
// package owns the parameters it reads.)
func cmdlineWords(s string) []string {
	var words []string
	var w strings.Builder
	inQuote, inWord := false, false
	for _, r := range s + " " {
		switch {
		case r == '"':
			inQuote, inWord = !inQuote, true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inWord {
				if w.String() == "--" {
					return words
				}
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	return words
}
