package agentproto

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// opsHandler is a full agent that records what it was asked.
type opsHandler struct {
	open     map[int]bool
	keys     []string
	probed   []int
	poweroff int
}

func (o *opsHandler) Health(context.Context) (Health, error) { return Health{Hostname: "g"}, nil }
func (o *opsHandler) ProbeTCP(_ context.Context, port int) ProbeResult {
	o.probed = append(o.probed, port)
	if o.open[port] {
		return ProbeResult{Port: port, Open: true}
	}
	return ProbeResult{Port: port, Error: "connection refused"}
}
func (o *opsHandler) HostKeys(context.Context) ([]string, error) { return o.keys, nil }
func (o *opsHandler) PowerOff(context.Context) error             { o.poweroff++; return nil }

// healthOnly is an agent that serves no guest operations.
type healthOnly struct{}

func (healthOnly) Health(context.Context) (Health, error) { return Health{}, nil }

func TestCall(t *testing.T) {
	tests := []struct {
		name, method, params string
		want                 any
		wantCode             string // an *Error with this code
		wantUnknown          bool   // ErrUnknownMethod
		wantProbed           []int
		wantPoweroff         int
	}{
		{name: "open port", method: TypeProbeTCP, params: `{"port":4096}`, want: ProbeResult{Port: 4096, Open: true}, wantProbed: []int{4096}},
		{name: "closed port", method: TypeProbeTCP, params: `{"port":22}`, want: ProbeResult{Port: 22, Error: "connection refused"}, wantProbed: []int{22}},
		{name: "port out of range", method: TypeProbeTCP, params: `{"port":70000}`, wantCode: CodeBadRequest},
		{name: "port zero", method: TypeProbeTCP, params: `{}`, wantCode: CodeBadRequest},
		{name: "params not JSON", method: TypeProbeTCP, params: `port=22`, wantCode: CodeBadRequest},
		{name: "host keys", method: TypeHostKeys, want: []string{"ssh-ed25519 AAAA root@banger"}},
		{name: "poweroff", method: TypePowerOff, want: nil, wantPoweroff: 1},
		{name: "unknown", method: "reboot", wantUnknown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &opsHandler{open: map[int]bool{4096: true}, keys: []string{"ssh-ed25519 AAAA root@banger"}}
			got, err := Call(context.Background(), h, tt.method, json.RawMessage(tt.params))
			var perr *Error
			switch {
			case tt.wantCode != "":
				if !errors.As(err, &perr) || perr.Code != tt.wantCode {
					t.Fatalf("Call = %v, %v; want an error coded %s", got, err, tt.wantCode)
				}
			case tt.wantUnknown:
				if !errors.Is(err, ErrUnknownMethod) {
					t.Fatalf("Call = %v, %v; want ErrUnknownMethod", got, err)
				}
			case err != nil:
				t.Fatal(err)
			default:
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tt.wantProbed, h.probed); diff != "" || h.poweroff != tt.wantPoweroff {
				t.Errorf("probed (-want +got):\n%s; poweroffs %d, want %d", diff, h.poweroff, tt.wantPoweroff)
			}
		})
	}
}

// An agent that only answers health refuses the guest operations clearly.
func TestCallWithoutGuestOps(t *testing.T) {
	for _, m := range []string{TypeProbeTCP, TypeHostKeys, TypePowerOff} {
		_, err := Call(context.Background(), healthOnly{}, m, json.RawMessage(`{"port":22}`))
		if !errors.Is(err, ErrUnknownMethod) || !strings.Contains(err.Error(), "serves no guest operations") {
			t.Errorf("Call(%s) on a health-only agent = %v", m, err)
		}
	}
}

// TestWireShapes pins the JSON both ends read: an agent and a host of
// different builds must agree on it.
func TestWireShapes(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{Health{Protocol: 2, AgentVersion: "v0.1.0", BuildID: "abc", Hostname: "quiet-otter", Kernel: "6.1.0", UptimeMS: 42, Root: "ext4", RootMount: "/dev/vdb", Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Payload: "applied"},
			`{"protocol":2,"agent_version":"v0.1.0","build_id":"abc","hostname":"quiet-otter","kernel":"6.1.0","uptime_ms":42,"root":"ext4","root_mount":"/dev/vdb","time":"2025-01-02T03:04:05Z","payload":"applied"}`},
		{ProbeResult{Port: 22, Error: "refused"}, `{"port":22,"open":false,"error":"refused"}`},
		{&Error{Code: CodeUnknownType, Message: "no"}, `{"code":"unknown_type","message":"no"}`},
		{ProbeParams{Port: 4096}, `{"port":4096}`},
		{SessionSignal{Session: "s", Signal: "TERM"}, `{"session":"s","signal":"TERM"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.v)
		if err != nil || string(b) != tt.want {
			t.Errorf("json of %T = %s, %v; want %s", tt.v, b, err, tt.want)
		}
	}
}
