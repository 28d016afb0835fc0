package daemon

import (
	"net/netip"
	"testing"

	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/bangerdev/banger/internal/host/store"
)

func TestMisboundLease(t *testing.T) {
	cfg := hostnet.Config{Bridge: "banger0", Subnet: netip.MustParsePrefix("172.30.0.0/24")}
	mac := func(ip string) string { return hostnet.MAC(netip.MustParseAddr(ip)).String() }
	for _, tc := range []struct {
		name  string
		lease store.Lease
		leak  bool
	}{
		{"the TAP of its address", store.Lease{IP: "172.30.0.2", MAC: mac("172.30.0.2"), TAP: "tap-pool-0"}, false},
		{"another address's TAP (an older banger)", store.Lease{IP: "172.30.0.5", MAC: mac("172.30.0.5"), TAP: "tap-pool-0"}, true},
		{"a MAC the binding does not name", store.Lease{IP: "172.30.0.2", MAC: "02:00:00:00:00:01", TAP: "tap-pool-0"}, true},
		{"an address outside the subnet", store.Lease{IP: "10.9.0.2", MAC: mac("10.9.0.2"), TAP: "tap-pool-0"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leak, got := misboundLease(cfg, tc.lease)
			if got != tc.leak {
				t.Fatalf("misboundLease(%+v) = %v, want %v", tc.lease, got, tc.leak)
			}
			if got && (leak.Name != tc.lease.TAP || leak.Reason == "" || leak.Fix == "") {
				t.Errorf("leak %+v lacks the TAP, a reason or a fix", leak)
			}
		})
	}
}
