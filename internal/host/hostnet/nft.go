package hostnet

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	// github.com/google/nftables speaks nf_tables netlink directly, so
	// bangerd needs no nft binary and the tests can point a connection at
	// a throwaway network namespace (nftables.WithNetNSFd).
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// commentPrefix starts the comment of every rule banger writes.
const commentPrefix = "banger:"

// NFTable is an nftables table as data: what Ruleset or AntiSpoof wants,
// or what Observe found.
type NFTable struct {
	Name string
	// Family is "inet" (Ruleset) or "bridge" (AntiSpoof); "" means inet.
	Family string
	Chains []NFTChain
	Rules  []NFTRule // in evaluation order within each chain
	Sets   []NFTSet
}

// NFTSet is a named set and its elements.
type NFTSet struct {
	Name string
	// Type is the key type in nft syntax, e.g. "ifname . ether_addr .
	// ipv4_addr"; Observe leaves it empty.
	Type string
	// KeyLen is the key's length in bytes, padding included.
	KeyLen uint32
	// Interval, Timeout and Dynamic are the set's flags (interval,
	// timeout, dynamic); DefaultTimeout and Size its timeout and size
	// (0: none). Observe leaves them unset.
	Interval, Timeout, Dynamic bool
	DefaultTimeout             time.Duration
	Size                       uint32
	// Elements are the keys, as the kernel holds them (Observe). A
	// wanted set has none: Plan adds its elements with their own steps.
	Elements [][]byte
}

// family returns the table's nftables family, defaulted.
func (t NFTable) family() nftables.TableFamily {
	if t.Family == "bridge" {
		return nftables.TableFamilyBridge
	}
	return nftables.TableFamilyINet
}

func (t NFTable) familyName() string {
	if t.Family == "" {
		return "inet"
	}
	return t.Family
}

// NFTChain is a base chain.
type NFTChain struct {
	Name     string
	Type     string // "filter", "nat"
	Hook     string // "input", "forward", "postrouting", ...; "" for a regular chain
	Priority int32
	Policy   string // "accept", "drop"; "" when the kernel reports none
}

// NFTRule is one rule of a chain.
type NFTRule struct {
	Chain string
	// Comment is the rule's nftables comment; banger's rules carry
	// "banger:<name>".
	Comment string
	// Text is the rule in nft syntax, for plans and logs. Observe leaves
	// it empty: the kernel does not keep it.
	Text  string
	Exprs []expr.Any
	// Handle is the kernel's handle of an observed rule (0 when planned).
	Handle uint64
}

func (r NFTRule) String() string {
	if r.Text != "" {
		return fmt.Sprintf("chain %s: %s comment %q", r.Chain, r.Text, r.Comment)
	}
	if r.Comment != "" {
		return fmt.Sprintf("chain %s: rule %q (handle %d)", r.Chain, r.Comment, r.Handle)
	}
	return fmt.Sprintf("chain %s: rule handle %d without a banger comment", r.Chain, r.Handle)
}

// same reports whether two rules do the same thing in the same chain.
func (r NFTRule) same(o NFTRule) bool {
	return r.Chain == o.Chain && r.Comment == o.Comment && reflect.DeepEqual(r.Exprs, o.Exprs)
}

// Ruleset returns the table banger wants for cfg: guest egress NAT and
// isolation. The package documentation shows it in nft syntax.
func Ruleset(cfg Config) NFTable {
	br, subnet := cfg.Bridge, cfg.Subnet.Masked()
	rule := func(chain, name, text string, exprs ...[]expr.Any) NFTRule {
		return NFTRule{Chain: chain, Comment: commentPrefix + name, Text: text, Exprs: slices.Concat(exprs...)}
	}
	q := fmt.Sprintf("%q", br)
	fromGuests := matchIfname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br)
	// dns lets guests reach their resolvers, in chain (forward for a
	// resolver elsewhere, input for one on the host itself).
	dns := func(chain string) []NFTRule {
		var out []NFTRule
		for _, a := range cfg.DNS {
			for _, proto := range []struct {
				name string
				num  byte
			}{{"udp", unix.IPPROTO_UDP}, {"tcp", unix.IPPROTO_TCP}} {
				out = append(out, rule(chain, "guest-dns",
					fmt.Sprintf("iifname %s ip daddr %v %s dport 53 accept", q, a, proto.name),
					fromGuests, matchDaddr(netip.PrefixFrom(a, 32)), matchDport(proto.num, 53), verdict(expr.VerdictAccept)))
			}
		}
		return out
	}

	egressPre, egressFwd, egressIn, egress, egressPolicy := egressRules(cfg, rule)
	var forward []NFTRule
	forward = append(forward,
		rule("forward", "replies-to-guests",
			fmt.Sprintf("oifname %s ct state established,related accept", q),
			matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), matchEstablished(expr.CmpOpNeq), verdict(expr.VerdictAccept)),
		rule("forward", "guest-to-guest",
			fmt.Sprintf("iifname %s oifname %s drop", q, q),
			fromGuests, matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), verdict(expr.VerdictDrop)),
	)
	forward = append(forward, egressFwd...)
	forward = append(forward, dns("forward")...)
	for _, p := range cfg.AllowCIDRs {
		forward = append(forward, rule("forward", "guest-allowed",
			fmt.Sprintf("iifname %s ip saddr %v ip daddr %v accept", q, subnet, p),
			fromGuests, matchSaddr(subnet), matchDaddr(p), verdict(expr.VerdictAccept)))
	}
	for _, p := range BlockedPrefixes {
		forward = append(forward, rule("forward", "guest-to-private",
			fmt.Sprintf("iifname %s ip daddr %v drop", q, p),
			fromGuests, matchDaddr(p), verdict(expr.VerdictDrop)))
	}
	forward = append(forward,
		rule("forward", "guest-egress",
			fmt.Sprintf("iifname %s oifname != %s ip saddr %v accept", q, q, subnet),
			fromGuests, matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), matchSaddr(subnet), verdict(expr.VerdictAccept)),
		rule("forward", "inbound-to-guests",
			fmt.Sprintf("oifname %s drop", q),
			matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), verdict(expr.VerdictDrop)),
		rule("forward", "guest-other",
			fmt.Sprintf("iifname %s drop", q),
			fromGuests, verdict(expr.VerdictDrop)),
	)

	input := []NFTRule{
		rule("input", "replies-from-host",
			fmt.Sprintf("iifname %s ct state established,related accept", q),
			fromGuests, matchEstablished(expr.CmpOpNeq), verdict(expr.VerdictAccept)),
		rule("input", "guest-ping",
			fmt.Sprintf("iifname %s icmp type echo-request accept", q),
			fromGuests, matchICMPEchoRequest(), verdict(expr.VerdictAccept)),
	}
	input = append(input, egressIn...)
	input = append(input, dns("input")...)
	input = append(input, rule("input", "guest-to-host",
		fmt.Sprintf("iifname %s drop", q),
		fromGuests, verdict(expr.VerdictDrop)))

	// Only the owner (and root, who can rewrite this table anyway) opens
	// connections to guests: replies and kernel-made packets (no socket,
	// so no skuid) pass.
	uid := cfg.ownerUID()
	notOwner := matchSKUIDNot(uid)
	ownerText := fmt.Sprintf("meta skuid != %d", uid)
	if uid != 0 {
		notOwner = append(notOwner, matchSKUIDNot(0)...)
		ownerText += " meta skuid != 0"
	}
	output := []NFTRule{
		rule("output", "owner-only",
			fmt.Sprintf("oifname %s ct state != established,related %s drop", q, ownerText),
			matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), matchEstablished(expr.CmpOpEq), notOwner, verdict(expr.VerdictDrop)),
	}

	return NFTable{
		Name:   cfg.table(),
		Family: "inet",
		Chains: []NFTChain{
			{Name: "prerouting", Type: "nat", Hook: "prerouting", Priority: -100, Policy: "accept"},  // priority dstnat
			{Name: "postrouting", Type: "nat", Hook: "postrouting", Priority: 100, Policy: "accept"}, // priority srcnat
			{Name: "forward", Type: "filter", Hook: "forward", Priority: 0, Policy: "accept"},        // priority filter
			{Name: "input", Type: "filter", Hook: "input", Priority: 0, Policy: "accept"},
			{Name: "output", Type: "filter", Hook: "output", Priority: 0, Policy: "accept"},
			{Name: "egress"}, // regular chains, reached by jump and goto
			{Name: "egress-policy"},
		},
		Sets: egressSets(),
		Rules: slices.Concat(egressPre, []NFTRule{
			rule("postrouting", "egress-nat",
				fmt.Sprintf("ip saddr %v oifname != %s masquerade", subnet, q),
				matchSaddr(subnet), matchIfname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), masquerade()),
		}, forward, input, output, egress, egressPolicy),
	}
}

// ifname is an interface name as nft compares it: NUL-padded to IFNAMSIZ.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func matchIfname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifname(name)},
	}
}

func matchIPv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// matchSaddr matches IPv4 packets whose source is in p (ip saddr p).
func matchSaddr(p netip.Prefix) []expr.Any { return matchAddr(12, p) }

// matchDaddr matches IPv4 packets whose destination is in p (ip daddr p).
func matchDaddr(p netip.Prefix) []expr.Any { return matchAddr(16, p) }

// matchAddr matches the IPv4 address at offset of the IP header against p;
// like nft, it leaves out the mask of a /32.
func matchAddr(offset uint32, p netip.Prefix) []expr.Any {
	p = p.Masked()
	network := p.Addr().As4()
	out := append(matchIPv4(), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4})
	if p.Bits() < 32 {
		mask := make([]byte, 4)
		for i := range p.Bits() {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)})
	}
	return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: network[:]})
}

// matchDport matches transport protocol proto (udp, tcp) to port.
func matchDport(proto byte, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// matchEstablished matches packets of established or related connections
// (op CmpOpNeq) or of any other ct state (op CmpOpEq: new, invalid,
// untracked).
func matchEstablished(op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: make([]byte, 4)},
	}
}

// matchSKUIDNot matches packets whose socket does not belong to uid. A
// packet without a socket matches no skuid test, so the rule is skipped.
func matchSKUIDNot(uid uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(uid)},
	}
}

func matchICMPEchoRequest() []expr.Any {
	return append(matchIPv4(),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{8}}, // echo-request
	)
}

func masquerade() []expr.Any { return []expr.Any{&expr.Masq{}} }

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

// tableMatches reports whether the observed table is exactly the wanted one.
func tableMatches(want NFTable, got *NFTable) bool {
	if got == nil || got.Name != want.Name || got.familyName() != want.familyName() || len(got.Rules) != len(want.Rules) || len(got.Sets) != len(want.Sets) {
		return false
	}
	for _, ws := range want.Sets {
		if i := slices.IndexFunc(got.Sets, ws.sameDecl); i < 0 {
			return false
		}
	}
	byName := func(a, b NFTChain) int { return strings.Compare(a.Name, b.Name) }
	if !slices.Equal(slices.SortedFunc(slices.Values(got.Chains), byName), slices.SortedFunc(slices.Values(want.Chains), byName)) {
		return false
	}
	for _, c := range want.Chains {
		w, g := chainRules(want.Rules, c.Name), chainRules(got.Rules, c.Name)
		if len(w) != len(g) {
			return false
		}
		for i := range w {
			if !w[i].same(g[i]) {
				return false
			}
		}
	}
	return true
}

// sameDecl reports whether two sets have the same name and key length;
// their elements are planned on their own (bindingSteps).
func (s NFTSet) sameDecl(o NFTSet) bool { return s.Name == o.Name && s.KeyLen == o.KeyLen }

// chainRules returns the rules of one chain, in order.
func chainRules(rules []NFTRule, chain string) []NFTRule {
	var out []NFTRule
	for _, r := range rules {
		if r.Chain == chain {
			out = append(out, r)
		}
	}
	return out
}

var hookNames = map[nftables.ChainHook]string{
	*nftables.ChainHookPrerouting:  "prerouting",
	*nftables.ChainHookInput:       "input",
	*nftables.ChainHookForward:     "forward",
	*nftables.ChainHookOutput:      "output",
	*nftables.ChainHookPostrouting: "postrouting",
}

func hookByName(name string) *nftables.ChainHook {
	for h, n := range hookNames {
		if n == name {
			return nftables.ChainHookRef(h)
		}
	}
	return nil
}

// chainFromKernel converts a chain nftables read back.
func chainFromKernel(c *nftables.Chain) NFTChain {
	out := NFTChain{Name: c.Name, Type: string(c.Type)}
	if c.Hooknum != nil {
		out.Hook = hookNames[*c.Hooknum]
		if out.Hook == "" {
			out.Hook = fmt.Sprintf("hook-%d", *c.Hooknum)
		}
	}
	if c.Priority != nil {
		out.Priority = int32(*c.Priority)
	}
	if c.Policy != nil {
		switch *c.Policy {
		case nftables.ChainPolicyAccept:
			out.Policy = "accept"
		case nftables.ChainPolicyDrop:
			out.Policy = "drop"
		}
	}
	return out
}

// ruleFromKernel converts a rule nftables read back.
func ruleFromKernel(chain string, r *nftables.Rule) NFTRule {
	comment, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	// A counter's values change with traffic, not with the rule: compare
	// rules without them.
	for _, e := range r.Exprs {
		if d, ok := e.(*expr.Dynset); ok {
			for i, x := range d.Exprs {
				if _, ok := x.(*expr.Counter); ok {
					d.Exprs[i] = &expr.Counter{}
				}
			}
		}
	}
	return NFTRule{Chain: chain, Comment: comment, Exprs: r.Exprs, Handle: r.Handle}
}

// isBangerRule reports whether an observed rule carries banger's tag.
func isBangerRule(r NFTRule) bool { return strings.HasPrefix(r.Comment, commentPrefix) }

// setChunk is how many set elements one netlink batch carries: a batch
// is sent in one message, which must fit the socket's send buffer (about
// 200 KiB by default; an element of guest-addrs takes about 50 bytes).
const setChunk = 1024

// writeTable replaces the table with t on c in one atomic batch: add (a
// no-op when it exists), delete, and create it again with its sets,
// chains and rules. The sets are written empty: their elements are
// planned on their own (Bind), setChunk at a time.
func writeTable(c *nftables.Conn, t NFTable) error {
	table := &nftables.Table{Name: t.Name, Family: t.family()}
	c.AddTable(table)
	c.DelTable(table)
	c.AddTable(table)
	for _, s := range t.Sets {
		ks, err := setKeyType(s)
		if err != nil {
			return err
		}
		set := &nftables.Set{Table: table, Name: s.Name, KeyType: ks, Concatenation: len(nftables.ConcatSetTypeElements(ks)) > 1,
			Interval: s.Interval, HasTimeout: s.Timeout, Dynamic: s.Dynamic, Timeout: s.DefaultTimeout, Size: s.Size}
		if err := c.AddSet(set, nil); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	chains := make(map[string]*nftables.Chain, len(t.Chains))
	for _, ch := range t.Chains {
		kc := &nftables.Chain{Name: ch.Name, Table: table, Type: nftables.ChainType(ch.Type)}
		if ch.Hook != "" {
			prio := nftables.ChainPriority(ch.Priority)
			kc.Hooknum = hookByName(ch.Hook)
			kc.Priority = &prio
			policy := nftables.ChainPolicyAccept
			if ch.Policy == "drop" {
				policy = nftables.ChainPolicyDrop
			}
			kc.Policy = &policy
		}
		chains[ch.Name] = c.AddChain(kc)
	}
	for _, r := range t.Rules {
		c.AddRule(&nftables.Rule{
			Table:    table,
			Chain:    chains[r.Chain],
			Exprs:    r.Exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment),
		})
	}
	return c.Flush()
}

// setKeyType is the nftables key type of a set banger writes.
func setKeyType(s NFTSet) (nftables.SetDatatype, error) {
	switch s.Type {
	case "ifname . ether_addr . ipv4_addr":
		return nftables.ConcatSetType(nftables.TypeIFName, nftables.TypeEtherAddr, nftables.TypeIPAddr)
	case "ipv4_addr":
		return nftables.TypeIPAddr, nil
	case "ipv4_addr . ipv4_addr":
		return nftables.ConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr)
	case "ipv4_addr . ipv4_addr . inet_service":
		return nftables.ConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr, nftables.TypeInetService)
	case "ipv4_addr . ipv4_addr . inet_proto . inet_service":
		return nftables.ConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	}
	return nftables.SetDatatype{}, fmt.Errorf("set %s: unknown key type %q", s.Name, s.Type)
}

// queueDeleteTable queues the removal of table name of family; adding it
// first makes the batch succeed whether or not it exists.
func queueDeleteTable(c *nftables.Conn, name, family string) {
	table := &nftables.Table{Name: name, Family: NFTable{Family: family}.family()}
	c.AddTable(table)
	c.DelTable(table)
}
