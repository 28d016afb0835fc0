package hostnet

import (
	"slices"
	"testing"

	"github.com/google/nftables/expr"
)

// TestEgressChainsNarrowOnly checks the order that makes an egress policy
// narrow what every guest may do and never widen it: restricted guests
// leave forward right after guest-to-guest, before any accept; chain
// egress drops the blocked ranges before the policy; and egress-policy
// ends in an unconditional drop, so nothing (not a full egress-drops,
// whose update then fails) returns to forward's accepts.
func TestEgressChainsNarrowOnly(t *testing.T) {
	table := Ruleset(testConfig())
	comments := func(chain string) []string {
		var out []string
		for _, r := range chainRules(table.Rules, chain) {
			out = append(out, r.Comment)
		}
		return out
	}
	forward := comments("forward")
	i := slices.Index(forward, "banger:egress-restricted")
	if i != 2 || forward[1] != "banger:guest-to-guest" {
		t.Errorf("forward = %v: want egress-restricted right after guest-to-guest, before every accept but replies", forward)
	}
	egress := comments("egress")
	if last := egress[len(egress)-1]; last != "banger:egress-policy" {
		t.Errorf("chain egress ends with %s, want the goto to egress-policy", last)
	}
	if first := slices.Index(egress, "banger:egress-to-private"); first < 0 || first > slices.Index(egress, "banger:egress-policy") {
		t.Errorf("chain egress = %v: want the blocked ranges dropped before the policy", egress)
	}
	policy := chainRules(table.Rules, "egress-policy")
	last := policy[len(policy)-1]
	if len(last.Exprs) != 1 {
		t.Fatalf("egress-policy ends with %s, want an unconditional drop", last)
	}
	if v, ok := last.Exprs[0].(*expr.Verdict); !ok || v.Kind != expr.VerdictDrop {
		t.Errorf("egress-policy ends with %s, want an unconditional drop", last)
	}
}
