package egress

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
)

func TestParse(t *testing.T) {
	presets := map[string][]string{"agents": {"api.anthropic.com:443", "*.npmjs.org"}, "loop": {"@agents"}}
	tests := []struct {
		name string
		in   api.EgressPolicy
		want string // Policy.String(), or the error's text
		err  bool
	}{
		{"zero is nat", api.EgressPolicy{}, "nat", false},
		{"none", api.EgressPolicy{Mode: "none"}, "none", false},
		{"allowlist with a preset", api.EgressPolicy{Mode: "allow", Allow: []string{"GitHub.com.", "@agents", "203.0.113.9", "198.51.100.0/24:22"}},
			"github.com,api.anthropic.com:443,*.npmjs.org,203.0.113.9,198.51.100.0/24:22", false},
		{"host bits masked", api.EgressPolicy{Mode: "allow", Allow: []string{"10.1.2.3/8"}}, "10.0.0.0/8", false},
		{"unknown mode", api.EgressPolicy{Mode: "open"}, `egress mode "open" is not one of`, true},
		{"nat with a list", api.EgressPolicy{Mode: "nat", Allow: []string{"a.com"}}, "takes no allowlist", true},
		{"allow without a list", api.EgressPolicy{Mode: "allow"}, "needs an allowlist", true},
		{"unknown preset", api.EgressPolicy{Mode: "allow", Allow: []string{"@web"}}, `egress preset "@web" is not defined: name one of @agents, @loop`, true},
		{"preset naming a preset", api.EgressPolicy{Mode: "allow", Allow: []string{"@loop"}}, "presets hold entries", true},
		{"two ports in one entry", api.EgressPolicy{Mode: "allow", Allow: []string{"a.com:80,443"}}, "repeat the entry", true},
		{"port zero", api.EgressPolicy{Mode: "allow", Allow: []string{"a.com:0"}}, "from 1 to 65535", true},
		{"single label", api.EgressPolicy{Mode: "allow", Allow: []string{"localhost"}}, "single label", true},
		{"bare wildcard", api.EgressPolicy{Mode: "allow", Allow: []string{"*.com"}}, "single label", true},
		{"IPv6", api.EgressPolicy{Mode: "allow", Allow: []string{"2001:db8::/32"}}, "is not a number", true},
		{"bad character", api.EgressPolicy{Mode: "allow", Allow: []string{"a b.com"}}, "domain names are letters", true},
		{"empty host", api.EgressPolicy{Mode: "allow", Allow: []string{":443"}}, "names no domain", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.in, presets)
			switch {
			case tt.err && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want it to hold %q", err, tt.want)
			case !tt.err && err != nil:
				t.Errorf("refused: %v", err)
			case !tt.err && p.String() != tt.want:
				t.Errorf("parsed %q, want %q", p.String(), tt.want)
			}
		})
	}
}

func TestAllowsName(t *testing.T) {
	p, err := Parse(api.EgressPolicy{Mode: "allow", Allow: []string{"github.com:443", "github.com:22", "*.npmjs.org", "203.0.113.0/24"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		ok    bool
		ports string
	}{
		{"github.com", true, "[22 443]"},
		{"api.github.com", false, "[]"},
		{"registry.npmjs.org", true, "[]"},
		{"npmjs.org", false, "[]"},
		{"evilnpmjs.org", false, "[]"},
		{"example.com", false, "[]"},
	}
	for _, tt := range tests {
		ok, ports := p.AllowsName(tt.name)
		if ok != tt.ok || fmt.Sprint(ports) != tt.ports {
			t.Errorf("AllowsName(%q) = %v %v, want %v %s", tt.name, ok, ports, tt.ok, tt.ports)
		}
	}
	if ok, ports := (Policy{Mode: api.EgressNAT}).AllowsName("anything.example"); !ok || ports != nil {
		t.Errorf("nat allows %v %v", ok, ports)
	}
}
