package agentlink

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/agentmux"
	"github.com/bangerdev/banger/internal/agentproto"
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

func (g *guest) dial(ctx context.Context) (io.ReadWriteCloser, error) {
	g.dials.Add(1)
	host, agent := net.Pipe()
	g.last.Store(&agent)
	go agentmux.BasicGuest(health{}).Serve(context.Background(), agent)
	return host, nil
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
	silent := func(context.Context) (io.ReadWriteCloser, error) {
		dials.Add(1)
		host, agent := net.Pipe()
		go func() { io.Copy(io.Discard, agent); close(closed) }()
		return host, nil
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
	// A protocol 1 agent: the error says to recreate the VM.
	v1 := func(context.Context) (io.ReadWriteCloser, error) {
		host, agent := net.Pipe()
		go agentproto.Serve(context.Background(), agent, health{})
		return host, nil
	}
	if _, err := p.Get(ctx, "b", v1); !errors.Is(err, agentmux.ErrUpgradeUnsupported) {
		t.Errorf("v1 agent: %v", err)
	}
	// A dial error comes back as is.
	boom := errors.New("no socket")
	if _, err := p.Get(ctx, "c", func(context.Context) (io.ReadWriteCloser, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("dial error: %v", err)
	}
}
