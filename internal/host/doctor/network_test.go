package doctor

import (
	"net/netip"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/google/go-cmp/cmp"
)

func TestNetworkChecks(t *testing.T) {
	cfg := hostnet.Config{Bridge: "banger0", Subnet: netip.MustParsePrefix("172.30.0.0/24"), PoolSize: 2, Table: "banger"}
	healthy := hostnet.State{
		Bridge: hostnet.BridgeState{Exists: true, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("172.30.0.1/24")}},
		TAPs: []hostnet.TAPState{
			{Name: "tap-pool-0", Kind: "tap", Master: "banger0", Up: true, Isolated: true},
			{Name: "tap-pool-1", Kind: "tap", Master: "banger0", Up: true, Isolated: true},
			{Name: "tap-pool-2", Kind: "tap", Master: "banger0", Up: true, Isolated: true, InUse: true},
		},
	}
	rules, antiSpoof := hostnet.Ruleset(cfg), hostnet.AntiSpoofBound(cfg, "tap-pool-0", "tap-pool-1", "tap-pool-2")
	healthy.Table, healthy.AntiSpoof = &rules, &antiSpoof
	with := func(f func(st *hostnet.State)) hostnet.State {
		st := healthy
		f(&st)
		return st
	}
	olderCfg := cfg
	olderCfg.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	older := hostnet.Ruleset(olderCfg)
	statuses := func(cs []api.Check) map[string]api.CheckStatus {
		out := map[string]api.CheckStatus{}
		for _, c := range cs {
			out[c.Name] = c.Status
			if c.Status != api.CheckOK && c.Fix == "" {
				t.Errorf("%s: %s without a fix", c.Name, c.Status)
			}
		}
		return out
	}
	tests := []struct {
		name string
		in   NetworkInputs
		want map[string]api.CheckStatus
	}{
		{"root, nothing yet", NetworkInputs{Config: cfg, DaemonRoot: true},
			map[string]api.CheckStatus{"bridge": "warn", "nat": "warn", "tap-pool": "warn", "leftovers": "ok"}},
		{"rootless, nothing set up", NetworkInputs{Config: cfg},
			map[string]api.CheckStatus{"bridge": "fail", "nat": "fail", "tap-pool": "fail", "leftovers": "ok"}},
		{"healthy", NetworkInputs{Config: cfg, State: healthy, Leased: []string{"tap-pool-2"}, DaemonRoot: true},
			map[string]api.CheckStatus{"bridge": "ok", "nat": "ok", "tap-pool": "ok", "leftovers": "ok"}},
		{"no anti-spoofing table", NetworkInputs{Config: cfg, State: with(func(st *hostnet.State) { st.AntiSpoof = nil }), Leased: []string{"tap-pool-2"}, DaemonRoot: true},
			map[string]api.CheckStatus{"bridge": "ok", "nat": "fail", "tap-pool": "ok", "leftovers": "ok"}},
		{"a TAP without its binding", NetworkInputs{Config: cfg, State: with(func(st *hostnet.State) {
			t := hostnet.AntiSpoofBound(cfg, "tap-pool-0", "tap-pool-1")
			st.AntiSpoof = &t
		}), Leased: []string{"tap-pool-2"}, DaemonRoot: true},
			map[string]api.CheckStatus{"bridge": "ok", "nat": "warn", "tap-pool": "ok", "leftovers": "ok"}},
		{"isolation table of another config", NetworkInputs{Config: cfg, State: with(func(st *hostnet.State) { st.Table = &older }), Leased: []string{"tap-pool-2"}, DaemonRoot: true},
			map[string]api.CheckStatus{"bridge": "ok", "nat": "warn", "tap-pool": "ok", "leftovers": "warn"}},
		{"unprivileged", NetworkInputs{Config: cfg, State: with(func(st *hostnet.State) { st.Table, st.AntiSpoof, st.TableUnknown = nil, nil, true }), Leased: []string{"tap-pool-2"}},
			map[string]api.CheckStatus{"bridge": "ok", "nat": "skip", "tap-pool": "ok", "leftovers": "ok"}},
		{"leftover process", NetworkInputs{Config: cfg, State: healthy, Leased: []string{"tap-pool-2"}, DaemonRoot: true,
			OtherLeaks: []api.Leak{{Kind: "process", What: "pid 42 (qemu-system-x86_64)"}}},
			map[string]api.CheckStatus{"bridge": "ok", "nat": "ok", "tap-pool": "ok", "leftovers": "warn"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, statuses(NetworkChecks(tt.in))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("healthy says what holds", func(t *testing.T) {
		cfg := cfg
		cfg.DNS = []netip.Addr{netip.MustParseAddr("192.168.1.53")}
		rules := hostnet.Ruleset(cfg)
		st := with(func(st *hostnet.State) { st.Table = &rules })
		for _, c := range NetworkChecks(NetworkInputs{Config: cfg, State: st, Leased: []string{"tap-pool-2"}, DaemonRoot: true}) {
			if c.Name != CheckNAT {
				continue
			}
			want := "egress NAT; guests kept from private, link-local and metadata addresses (allowed: none; DNS to 192.168.1.53); only the owner and root connect to guests; anti-spoofing binds 3 TAPs to their addresses"
			if c.Status != api.CheckOK || c.Detail != want {
				t.Errorf("nat check = %s %q, want ok %q", c.Status, c.Detail, want)
			}
		}
	})
}
