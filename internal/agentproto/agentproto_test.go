package agentproto

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeHandler answers health with a fixed report and counts calls.
type fakeHandler struct {
	health Health
	err    error
	calls  int
}

func (f *fakeHandler) Health(context.Context) (Health, error) {
	f.calls++
	return f.health, f.err
}

var sampleHealth = Health{
	AgentVersion: "v0.1.0",
	BuildID:      "abc123",
	Hostname:     "quiet-otter",
	Kernel:       "6.1.0-56-cloud-amd64",
	UptimeMS:     4200,
	Root:         "ext4",
	RootMount:    "/dev/vdb",
	Time:         time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
}

// serve runs Serve on one end of a pipe and returns the other end; the
// returned channel yields Serve's result.
func serve(t *testing.T, h Handler) (net.Conn, <-chan error) {
	t.Helper()
	host, guest := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, guest, h) }()
	t.Cleanup(func() {
		cancel()
		host.Close()
		guest.Close()
	})
	return host, done
}

func TestHealthRoundTrip(t *testing.T) {
	h := &fakeHandler{health: sampleHealth}
	host, _ := serve(t, h)
	ctx := context.Background()

	c := NewClient(host)
	for i := range 3 { // a client is reusable on one stream
		got, err := c.Health(ctx)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := sampleHealth
		want.Protocol = Version
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("health (-want +got):\n%s", diff)
		}
	}
	got, err := CheckHealth(ctx, host)
	if err != nil || got.Hostname != "quiet-otter" {
		t.Errorf("CheckHealth = %+v, %v", got, err)
	}
	hello, err := c.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Hello{Protocol: Version, Types: SupportedTypes()}, hello); diff != "" {
		t.Errorf("hello (-want +got):\n%s", diff)
	}
	if h.calls != 4 {
		t.Errorf("handler called %d times, want 4", h.calls)
	}
}

// TestClientSkipsStaleLines plays a virtio-serial port that still holds
// bytes from an earlier host connection: the client must skip them and
// return the reply carrying its own request's ID.
func TestClientSkipsStaleLines(t *testing.T) {
	staleReply := `{"id":"0123456789abcdef01234567","type":"health","health":{"hostname":"stale"}}`
	tests := []struct {
		name   string
		before string // what the guest writes before the real reply; "" or ends with "\n"
		glued  bool   // the real reply follows `before` without a newline
	}{
		{name: "nothing stale"},
		{name: "garbage lines", before: "garbage\n\x00\x01\x02\n{not json\n\n"},
		{name: "a stale reply with another ID", before: staleReply + "\n"},
		{name: "garbage, then a stale reply", before: "hello?\n" + staleReply + "\n"},
		{name: "a partial line with the real reply glued on", before: `{"id":"old","ty`, glued: true},
		{name: "an overlong line", before: strings.Repeat("x", MaxLineBytes+10) + "\n"},
		{name: "a stale error reply", before: `{"id":"old","type":"health","error":{"code":"internal","message":"x"}}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, guest := net.Pipe()
			defer host.Close()
			defer guest.Close()
			go func() {
				// The fake guest: read one request, answer after the junk.
				r := bufio.NewReader(guest)
				var req Request
				for req.ID == "" {
					line, err := r.ReadBytes('\n')
					if err != nil {
						return
					}
					json.Unmarshal(line, &req)
				}
				h := sampleHealth
				reply, _ := json.Marshal(Response{ID: req.ID, Type: req.Type, Health: &h})
				guest.Write(append([]byte(tt.before), append(reply, '\n')...))
			}()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			got, err := CheckHealth(ctx, host)
			if err != nil {
				t.Fatalf("CheckHealth: %v", err)
			}
			if diff := cmp.Diff(sampleHealth, got); diff != "" {
				t.Errorf("health (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServeRequests writes raw lines to Serve and checks each response.
func TestServeRequests(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Response
	}{
		{
			name: "unknown type names the supported ones",
			line: `{"id":"r1","type":"exec"}`,
			want: Response{ID: "r1", Type: "exec", Error: &Error{
				Code:    CodeUnknownType,
				Message: `unknown request type "exec": this agent (protocol 1) supports hello, health, probe_tcp, host_keys, poweroff; update banger-agent in the image`,
			}},
		},
		{
			name: "not JSON",
			line: `health please`,
			want: Response{Error: &Error{Code: CodeBadRequest, Message: `not a request: want one JSON object per line with "id" and "type" (one of hello, health, probe_tcp, host_keys, poweroff)`}},
		},
		{
			name: "no type",
			line: `{"id":"r2"}`,
			want: Response{ID: "r2", Error: &Error{Code: CodeBadRequest, Message: `not a request: want one JSON object per line with "id" and "type" (one of hello, health, probe_tcp, host_keys, poweroff)`}},
		},
		{
			name: "a partial request from an earlier connection with a request glued on",
			line: `{"id":"old","ty{"id":"r3","type":"hello","hello":{"protocol":7}}`,
			want: Response{ID: "r3", Type: "hello", Hello: &Hello{Protocol: Version, Types: SupportedTypes()}},
		},
		{
			name: "health",
			line: `{"id":"r4","type":"health"}`,
			want: Response{ID: "r4", Type: "health", Health: &Health{Protocol: Version, Hostname: "h"}},
		},
	}
	host, _ := serve(t, &fakeHandler{health: Health{Hostname: "h"}})
	r := bufio.NewReader(host)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Blank lines are skipped without a response.
			if _, err := io.WriteString(host, "\n\n"+tt.line+"\n"); err != nil {
				t.Fatal(err)
			}
			line, err := r.ReadBytes('\n')
			if err != nil {
				t.Fatal(err)
			}
			var got Response
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("response %q: %v", line, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	t.Run("handler error reaches the client as *Error", func(t *testing.T) {
		host, _ := serve(t, &fakeHandler{err: errors.New("statfs /: EIO")})
		_, err := CheckHealth(context.Background(), host)
		var perr *Error
		if !errors.As(err, &perr) || perr.Code != CodeInternal || perr.Message != "reading the guest's health: statfs /: EIO" {
			t.Errorf("error = %#v, want an *Error with code internal", err)
		}
	})
	t.Run("an older agent that does not know the request type", func(t *testing.T) {
		host, _ := serve(t, &fakeHandler{})
		_, err := NewClient(host).call(context.Background(), Request{Type: "session"})
		if err == nil || !strings.Contains(err.Error(), `unknown request type "session"`) {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("the guest never answers: ctx ends the wait and the stream stays usable", func(t *testing.T) {
		host, guest := net.Pipe()
		defer host.Close()
		defer guest.Close()
		go io.Copy(io.Discard, guest) // reads requests, answers nothing
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := CheckHealth(ctx, host)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want context.DeadlineExceeded", err)
		}
		if _, err := host.Write([]byte("\n")); err != nil {
			t.Errorf("stream unusable after a cancelled request: %v", err)
		}
	})
	t.Run("the stream closes", func(t *testing.T) {
		host, guest := net.Pipe()
		defer host.Close()
		go func() {
			bufio.NewReader(guest).ReadBytes('\n')
			guest.Write([]byte("partial"))
			guest.Close()
		}()
		_, err := CheckHealth(context.Background(), host)
		if !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "closed before the health response arrived") {
			t.Errorf("error = %v, want a wrapped io.EOF", err)
		}
	})
}

func TestServeEnds(t *testing.T) {
	t.Run("EOF", func(t *testing.T) {
		host, done := serve(t, &fakeHandler{})
		host.Close()
		if err := <-done; !errors.Is(err, io.EOF) {
			t.Errorf("Serve = %v, want io.EOF", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		host, guest := net.Pipe()
		defer host.Close()
		defer guest.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, guest, &fakeHandler{}) }()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
	})
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("y", MaxLineBytes+1)
	in := "a\r\n\n  b  \n" + long + "\nc\n" + strings.Repeat("z", 70<<10) + "\nlast"
	lr := newLineReader(strings.NewReader(in))
	var got []string
	for {
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(line))
	}
	want := []string{"a", "", "b", "c", strings.Repeat("z", 70<<10), "last"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if !bytes.Equal([]byte(messageStart), []byte(`{"id":`)) {
		t.Error("messageStart must match how encoding/json starts a Request")
	}
	b, _ := json.Marshal(Request{ID: "x", Type: "y"})
	if !bytes.HasPrefix(b, []byte(messageStart)) {
		t.Errorf("Request encodes as %s; decode's recovery needs it to start with %s", b, messageStart)
	}
}

// opsHandler is a hand-written guest: fixed health, an open port set, keys,
// and a record of poweroff requests.
type opsHandler struct {
	open     map[int]bool
	keys     []string
	poweroff int
}

func (o *opsHandler) Health(context.Context) (Health, error) { return Health{Hostname: "g"}, nil }
func (o *opsHandler) ProbeTCP(_ context.Context, port int) ProbeResult {
	if o.open[port] {
		return ProbeResult{Port: port, Open: true}
	}
	return ProbeResult{Port: port, Error: "connection refused"}
}
func (o *opsHandler) HostKeys(context.Context) ([]string, error) { return o.keys, nil }
func (o *opsHandler) PowerOff(context.Context) error             { o.poweroff++; return nil }

func TestGuestOps(t *testing.T) {
	host, guest := net.Pipe()
	defer host.Close()
	h := &opsHandler{open: map[int]bool{4096: true}, keys: []string{"ssh-ed25519 AAAA root@banger"}}
	go Serve(context.Background(), guest, h)
	c := NewClient(host)
	ctx := context.Background()

	if r, err := c.ProbeTCP(ctx, 4096); err != nil || !r.Open {
		t.Errorf("probe 4096 = %+v, %v", r, err)
	}
	if r, err := c.ProbeTCP(ctx, 22); err != nil || r.Open || r.Error == "" {
		t.Errorf("probe 22 = %+v, %v", r, err)
	}
	var perr *Error
	if _, err := c.ProbeTCP(ctx, 70000); !errors.As(err, &perr) || perr.Code != CodeBadRequest {
		t.Errorf("probe 70000: %v", err)
	}
	if keys, err := c.HostKeys(ctx); err != nil || len(keys) != 1 {
		t.Errorf("host keys = %v, %v", keys, err)
	}
	if err := c.PowerOff(ctx); err != nil || h.poweroff != 1 {
		t.Errorf("poweroff: %v (count %d)", err, h.poweroff)
	}
}

// An agent that only answers health refuses the newer requests clearly.
func TestGuestOpsUnsupported(t *testing.T) {
	host, guest := net.Pipe()
	defer host.Close()
	go Serve(context.Background(), guest, healthOnly{})
	_, err := NewClient(host).HostKeys(context.Background())
	var perr *Error
	if !errors.As(err, &perr) || perr.Code != CodeUnknownType || !strings.Contains(perr.Message, "update banger-agent") {
		t.Fatalf("got %v", err)
	}
}

type healthOnly struct{}

func (healthOnly) Health(context.Context) (Health, error) { return Health{}, nil }
