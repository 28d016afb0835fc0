package hostnet

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Step is one change to the host, as data. The concrete types below are
// the whole set; Executor.Apply runs them, and each is idempotent.
type Step interface {
	// String says what the step does, for plans and logs.
	String() string
	// doing names the step in an error: "creating tap-pool-3".
	doing() string
}

// EnsureBridge creates bridge Name with MAC address MAC unless it exists.
// A fixed MAC (MAC(gateway)) keeps the gateway's address stable for the
// guests' ARP caches; a bridge without one takes its lowest port's MAC,
// which changes as TAPs come and go. The MAC of an existing bridge is left
// as it is.
type EnsureBridge struct {
	Name string
	MAC  net.HardwareAddr
}

// SetBridgeAddr adds Addr (the gateway, with the subnet's length) to Bridge.
type SetBridgeAddr struct {
	Bridge string
	Addr   netip.Prefix
}

// DelBridgeAddr removes an IPv4 address the bridge should not have (left
// from an earlier subnet).
type DelBridgeAddr struct {
	Bridge string
	Addr   netip.Prefix
}

// SetLinkUp brings link Name up.
type SetLinkUp struct{ Name string }

// CreateTAP creates persistent TAP Name owned by Owner, so that a hypervisor
// running as Owner can open it without privileges.
type CreateTAP struct {
	Name  string
	Owner Owner
}

// AttachToBridge makes Bridge the master of link Name.
type AttachToBridge struct{ Name, Bridge string }

// SetIsolated makes bridge port Name isolated (IFLA_BRPORT_ISOLATED):
// isolated ports exchange no frames with each other, only with the bridge
// itself and non-isolated ports.
type SetIsolated struct{ Name string }

// DeleteLink deletes link Name; a link that is already gone is fine.
type DeleteLink struct{ Name string }

// FlushPort forgets the MAC addresses the bridge learned on port Name: the
// only state a VM leaves on its TAP.
type FlushPort struct{ Name string }

// EnableForwarding sets net.ipv4.ip_forward=1 in the executor's namespace.
type EnableForwarding struct{}

// EnsureNFTable replaces one of banger's nftables tables (the one of
// Table.Family) with Table, atomically.
type EnsureNFTable struct{ Table NFTable }

// DeleteNFTable deletes nftables table Name of Family ("inet", "bridge"),
// if it exists.
type DeleteNFTable struct{ Name, Family string }

func (s EnsureBridge) String() string {
	return fmt.Sprintf("create bridge %s with MAC %s", s.Name, s.MAC)
}
func (s SetBridgeAddr) String() string { return fmt.Sprintf("add address %s to %s", s.Addr, s.Bridge) }
func (s DelBridgeAddr) String() string {
	return fmt.Sprintf("remove address %s from %s", s.Addr, s.Bridge)
}
func (s SetLinkUp) String() string { return fmt.Sprintf("bring %s up", s.Name) }
func (s CreateTAP) String() string {
	return fmt.Sprintf("create persistent TAP %s owned by %s", s.Name, s.Owner)
}
func (s AttachToBridge) String() string { return fmt.Sprintf("attach %s to %s", s.Name, s.Bridge) }
func (s SetIsolated) String() string    { return fmt.Sprintf("isolate bridge port %s", s.Name) }
func (s DeleteLink) String() string     { return fmt.Sprintf("delete link %s", s.Name) }
func (s FlushPort) String() string {
	return fmt.Sprintf("forget MAC addresses learned on %s", s.Name)
}
func (EnableForwarding) String() string { return "set net.ipv4.ip_forward=1" }
func (s EnsureNFTable) String() string {
	sets := ""
	for _, set := range s.Table.Sets {
		sets += fmt.Sprintf(", set %s of %d", set.Name, len(set.Elements))
	}
	return fmt.Sprintf("write nftables table %s %s (%d chains, %d rules%s)", s.Table.familyName(), s.Table.Name, len(s.Table.Chains), len(s.Table.Rules), sets)
}
func (s DeleteNFTable) String() string {
	return fmt.Sprintf("delete nftables table %s %s", s.Family, s.Name)
}

func (s EnsureBridge) doing() string   { return "creating bridge " + s.Name }
func (s SetBridgeAddr) doing() string  { return fmt.Sprintf("adding %s to %s", s.Addr, s.Bridge) }
func (s DelBridgeAddr) doing() string  { return fmt.Sprintf("removing %s from %s", s.Addr, s.Bridge) }
func (s SetLinkUp) doing() string      { return "bringing up " + s.Name }
func (s CreateTAP) doing() string      { return "creating " + s.Name }
func (s AttachToBridge) doing() string { return fmt.Sprintf("attaching %s to %s", s.Name, s.Bridge) }
func (s SetIsolated) doing() string    { return "isolating bridge port " + s.Name }
func (s DeleteLink) doing() string     { return "deleting " + s.Name }
func (s FlushPort) doing() string      { return "flushing learned MAC addresses of " + s.Name }
func (EnableForwarding) doing() string { return "enabling IPv4 forwarding" }
func (s EnsureNFTable) doing() string {
	return "writing nftables table " + s.Table.familyName() + " " + s.Table.Name
}
func (s DeleteNFTable) doing() string { return "deleting nftables table " + s.Family + " " + s.Name }

// Bind adds Bindings to the set guest-addrs of nftables table bridge
// Table; a binding already there is fine.
type Bind struct {
	Table    string
	Bindings []Binding
}

// Unbind removes Bindings from the set guest-addrs of nftables table
// bridge Table; a binding already gone is fine.
type Unbind struct {
	Table    string
	Bindings []Binding
}

func (s Bind) String() string {
	return fmt.Sprintf("bind %s in table bridge %s", joinBindings(s.Bindings), s.Table)
}
func (s Unbind) String() string {
	return fmt.Sprintf("unbind %s in table bridge %s", joinBindings(s.Bindings), s.Table)
}
func (s Bind) doing() string   { return "binding " + joinBindings(s.Bindings) }
func (s Unbind) doing() string { return "unbinding " + joinBindings(s.Bindings) }

func joinBindings(bs []Binding) string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.String()
	}
	return strings.Join(out, ", ")
}

// Want is what a plan is for.
type Want struct {
	// Teardown removes the TAPs, the bridge and the table; the fields
	// below are ignored.
	Teardown bool
	// IdleTAPs is how many idle pool TAPs to have: TAPs that are neither
	// leased nor in use.
	IdleTAPs int
	// Leased names the pool TAPs that VMs hold. They are repaired but
	// never counted idle, deleted or recreated.
	Leased []string
	// Trim deletes idle TAPs beyond IdleTAPs (the highest-numbered). Only
	// a caller that knows every lease may set it: the daemon, through
	// Pool. Setup does not, so `banger host setup` only ever adds TAPs.
	Trim bool
}

// Plan returns the steps that take the host from st to what cfg and want
// ask for, in the order they must run. Satisfied steps are not planned:
// after a successful Apply, Plan of a fresh Observe is empty. cfg must be
// valid (Config.Validate).
func Plan(cfg Config, st State, want Want) []Step {
	if want.Teardown {
		return planTeardown(cfg, st)
	}
	steps := bridgeSteps(cfg, st)
	// The anti-spoofing table goes first: the isolation rules lean on
	// guests sending only from their own addresses.
	rewrite := !st.TableUnknown && !tableMatches(AntiSpoof(cfg), st.AntiSpoof)
	if rewrite {
		steps = append(steps, EnsureNFTable{Table: AntiSpoof(cfg)})
	}
	if table := Ruleset(cfg); !st.TableUnknown && !tableMatches(table, st.Table) {
		steps = append(steps, EnsureNFTable{Table: table})
	}
	if !st.Forwarding {
		steps = append(steps, EnableForwarding{})
	}
	taps := tapSteps(cfg, st, want)
	if !st.TableUnknown {
		// Bind what will exist before it is created, unbind what is gone.
		steps = append(steps, bindingSteps(cfg, st, linksAfter(st, taps), rewrite)...)
	}
	return append(steps, taps...)
}

// linksAfter names the links with pool names that exist once steps ran.
func linksAfter(st State, steps []Step) []string {
	var out []string
	for _, t := range st.TAPs {
		out = append(out, t.Name)
	}
	for _, s := range steps {
		switch s := s.(type) {
		case CreateTAP:
			if !slices.Contains(out, s.Name) {
				out = append(out, s.Name)
			}
		case DeleteLink:
			out = slices.DeleteFunc(out, func(n string) bool { return n == s.Name })
		}
	}
	return out
}

func planTeardown(cfg Config, st State) []Step {
	var steps []Step
	for _, t := range st.TAPs {
		if t.isPoolTAP() {
			steps = append(steps, DeleteLink{Name: t.Name})
		}
	}
	if st.Bridge.Exists && st.Bridge.Kind == "bridge" {
		steps = append(steps, DeleteLink{Name: cfg.Bridge})
	}
	if st.Table != nil || st.TableUnknown {
		steps = append(steps, DeleteNFTable{Name: cfg.table(), Family: "inet"})
	}
	if st.AntiSpoof != nil || st.TableUnknown {
		steps = append(steps, DeleteNFTable{Name: cfg.table(), Family: "bridge"})
	}
	return steps
}

func bridgeSteps(cfg Config, st State) []Step {
	gw := netip.PrefixFrom(Gateway(cfg.Subnet), cfg.Subnet.Bits())
	if !st.Bridge.Exists || st.Bridge.Kind != "bridge" {
		// A link of another kind squatting on the name makes EnsureBridge
		// fail with a fix; it is never deleted.
		return []Step{
			EnsureBridge{Name: cfg.Bridge, MAC: MAC(gw.Addr())},
			SetBridgeAddr{Bridge: cfg.Bridge, Addr: gw},
			SetLinkUp{Name: cfg.Bridge},
		}
	}
	var steps []Step
	has := false
	for _, a := range st.Bridge.Addrs {
		if a == gw {
			has = true
			continue
		}
		steps = append(steps, DelBridgeAddr{Bridge: cfg.Bridge, Addr: a})
	}
	if !has {
		steps = append(steps, SetBridgeAddr{Bridge: cfg.Bridge, Addr: gw})
	}
	if !st.Bridge.Up {
		steps = append(steps, SetLinkUp{Name: cfg.Bridge})
	}
	return steps
}

// tapSteps plans the TAP pool: repair every pool TAP (attached, isolated,
// up), recreate idle ones the hypervisor's user cannot open, trim extras
// when asked, and create the missing idle ones with the lowest free numbers.
func tapSteps(cfg Config, st State, want Want) []Step {
	owner := cfg.owner()
	leased := make(map[string]bool, len(want.Leased))
	for _, n := range want.Leased {
		leased[n] = true
	}
	taken := make(map[int]bool, len(st.TAPs))
	var steps []Step
	var idle []TAPState
	for _, t := range st.TAPs {
		taken[t.N] = true
		if !t.isPoolTAP() {
			continue // not ours to touch; Leaks reports it
		}
		if busy := leased[t.Name] || t.InUse; busy {
			steps = append(steps, repairSteps(cfg, t)...)
			continue
		}
		if t.Owner != owner {
			steps = append(steps, DeleteLink{Name: t.Name})
			taken[t.N] = false
			continue
		}
		idle = append(idle, t)
	}
	if want.Trim && len(idle) > want.IdleTAPs {
		for _, t := range idle[want.IdleTAPs:] {
			steps = append(steps, DeleteLink{Name: t.Name})
		}
		idle = idle[:want.IdleTAPs]
	}
	for _, t := range idle {
		steps = append(steps, repairSteps(cfg, t)...)
	}
	for n, missing := 0, want.IdleTAPs-len(idle); missing > 0; n++ {
		if taken[n] {
			continue
		}
		name := TAPName(n)
		steps = append(steps, newTAPSteps(cfg, name, owner)...)
		missing--
	}
	return steps
}

// newTAPSteps creates a pool TAP; it comes up last, once it is isolated.
func newTAPSteps(cfg Config, name string, owner Owner) []Step {
	return []Step{
		CreateTAP{Name: name, Owner: owner},
		AttachToBridge{Name: name, Bridge: cfg.Bridge},
		SetIsolated{Name: name},
		SetLinkUp{Name: name},
	}
}

// repairSteps brings an existing pool TAP back to attached, isolated, up.
func repairSteps(cfg Config, t TAPState) []Step {
	var steps []Step
	switch {
	case t.Master != cfg.Bridge:
		// A port starts without isolation, so (re)attaching means isolating.
		steps = append(steps, AttachToBridge{Name: t.Name, Bridge: cfg.Bridge}, SetIsolated{Name: t.Name})
	case !t.Isolated:
		steps = append(steps, SetIsolated{Name: t.Name})
	}
	if !t.Up {
		steps = append(steps, SetLinkUp{Name: t.Name})
	}
	return steps
}
