package agentlink

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

type health struct{}

func (health) Health(context.Context) (agentproto.Health, error) {
	return agentproto.Health{Hostname: "guest"}, nil
}

// guest dials a fresh in-memory agent per call and counts the dials; the
// agent's end of the last connection is kept so a test can break it.
type guest struct {
	dials atomic.Int32
	last  atomic.Pointer[net.Conn]
}

// key is the test VMs' agent key.
var key = []byte("0123456789abcdef0123456789abcdef")

func (g *guest) dial(ctx context.Context) (Channel, error) {
	g.dials.Add(1)
	host, agent := net.Pipe()
	g.last.Store(&agent)
	go agentmux.BasicGuest(health{}, key).Serve(context.Background(), agent)
	return Channel{Conn: host, Key: key, VM: "dev"}, nil
}

func TestPoolReusesAndReconnects(t *testing.T) {
	var p Pool
	g := &guest{}
	ctx := context.Background()
	s1, err := p.Get(ctx, "vm1", g.dial)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := s1.Health(ctx); err != nil || h.Hostname != "guest" {
		t.Fatalf("health over the pooled session: %+v %v", h, err)
	}
	s2, err := p.Get(ctx, "vm1", g.dial)
	if err != nil || s2 != s1 || g.dials.Load() != 1 {
		t.Fatalf("second Get: same session %v, dials %d, err %v", s2 == s1, g.dials.Load(), err)
	}

	// The channel breaks (a VM reboot, a guest that went away): the next
	// Get connects again.
	(*g.last.Load()).Close()
	select {
	case <-s1.Done():
	case <-time.After(time.Minute):
		t.Fatal("the session did not notice its channel closed")
	}
	s3, err := p.Get(ctx, "vm1", g.dial)
	if err != nil || s3 == s1 || g.dials.Load() != 2 {
		t.Fatalf("Get after a break: new session %v, dials %d, err %v", s3 != s1, g.dials.Load(), err)
	}
	if _, err := s3.Health(ctx); err != nil {
		t.Fatalf("health after reconnect: %v", err)
	}

	// Drop closes the session; other VMs are untouched.
	other, err := p.Get(ctx, "vm2", g.dial)
	if err != nil {
		t.Fatal(err)
	}
	p.Drop("vm1")
	select {
	case <-s3.Done():
	case <-time.After(time.Minute):
		t.Fatal("Drop did not close the session")
	}
	if _, err := other.Health(ctx); err != nil {
		t.Fatalf("vm2 after dropping vm1: %v", err)
	}
	p.Close()
	select {
	case <-other.Done():
	case <-time.After(time.Minute):
		t.Fatal("Close did not close vm2's session")
	}
}

func TestPoolReportsSilentAndOldAgents(t *testing.T) {
	p := Pool{AttemptTimeout: 200 * time.Millisecond}
	ctx := context.Background()
	// A guest that never answers (still booting): attempts time out, and
	// the next one waits on the same channel instead of dialing again;
	// Drop closes it.
	var dials atomic.Int32
	closed := make(chan struct{})
	silent := func(context.Context) (Channel, error) {
		dials.Add(1)
		host, agent := net.Pipe()
		go func() { io.Copy(io.Discard, agent); close(closed) }()
		return Channel{Conn: host, Key: key, VM: "a"}, nil
	}
	for range 2 {
		if _, err := p.Get(ctx, "a", silent); err == nil || err.Error() != "the guest agent did not answer within 200ms" {
			t.Errorf("silent agent: %v", err)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("a booting guest was dialed %d times, want once", n)
	}
	p.Drop("a")
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Error("Drop left the pending channel open")
	}
	// Agents that cannot authenticate: the error names the VM and says
	// to restart it.
	serve := func(g *agentmux.Guest) DialFunc {
		return func(context.Context) (Channel, error) {
			host, agent := net.Pipe()
			go g.Serve(context.Background(), agent)
			return Channel{Conn: host, Key: key, VM: "b"}, nil
		}
	}
	// An agent of protocol 1 knew no upgrade: it answered the request
	// with these bytes.
	v1 := func(context.Context) (Channel, error) {
		host, agent := net.Pipe()
		go func() {
			defer agent.Close()
			r := bufio.NewReader(agent)
			for {
				line, err := r.ReadBytes('\n')
				if err != nil {
					return
				}
				var req struct{ ID, Type string }
				if json.Unmarshal(line, &req) != nil || req.ID == "" {
					continue
				}
				reply := `{"id":"` + req.ID + `","type":"` + req.Type + `","error":{"code":"unknown_type","message":"unknown request type \"` + req.Type + `\": this agent (protocol 1) supports hello, health, probe_tcp, host_keys, poweroff; update banger-agent in the image"}}` + "\n"
				if _, err := io.WriteString(agent, reply); err != nil {
					return
				}
			}
		}()
		return Channel{Conn: host, Key: key, VM: "b"}, nil
	}
	otherKey := []byte("another key of thirty-two bytes!")
	tests := []struct {
		name string
		dial DialFunc
		is   error
		want string
	}{
		{"protocol 1", v1, agentmux.ErrAgentTooOld, "the agent in VM b predates authenticated channels: restart it with `banger vm restart b`"},
		{"no key", serve(agentmux.BasicGuest(health{}, nil)), agentmux.ErrAgentNoKey, "the agent in VM b has no key (its boot payload is missing): restart it with `banger vm restart b`"},
		{"another key", serve(&agentmux.Guest{Key: otherKey, AuthFailDelay: time.Millisecond}), agentmux.ErrKeyRefused, "the agent in VM b does not hold the key the daemon gave it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Get(ctx, "b", tt.dial)
			if !errors.Is(err, tt.is) || !strings.HasPrefix(fmt.Sprint(err), tt.want) {
				t.Errorf("Get = %v; want %v starting %q", err, tt.is, tt.want)
			}
		})
	}
	// A dial error comes back as is.
	boom := errors.New("no socket")
	if _, err := p.Get(ctx, "c", func(context.Context) (Channel, error) { return Channel{}, boom }); !errors.Is(err, boom) {
		t.Errorf("dial error: %v", err)
	}
}

// bigHealth answers health with a report whose line is over agentmux's
// 64 KiB reply limit while huge is set.
type bigHealth struct{ huge *atomic.Bool }

func (b bigHealth) Health(context.Context) (agentproto.Health, error) {
	if b.huge.Load() {
		return agentproto.Health{Hostname: strings.Repeat("h", 100<<10)}, nil
	}
	return agentproto.Health{Hostname: "guest"}, nil
}

// A guest that breaks a limit loses its session, not the daemon; the
// next Get connects again.
func TestPoolReconnectsAfterALimit(t *testing.T) {
	var p Pool
	var huge atomic.Bool
	huge.Store(true)
	var dials atomic.Int32
	dial := func(context.Context) (Channel, error) {
		dials.Add(1)
		host, agent := net.Pipe()
		go agentmux.BasicGuest(bigHealth{&huge}, key).Serve(context.Background(), agent)
		return Channel{Conn: host, Key: key, VM: "big"}, nil
	}
	ctx := context.Background()
	s1, err := p.Get(ctx, "big", dial)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Health(ctx); !errors.Is(err, agentmux.ErrLimit) || !strings.Contains(err.Error(), "VM big sent a reply line over 64 KiB: closing the agent channel") {
		t.Fatalf("health with an oversized report: %v", err)
	}
	huge.Store(false)
	s2, err := p.Get(ctx, "big", dial)
	if err != nil || s2 == s1 || dials.Load() != 2 {
		t.Fatalf("Get after the limit: new session %v, dials %d, %v", s2 != s1, dials.Load(), err)
	}
	if h, err := s2.Health(ctx); err != nil || h.Hostname != "guest" {
		t.Errorf("health on the new session: %+v, %v", h, err)
	}
	p.Close()
}

// TestFailedGetLeavesNothing: a Get whose dial fails (a VM deleted while a
// request raced it) leaves no entry behind, however many raced.
func TestFailedGetLeavesNothing(t *testing.T) {
	var p Pool
	p.Drop("vm1")
	fail := func(context.Context) (Channel, error) { return Channel{}, errors.New("no such VM") }
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Get(context.Background(), "vm1", fail); err == nil {
				t.Error("Get succeeded with a failing dial")
			}
		}()
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.links); n != 0 {
		t.Errorf("%d links left after failed Gets, want 0", n)
	}
}
