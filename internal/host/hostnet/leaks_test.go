package hostnet

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLeaks(t *testing.T) {
	cfg := planConfig() // pool size 2
	type leak struct{ Kind, Name string }
	for _, tc := range []struct {
		name   string
		st     State
		leased []string
		want   []leak
	}{
		{name: "converged host", st: converged()},
		{name: "nothing at all", st: State{}},
		{
			name:   "leased TAPs beyond the pool size are not leaks",
			st:     with(converged(), func(s *State) { s.TAPs = append(s.TAPs, healthyTAP(2), healthyTAP(3)) }),
			leased: []string{"tap-pool-0", "tap-pool-3"},
		},
		{
			name: "TAPs in use are not leaks",
			st: with(converged(), func(s *State) {
				s.TAPs = append(s.TAPs, healthyTAP(2))
				s.TAPs[2].InUse = true
			}),
		},
		{
			name: "idle TAPs beyond the pool size",
			st:   with(converged(), func(s *State) { s.TAPs = append(s.TAPs, healthyTAP(2), healthyTAP(5)) }),
			want: []leak{{"tap", "tap-pool-2"}, {"tap", "tap-pool-5"}},
		},
		{
			name:   "a detached TAP, leased or not",
			st:     with(converged(), func(s *State) { s.TAPs[0].Master = ""; s.TAPs[1].Master = "docker0" }),
			leased: []string{"tap-pool-1"},
			want:   []leak{{"tap", "tap-pool-0"}, {"tap", "tap-pool-1"}},
		},
		{
			name: "a link with a pool name that is not a TAP",
			st:   with(converged(), func(s *State) { s.TAPs = append(s.TAPs, TAPState{Name: "tap-pool-9", N: 9, Kind: "veth"}) }),
			want: []leak{{"tap", "tap-pool-9"}},
		},
		{
			name: "foreign rule and chain in banger's table",
			st: with(converged(), func(s *State) {
				tb := *s.Table
				tb.Chains = append(append([]NFTChain(nil), tb.Chains...), NFTChain{Name: "extra", Type: "filter"})
				tb.Rules = append(append([]NFTRule(nil), tb.Rules...), NFTRule{Chain: "input", Handle: 42, Exprs: verdict(0)})
				s.Table = &tb
			}),
			want: []leak{{"nft-chain", "inet banger extra"}, {"nft-rule", "inet banger chain input: rule handle 42 without a banger comment"}},
		},
		{
			name: "a rule of an earlier config",
			st: with(converged(), func(s *State) {
				tb := *s.Table
				tb.Rules = append([]NFTRule(nil), tb.Rules...)
				tb.Rules[0].Exprs = matchSaddr(mustPrefix("10.9.0.0/24"))
				tb.Rules[0].Text, tb.Rules[0].Handle = "", 7
				s.Table = &tb
			}),
			want: []leak{{"nft-rule", `inet banger chain prerouting: rule "banger:egress-dns" (handle 7)`}},
		},
		{
			name: "a binding of an earlier subnet, and one of a TAP that is gone",
			st: with(converged(), func(s *State) {
				set := &s.AntiSpoof.Sets[0]
				set.Elements = append(set.Elements, bogus.key(), binding("tap-pool-5").key())
			}),
			want: []leak{
				{"nft-binding", "bridge banger tap-pool-0 . 02:b4:ac:1e:00:09 . 172.30.0.9"},
				{"nft-binding", "bridge banger tap-pool-5 . 02:b4:ac:1e:00:07 . 172.30.0.7"},
			},
		},
		{
			name: "a set banger does not make",
			st: with(converged(), func(s *State) {
				s.AntiSpoof.Sets = append(s.AntiSpoof.Sets, NFTSet{Name: "extra", KeyLen: 4})
			}),
			want: []leak{{"nft-set", "bridge banger extra"}},
		},
		{
			name: "missing rules are not leaks",
			st: with(converged(), func(s *State) {
				tb := *s.Table
				tb.Rules = tb.Rules[:2]
				s.Table = &tb
			}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []leak
			for _, l := range Leaks(cfg, tc.st, tc.leased) {
				got = append(got, leak{l.Kind, l.Name})
				if l.Reason == "" || l.Fix == "" {
					t.Errorf("leak %v lacks a reason or a fix", l)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Leaks (-want +got):\n%s", diff)
			}
		})
	}
}
