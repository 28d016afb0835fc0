package vmstats

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// rawGuest answers meminfo with whatever JSON the test gives, or with an
// error, or not at all (stuck); it records how often it was asked.
type rawGuest struct {
	reply json.RawMessage
	err   error
	stuck bool
	asked chan string
}

func (g *rawGuest) Health(context.Context) (agentproto.Health, error) {
	return agentproto.Health{}, nil
}
func (g *rawGuest) Put(context.Context, agentmux.Transfer, io.Reader) (any, error) {
	return nil, errors.New("no")
}
func (g *rawGuest) Get(context.Context, agentmux.Transfer, io.Writer) error { return errors.New("no") }
func (g *rawGuest) Call(ctx context.Context, method string, _ json.RawMessage) (any, error) {
	g.asked <- method
	if g.stuck {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if g.err != nil {
		return nil, g.err
	}
	return g.reply, nil
}

// session connects a real agentmux host session to h over a pipe.
func session(t *testing.T, h agentmux.Handler) *agentmux.Session {
	t.Helper()
	key := make([]byte, agentmux.KeySize)
	host, agent := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go (&agentmux.Guest{Handler: h, Key: key}).Serve(ctx, agent)
	s, err := agentmux.Upgrade(ctx, host, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// healthOnly is an agent from before meminfo: agentproto serves it
// health and refuses every call.
type healthOnly struct{}

func (healthOnly) Health(context.Context) (agentproto.Health, error) { return agentproto.Health{}, nil }

// The guest's memory report is its word: only a plausible one is shown;
// anything else, an old agent or a stuck one, is unknown (nil), never an
// error.
func TestGuestMemory(t *testing.T) {
	const memMiB = 1024
	i64 := func(n int64) *int64 { return &n }
	tests := []struct {
		name        string
		guest       agentmux.Handler // nil: rawGuest with reply/err/stuck
		reply       string
		err         error
		stuck       bool
		agentErr    error
		total, used *int64
	}{
		{name: "plausible", reply: `{"total_bytes":1000000000,"available_bytes":600000000}`, total: i64(1e9), used: i64(4e8)},
		{name: "nothing available", reply: `{"total_bytes":1000000000,"available_bytes":0}`, total: i64(1e9), used: i64(1e9)},
		{name: "unknown fields ignored", reply: `{"total_bytes":1000,"available_bytes":1000,"extra":"x"}`, total: i64(1000), used: i64(0)},
		{name: "negative total", reply: `{"total_bytes":-1,"available_bytes":0}`},
		{name: "negative available", reply: `{"total_bytes":1000,"available_bytes":-5}`},
		{name: "used more than total", reply: `{"total_bytes":1000,"available_bytes":2000}`},
		{name: "zero", reply: `{"total_bytes":0,"available_bytes":0}`},
		{name: "more than twice the VM's memory", reply: `{"total_bytes":2147483649,"available_bytes":0}`},
		{name: "beyond int64", reply: `{"total_bytes":1e30,"available_bytes":0}`},
		{name: "fraction", reply: `{"total_bytes":1000.5,"available_bytes":0}`},
		{name: "string", reply: `{"total_bytes":"1000","available_bytes":"0"}`},
		{name: "array", reply: `[1000,0]`},
		{name: "null", reply: `null`},
		{name: "guest error", err: errors.New("cannot read /proc/meminfo")},
		{name: "agent from before meminfo", guest: agentmux.Basic(healthOnly{})},
		{name: "stuck guest", stuck: true},
		{name: "no agent", agentErr: errors.New("VM vm is no longer running")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := &rawGuest{reply: json.RawMessage(tt.reply), err: tt.err, stuck: tt.stuck, asked: make(chan string, 1)}
			h := tt.guest
			if h == nil {
				h = raw
			}
			sess := session(t, h)
			s := &Sampler{GuestTimeout: 200 * time.Millisecond}
			st := s.Sample(context.Background(), Target{Name: "vm", MemoryMiB: memMiB, Agent: func(context.Context) (Caller, error) {
				if tt.agentErr != nil {
					return nil, tt.agentErr
				}
				return sess, nil
			}})
			if tt.guest == nil && tt.agentErr == nil {
				if m := <-raw.asked; m != agentproto.MethodMemInfo {
					t.Errorf("the guest was asked %q", m)
				}
			}
			if show(st.GuestMemTotalBytes) != show(tt.total) || show(st.GuestMemUsedBytes) != show(tt.used) {
				t.Errorf("guest memory total %s used %s; want %s and %s", show(st.GuestMemTotalBytes), show(st.GuestMemUsedBytes), show(tt.total), show(tt.used))
			}
		})
	}
}

func show(p *int64) string {
	if p == nil {
		return "nil"
	}
	b, _ := json.Marshal(*p)
	return string(b)
}

func TestCheckMemInfoWithoutConfiguredMemory(t *testing.T) {
	if total, _, err := checkMemInfo(agentproto.MemInfo{TotalBytes: 64 << 30}, 0); err != nil || *total != 64<<30 {
		t.Errorf("64GiB with no configured memory: %v, %v", total, err)
	}
	if _, _, err := checkMemInfo(agentproto.MemInfo{TotalBytes: 1 << 62}, 0); err == nil {
		t.Error("4EiB was believed")
	}
}

// SampleAll samples every VM and returns them in order; a stuck guest
// among them costs the others nothing but leaves its own memory unknown.
func TestSampleAllWithAStuckGuest(t *testing.T) {
	ok := &rawGuest{reply: json.RawMessage(`{"total_bytes":1000,"available_bytes":400}`), asked: make(chan string, 100)}
	stuck := &rawGuest{stuck: true, asked: make(chan string, 100)}
	okSess, stuckSess := session(t, ok), session(t, stuck)
	var targets []Target
	for i := 0; i < 40; i++ {
		sess := okSess
		if i%10 == 3 {
			sess = stuckSess
		}
		targets = append(targets, Target{Name: string(rune('a' + i%26)), MemoryMiB: 1, Agent: func(context.Context) (Caller, error) { return sess, nil }})
	}
	s := &Sampler{GuestTimeout: 300 * time.Millisecond, Parallel: 8}
	got := s.SampleAll(context.Background(), targets)
	if len(got) != len(targets) {
		t.Fatalf("%d stats for %d VMs", len(got), len(targets))
	}
	for i, st := range got {
		wantKnown := i%10 != 3
		if st.VM != targets[i].Name || (st.GuestMemUsedBytes != nil) != wantKnown {
			t.Errorf("VM %d: %s used %s, want %s known: %v", i, st.VM, show(st.GuestMemUsedBytes), targets[i].Name, wantKnown)
		}
		if wantKnown && *st.GuestMemUsedBytes != 600 {
			t.Errorf("VM %d: used %d, want 600", i, *st.GuestMemUsedBytes)
		}
	}
}
