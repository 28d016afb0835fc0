package hostnet

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// planConfig is the config of the synthetic states below.
func planConfig() Config {
	return Config{
		Bridge:   "banger0",
		Subnet:   netip.MustParsePrefix("172.30.0.0/24"),
		PoolSize: 2,
		TAPOwner: &Owner{UID: 4242, GID: 4343},
	}
}

func healthyTAP(n int) TAPState {
	return TAPState{Name: TAPName(n), N: n, Kind: "tap", Master: "banger0", Up: true, Isolated: true, Owner: Owner{4242, 4343}}
}

// converged is the state Setup leaves for planConfig.
func converged() State {
	cfg := planConfig()
	table, antispoof := Ruleset(cfg), AntiSpoof(cfg)
	antispoof.Sets[0].Elements = [][]byte{binding("tap-pool-0").key(), binding("tap-pool-1").key()}
	return State{
		Bridge: BridgeState{Exists: true, Kind: "bridge", Up: true, MAC: MAC(Gateway(cfg.Subnet)),
			Addrs: []netip.Prefix{netip.MustParsePrefix("172.30.0.1/24")}},
		TAPs:       []TAPState{healthyTAP(0), healthyTAP(1)},
		Forwarding: true,
		Table:      &table,
		AntiSpoof:  &antispoof,
	}
}

func with(st State, f func(*State)) State {
	st = cloneState(st)
	f(&st)
	return st
}

// binding is the binding of pool TAP name under planConfig.
func binding(name string) Binding {
	b, ok := BindingFor(planConfig().Subnet, name)
	if !ok {
		panic("no binding for " + name)
	}
	return b
}

// bogus binds tap-pool-0 to an address that is not its own.
var bogus = Binding{TAP: "tap-pool-0", MAC: MAC(mustAddr("172.30.0.9")), IP: mustAddr("172.30.0.9")}

// addTAPs adds healthy, bound pool TAPs ns to s.
func addTAPs(s *State, ns ...int) {
	for _, n := range ns {
		s.TAPs = append(s.TAPs, healthyTAP(n))
		s.AntiSpoof.Sets[0].Elements = append(s.AntiSpoof.Sets[0].Elements, binding(TAPName(n)).key())
	}
}

// bind is the step that binds the pool TAPs names.
func bind(names ...string) Step {
	s := Bind{Table: "banger"}
	for _, n := range names {
		s.Bindings = append(s.Bindings, binding(n))
	}
	return s
}

func newTAP(n int) []Step {
	return newTAPSteps(planConfig(), TAPName(n), Owner{4242, 4343})
}

func cat(parts ...[]Step) []Step {
	var out []Step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var planCases = []struct {
	name  string
	st    State
	want  Want
	steps []Step
	// stuck: applying the plan cannot converge (the fake, like the
	// executor, will not replace a squatter).
	stuck bool
}{
	{
		name: "empty host",
		st:   State{},
		want: Want{IdleTAPs: 2},
		steps: cat([]Step{
			EnsureBridge{Name: "banger0", MAC: MAC(netip.MustParseAddr("172.30.0.1"))},
			SetBridgeAddr{Bridge: "banger0", Addr: netip.MustParsePrefix("172.30.0.1/24")},
			SetLinkUp{Name: "banger0"},
			EnsureNFTable{Table: AntiSpoof(planConfig())},
			EnsureNFTable{Table: Ruleset(planConfig())},
			EnableForwarding{},
			bind("tap-pool-0", "tap-pool-1"),
		}, newTAP(0), newTAP(1)),
	},
	{name: "converged", st: converged(), want: Want{IdleTAPs: 2}},
	{name: "converged, trimming", st: converged(), want: Want{IdleTAPs: 2, Trim: true}},
	{
		name:  "bridge down",
		st:    with(converged(), func(s *State) { s.Bridge.Up = false }),
		want:  Want{IdleTAPs: 2},
		steps: []Step{SetLinkUp{Name: "banger0"}},
	},
	{
		name: "address of an earlier subnet",
		st:   with(converged(), func(s *State) { s.Bridge.Addrs = []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")} }),
		want: Want{IdleTAPs: 2},
		steps: []Step{
			DelBridgeAddr{Bridge: "banger0", Addr: netip.MustParsePrefix("10.9.0.1/24")},
			SetBridgeAddr{Bridge: "banger0", Addr: netip.MustParsePrefix("172.30.0.1/24")},
		},
	},
	{
		name:  "table missing",
		st:    with(converged(), func(s *State) { s.Table = nil }),
		want:  Want{IdleTAPs: 2},
		steps: []Step{EnsureNFTable{Table: Ruleset(planConfig())}},
	},
	{
		name: "table with a foreign rule",
		st: with(converged(), func(s *State) {
			s.Table.Rules = append(append([]NFTRule(nil), s.Table.Rules...), NFTRule{Chain: "input", Exprs: verdict(0)})
		}),
		want:  Want{IdleTAPs: 2},
		steps: []Step{EnsureNFTable{Table: Ruleset(planConfig())}},
	},
	{
		name: "table of another subnet",
		st: with(converged(), func(s *State) {
			cfg := planConfig()
			cfg.Subnet = netip.MustParsePrefix("10.9.0.0/24")
			t := Ruleset(cfg)
			s.Table = &t
		}),
		want:  Want{IdleTAPs: 2},
		steps: []Step{EnsureNFTable{Table: Ruleset(planConfig())}},
	},
	{
		name: "table unreadable (unprivileged)",
		st:   with(converged(), func(s *State) { s.Table, s.AntiSpoof, s.TableUnknown = nil, nil, true }),
		want: Want{IdleTAPs: 2},
	},
	{
		name:  "anti-spoofing table missing",
		st:    with(converged(), func(s *State) { s.AntiSpoof = nil }),
		want:  Want{IdleTAPs: 2},
		steps: []Step{EnsureNFTable{Table: AntiSpoof(planConfig())}, bind("tap-pool-0", "tap-pool-1")},
	},
	{
		name: "a binding that is not its TAP's, and one of a TAP that is gone",
		st: with(converged(), func(s *State) {
			set := &s.AntiSpoof.Sets[0]
			set.Elements = append(set.Elements, bogus.key(), binding("tap-pool-5").key())
		}),
		want:  Want{IdleTAPs: 2},
		steps: []Step{Unbind{Table: "banger", Bindings: []Binding{bogus, binding("tap-pool-5")}}},
	},
	{
		name: "a TAP without its binding",
		st: with(converged(), func(s *State) {
			s.AntiSpoof.Sets[0].Elements = s.AntiSpoof.Sets[0].Elements[:1]
		}),
		want:  Want{IdleTAPs: 2},
		steps: []Step{bind("tap-pool-1")},
	},
	{
		name: "allowed destinations changed",
		st: with(converged(), func(s *State) {
			cfg := planConfig()
			cfg.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}
			t := Ruleset(cfg)
			s.Table = &t
		}),
		want:  Want{IdleTAPs: 2},
		steps: []Step{EnsureNFTable{Table: Ruleset(planConfig())}},
	},
	{
		name:  "forwarding off",
		st:    with(converged(), func(s *State) { s.Forwarding = false }),
		want:  Want{IdleTAPs: 2},
		steps: []Step{EnableForwarding{}},
	},
	{
		name:  "TAP detached",
		st:    with(converged(), func(s *State) { s.TAPs[0].Master, s.TAPs[0].Isolated = "", false }),
		want:  Want{IdleTAPs: 2},
		steps: []Step{AttachToBridge{Name: "tap-pool-0", Bridge: "banger0"}, SetIsolated{Name: "tap-pool-0"}},
	},
	{
		name:  "TAP on another bridge",
		st:    with(converged(), func(s *State) { s.TAPs[1].Master = "docker0" }),
		want:  Want{IdleTAPs: 2},
		steps: []Step{AttachToBridge{Name: "tap-pool-1", Bridge: "banger0"}, SetIsolated{Name: "tap-pool-1"}},
	},
	{
		name:  "TAP not isolated",
		st:    with(converged(), func(s *State) { s.TAPs[1].Isolated = false }),
		want:  Want{IdleTAPs: 2},
		steps: []Step{SetIsolated{Name: "tap-pool-1"}},
	},
	{
		name:  "TAP down",
		st:    with(converged(), func(s *State) { s.TAPs[0].Up = false }),
		want:  Want{IdleTAPs: 2},
		steps: []Step{SetLinkUp{Name: "tap-pool-0"}},
	},
	{
		name:  "leased TAP down is repaired",
		st:    with(converged(), func(s *State) { s.TAPs[0].Up = false }),
		want:  Want{IdleTAPs: 1, Leased: []string{"tap-pool-0"}},
		steps: []Step{SetLinkUp{Name: "tap-pool-0"}},
	},
	{
		name:  "idle TAP of another owner is recreated",
		st:    with(converged(), func(s *State) { s.TAPs[0].Owner = Owner{} }),
		want:  Want{IdleTAPs: 2},
		steps: cat([]Step{DeleteLink{Name: "tap-pool-0"}}, newTAP(0)),
	},
	{
		name:  "leased TAP of another owner is left alone",
		st:    with(converged(), func(s *State) { s.TAPs[0].Owner = Owner{} }),
		want:  Want{IdleTAPs: 2, Leased: []string{"tap-pool-0"}},
		steps: cat([]Step{bind("tap-pool-2")}, newTAP(2)),
	},
	{
		name:  "leased TAPs are not idle",
		st:    converged(),
		want:  Want{IdleTAPs: 2, Leased: []string{"tap-pool-1"}},
		steps: cat([]Step{bind("tap-pool-2")}, newTAP(2)),
	},
	{
		name:  "TAP in use is not idle",
		st:    with(converged(), func(s *State) { s.TAPs[0].InUse = true }),
		want:  Want{IdleTAPs: 2},
		steps: cat([]Step{bind("tap-pool-2")}, newTAP(2)),
	},
	{
		name: "trim deletes the highest-numbered idle TAPs",
		st:   with(converged(), func(s *State) { addTAPs(s, 2, 3) }),
		want: Want{IdleTAPs: 2, Trim: true},
		steps: []Step{
			Unbind{Table: "banger", Bindings: []Binding{binding("tap-pool-2"), binding("tap-pool-3")}},
			DeleteLink{Name: "tap-pool-2"},
			DeleteLink{Name: "tap-pool-3"},
		},
	},
	{
		name: "without trim extras stay",
		st:   with(converged(), func(s *State) { addTAPs(s, 2, 3) }),
		want: Want{IdleTAPs: 2},
	},
	{
		name: "trim never deletes leased or in-use TAPs",
		st: with(converged(), func(s *State) {
			addTAPs(s, 2, 3)
			s.TAPs[2].InUse = true
		}),
		want: Want{IdleTAPs: 2, Leased: []string{"tap-pool-3"}, Trim: true},
	},
	{
		name: "a link squatting on a pool name is skipped",
		st: with(converged(), func(s *State) {
			s.TAPs[0] = TAPState{Name: "tap-pool-0", N: 0, Kind: "veth"}
		}),
		want:  Want{IdleTAPs: 2},
		steps: cat([]Step{bind("tap-pool-2")}, newTAP(2)),
	},
	{
		name: "a link squatting on the bridge name",
		st:   with(converged(), func(s *State) { s.Bridge = BridgeState{Exists: true, Kind: "dummy"} }),
		want: Want{IdleTAPs: 2},
		steps: []Step{
			EnsureBridge{Name: "banger0", MAC: MAC(netip.MustParseAddr("172.30.0.1"))},
			SetBridgeAddr{Bridge: "banger0", Addr: netip.MustParsePrefix("172.30.0.1/24")},
			SetLinkUp{Name: "banger0"},
		},
		stuck: true,
	},
	{
		name: "teardown",
		st: with(converged(), func(s *State) {
			s.TAPs = append(s.TAPs, TAPState{Name: "tap-pool-7", N: 7, Kind: "veth"})
			s.TAPs[1].InUse = true
		}),
		want: Want{Teardown: true, IdleTAPs: 2},
		steps: []Step{
			DeleteLink{Name: "tap-pool-0"},
			DeleteLink{Name: "tap-pool-1"},
			DeleteLink{Name: "banger0"},
			DeleteNFTable{Name: "banger", Family: "inet"},
			DeleteNFTable{Name: "banger", Family: "bridge"},
		},
	},
	{name: "teardown of a clean host", st: State{Forwarding: true}, want: Want{Teardown: true}},
	{
		name: "teardown leaves a squatter on the bridge name",
		st:   State{Bridge: BridgeState{Exists: true, Kind: "dummy"}},
		want: Want{Teardown: true},
	},
}

func TestPlan(t *testing.T) {
	cfg := planConfig()
	for _, tc := range planCases {
		t.Run(tc.name, func(t *testing.T) {
			got := Plan(cfg, tc.st, tc.want)
			if diff := cmp.Diff(tc.steps, got, cmpOpts...); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
		})
	}
}

// Applying a plan and planning again plans nothing: the property the
// Executor's idempotence rests on, checked against the fake's model of
// the kernel.
func TestPlanConverges(t *testing.T) {
	cfg := planConfig()
	for _, tc := range planCases {
		if tc.stuck {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			h := &fakeHost{st: cloneState(tc.st)}
			if err := h.Apply(context.Background(), Plan(cfg, tc.st, tc.want)); err != nil {
				t.Fatal(err)
			}
			if again := Plan(cfg, h.st, tc.want); len(again) != 0 {
				t.Errorf("Plan after applying the plan = %v, want nothing", again)
			}
		})
	}
}

func TestStepStrings(t *testing.T) {
	for _, tc := range []struct {
		step Step
		want string
	}{
		{EnsureBridge{Name: "banger0", MAC: MAC(netip.MustParseAddr("172.30.0.1"))}, "create bridge banger0 with MAC 02:b4:ac:1e:00:01"},
		{SetBridgeAddr{Bridge: "banger0", Addr: netip.MustParsePrefix("172.30.0.1/24")}, "add address 172.30.0.1/24 to banger0"},
		{DelBridgeAddr{Bridge: "banger0", Addr: netip.MustParsePrefix("10.0.0.1/24")}, "remove address 10.0.0.1/24 from banger0"},
		{SetLinkUp{Name: "tap-pool-1"}, "bring tap-pool-1 up"},
		{CreateTAP{Name: "tap-pool-3", Owner: Owner{1000, 1000}}, "create persistent TAP tap-pool-3 owned by 1000:1000"},
		{AttachToBridge{Name: "tap-pool-3", Bridge: "banger0"}, "attach tap-pool-3 to banger0"},
		{SetIsolated{Name: "tap-pool-3"}, "isolate bridge port tap-pool-3"},
		{DeleteLink{Name: "tap-pool-3"}, "delete link tap-pool-3"},
		{FlushPort{Name: "tap-pool-3"}, "forget MAC addresses learned on tap-pool-3"},
		{EnableForwarding{}, "set net.ipv4.ip_forward=1"},
		{EnsureNFTable{Table: Ruleset(planConfig())}, "write nftables table inet banger (7 chains, 43 rules, set egress-cidrs of 0, set egress-drops of 0, set egress-guests of 0, set egress-names of 0, set egress-names-any of 0)"},
		{EnsureNFTable{Table: AntiSpoof(planConfig())}, "write nftables table bridge banger (1 chains, 3 rules, set guest-addrs of 0)"},
		{bind("tap-pool-0"), "bind tap-pool-0 . 02:b4:ac:1e:00:02 . 172.30.0.2 in table bridge banger"},
		{Unbind{Table: "banger", Bindings: []Binding{bogus}}, "unbind tap-pool-0 . 02:b4:ac:1e:00:09 . 172.30.0.9 in table bridge banger"},
		{DeleteNFTable{Name: "banger", Family: "inet"}, "delete nftables table inet banger"},
	} {
		if got := tc.step.String(); got != tc.want {
			t.Errorf("%T.String() = %q, want %q", tc.step, got, tc.want)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
