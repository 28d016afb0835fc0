package hostnet

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestGatewayAndGuestAddrs(t *testing.T) {
	for _, tc := range []struct {
		subnet             string
		gw, first, last    string
		noGuests, noSubnet bool
	}{
		{subnet: "172.30.0.0/24", gw: "172.30.0.1", first: "172.30.0.2", last: "172.30.0.254"},
		{subnet: "172.30.0.77/24", gw: "172.30.0.1", first: "172.30.0.2", last: "172.30.0.254"}, // unmasked
		{subnet: "10.1.0.0/16", gw: "10.1.0.1", first: "10.1.0.2", last: "10.1.255.254"},
		{subnet: "192.168.5.8/29", gw: "192.168.5.9", first: "192.168.5.10", last: "192.168.5.14"},
		{subnet: "192.168.5.8/30", gw: "192.168.5.9", first: "192.168.5.10", last: "192.168.5.10"},
		{subnet: "192.168.5.8/31", gw: "192.168.5.9", noGuests: true},
		{subnet: "fd00::/64", noSubnet: true, noGuests: true},
	} {
		t.Run(tc.subnet, func(t *testing.T) {
			p := netip.MustParsePrefix(tc.subnet)
			gw := Gateway(p)
			if tc.noSubnet {
				if gw.IsValid() {
					t.Errorf("Gateway = %v, want none", gw)
				}
			} else if gw != netip.MustParseAddr(tc.gw) {
				t.Errorf("Gateway = %v, want %s", gw, tc.gw)
			}
			first, last := GuestAddrs(p)
			if tc.noGuests {
				if first.IsValid() || last.IsValid() {
					t.Errorf("GuestAddrs = %v, %v, want none", first, last)
				}
				return
			}
			if first != netip.MustParseAddr(tc.first) || last != netip.MustParseAddr(tc.last) {
				t.Errorf("GuestAddrs = %v, %v, want %s, %s", first, last, tc.first, tc.last)
			}
		})
	}
}

func TestNextFree(t *testing.T) {
	for _, tc := range []struct {
		name    string
		subnet  string
		used    []netip.Addr
		want    string
		wantErr string // substring; "" means no error
	}{
		{name: "empty subnet", subnet: "172.30.0.0/24", want: "172.30.0.2"},
		{name: "lowest gap", subnet: "172.30.0.0/24", used: addrs("172.30.0.2", "172.30.0.4"), want: "172.30.0.3"},
		{name: "unordered", subnet: "172.30.0.0/24", used: addrs("172.30.0.3", "172.30.0.2"), want: "172.30.0.4"},
		{name: "addresses elsewhere ignored", subnet: "172.30.0.0/24", used: addrs("10.0.0.2", "172.30.1.2"), want: "172.30.0.2"},
		{name: "gateway is never leased", subnet: "172.30.0.0/24", used: addrs("172.30.0.1"), want: "172.30.0.2"},
		{name: "mapped IPv4 counts", subnet: "172.30.0.0/24", used: addrs("::ffff:172.30.0.2"), want: "172.30.0.3"},
		{name: "last one", subnet: "10.0.0.0/29", used: addrs("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"), want: "10.0.0.6"},
		{
			name:    "exhausted",
			subnet:  "10.0.0.0/29",
			used:    addrs("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"),
			wantErr: "all guest addresses of 10.0.0.0/29 (10.0.0.2 to 10.0.0.6) are leased: delete a VM, or set a bigger network.subnet in config (e.g. a /28)",
		},
		{name: "no room", subnet: "10.0.0.0/31", wantErr: "has no room for guests: set network.subnet"},
		{name: "IPv6", subnet: "fd00::/64", wantErr: "has no room for guests"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NextFree(netip.MustParsePrefix(tc.subnet), tc.used)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NextFree = %v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != netip.MustParseAddr(tc.want) {
				t.Fatalf("NextFree = %v, %v; want %s", got, err, tc.want)
			}
		})
	}
	full := addrs("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6")
	if _, err := NextFree(netip.MustParsePrefix("10.0.0.0/29"), full); !errors.Is(err, ErrSubnetExhausted) {
		t.Errorf("exhausted: err = %v, want ErrSubnetExhausted", err)
	}
}

// A /24 hands out 253 addresses, then runs out.
func TestNextFreeFillsTheSubnet(t *testing.T) {
	subnet := netip.MustParsePrefix("172.30.0.0/24")
	var used []netip.Addr
	for {
		a, err := NextFree(subnet, used)
		if err != nil {
			if !errors.Is(err, ErrSubnetExhausted) {
				t.Fatal(err)
			}
			break
		}
		used = append(used, a)
	}
	if len(used) != 253 || used[0] != netip.MustParseAddr("172.30.0.2") || used[252] != netip.MustParseAddr("172.30.0.254") {
		t.Errorf("leased %d addresses, %v to %v; want 253, 172.30.0.2 to 172.30.0.254", len(used), used[0], used[len(used)-1])
	}
}

func TestMAC(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"172.30.0.5", "02:b4:ac:1e:00:05"},
		{"10.0.0.1", "02:b4:0a:00:00:01"},
		{"255.255.255.254", "02:b4:ff:ff:ff:fe"},
		{"::ffff:172.30.0.5", "02:b4:ac:1e:00:05"},
		{"fd00::1", ""},
	} {
		got := MAC(netip.MustParseAddr(tc.ip))
		if got.String() != tc.want {
			t.Errorf("MAC(%s) = %q, want %q", tc.ip, got, tc.want)
		}
		if got != nil && (got[0]&0x02 == 0 || got[0]&0x01 != 0) {
			t.Errorf("MAC(%s) = %s is not locally administered unicast", tc.ip, got)
		}
	}
}

func TestTAPNames(t *testing.T) {
	for _, n := range []int{0, 1, 42} {
		if got, ok := parseTAPName(TAPName(n)); !ok || got != n {
			t.Errorf("parseTAPName(TAPName(%d)) = %d, %v", n, got, ok)
		}
	}
	if TAPName(3) != "tap-pool-3" {
		t.Errorf("TAPName(3) = %q", TAPName(3))
	}
	for _, name := range []string{"tap-pool-", "tap-pool-01", "tap-pool-+1", "tap-pool--1", "tap-pool-1a", "tap0", "banger0", "tap-pool-1234567"} {
		if n, ok := parseTAPName(name); ok {
			t.Errorf("parseTAPName(%q) = %d, true; want false", name, n)
		}
	}
}

func TestValidate(t *testing.T) {
	good := planConfig()
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no bridge", func(c *Config) { c.Bridge = "" }, "set network.bridge"},
		{"long bridge", func(c *Config) { c.Bridge = "a-very-long-bridge" }, "set network.bridge"},
		{"bridge named like a TAP", func(c *Config) { c.Bridge = "tap-pool-9" }, "collides with the TAP pool"},
		{"no subnet", func(c *Config) { c.Subnet = netip.Prefix{} }, "set network.subnet"},
		{"IPv6 subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") }, "not an IPv4 prefix"},
		{"tiny subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.0.0.0/30") }, "a /29 or bigger"},
		{"negative pool", func(c *Config) { c.PoolSize = -1 }, "set network.tap_pool_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
