package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
)

// TestEgressCommand: what vm egress sends and prints, refusals from a
// hostile guest's DNS queries escaped.
func TestEgressCommand(t *testing.T) {
	d := startFakeDaemon(t)
	var put api.EgressPolicy
	policy := api.EgressPolicy{Mode: api.EgressAllow, Allow: []string{"github.com:443", "@agents"}}
	d.Mux.HandleFunc("GET /v1/vms/demo/egress", func(w http.ResponseWriter, r *http.Request) {
		st := api.EgressStatus{Policy: policy}
		if r.URL.Query().Get("log") == "true" {
			st.Drops = []api.EgressDrop{
				{Name: "evil" + hostileTitle + ".example", Proto: "dns", Count: 3, Last: time.Now().Add(-time.Minute)},
				{Address: "198.51.100.20", Port: 443, Proto: "tcp", Count: 7, Last: time.Now()},
			}
		}
		writeJSON(w, http.StatusOK, st)
	})
	d.Mux.HandleFunc("PUT /v1/vms/demo/egress", func(w http.ResponseWriter, r *http.Request) {
		put = api.EgressPolicy{}
		json.NewDecoder(r.Body).Decode(&put)
		if len(put.Allow) == 1 && put.Allow[0] == "open" {
			writeAPIError(w, http.StatusBadRequest, api.Error{Code: api.CodeInvalidArgument, Field: "egress", Message: `egress entry "open": "open" is a single label`})
			return
		}
		writeJSON(w, http.StatusOK, api.EgressStatus{Policy: put})
	})
	tests := []struct {
		name    string
		args    []string
		want    []string
		wantPut *api.EgressPolicy
	}{
		{"show", []string{"vm", "egress", "demo"}, []string{"demo: egress github.com:443,@agents"}, nil},
		{"log", []string{"vm", "egress", "demo", "--log"}, []string{
			`evil\x1b]0;pwned\x07.example (name refused) - dns 3 1m ago`,
			"198.51.100.20 443 tcp 7 0s ago",
		}, nil},
		{"none", []string{"vm", "egress", "demo", "none"}, []string{"demo: egress none"}, &api.EgressPolicy{Mode: api.EgressNone}},
		{"allowlist", []string{"vm", "egress", "demo", " a.example , *.b.example:443,"}, []string{"demo: egress a.example,*.b.example:443"},
			&api.EgressPolicy{Mode: api.EgressAllow, Allow: []string{"a.example", "*.b.example:443"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put = api.EgressPolicy{}
			stdout, stderr, code := d.run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(stdout, "\n") {
				lines[strings.Join(strings.Fields(l), " ")] = true
			}
			for _, w := range tt.want {
				if !lines[w] {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if strings.Contains(stdout, hostileTitle) {
				t.Errorf("raw escape sequence in stdout: %q", stdout)
			}
			if tt.wantPut != nil && (put.Mode != tt.wantPut.Mode || strings.Join(put.Allow, "|") != strings.Join(tt.wantPut.Allow, "|")) {
				t.Errorf("sent %+v, want %+v", put, *tt.wantPut)
			}
		})
	}
	// The daemon's refusal names the argument, not a request field.
	_, stderr, code := d.run(t, "vm", "egress", "demo", "open")
	if code == 0 || !strings.Contains(stderr, `egress entry "open": "open" is a single label`) {
		t.Errorf("bad policy: exit %d %q", code, stderr)
	}
}
