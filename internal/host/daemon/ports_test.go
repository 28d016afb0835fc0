package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// guestServices stands in for the services of fake guests: a real TCP
// server on the host's loopback that upper-cases what it reads (until
// EOF) for the guest port 4096 of every VM; other ports refuse as nothing
// listening does. It records each dial.
type guestServices struct {
	addr  string
	mu    sync.Mutex
	dials []string
}

func newGuestServices(t *testing.T) *guestServices {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(bytes.ToUpper(b))
			}()
		}
	}()
	return &guestServices{addr: l.Addr().String()}
}

func (g *guestServices) dial(ctx context.Context, vmName string, port int) (net.Conn, error) {
	g.mu.Lock()
	g.dials = append(g.dials, fmt.Sprintf("%s:%d", vmName, port))
	g.mu.Unlock()
	if port != 4096 {
		return nil, fmt.Errorf("dial tcp 127.0.0.1:%d: %w", port, syscall.ECONNREFUSED)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", g.addr)
}

// request sends msg to a published port, half-closes, and reads the
// answer; a connection the daemon closes at once answers "".
func request(t *testing.T, p api.PublishedPort, msg string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort(p.Address, strconv.Itoa(p.HostPort)))
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute)) // a hang fails; nothing asserts on time
	c.Write([]byte(msg))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

// The port routes with the fake hypervisor: create --publish publishes
// (the VM lists its port), a published port relays through the fake
// agent, a host port in use and a guest port published twice are refused
// with the fix, a guest port nothing listens on closes the connection, a
// stopped VM's port closes its connections, removing closes the
// listener, and deleting the VM closes its listeners with nothing left
// for verify.
func TestPortRoutes(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	svc := newGuestServices(t)
	d.Fake.Dial = svc.dial
	ctx := context.Background()

	v := d.CreateVM(t, api.CreateVMRequest{Name: "dev", Publish: []api.PublishPortRequest{{GuestPort: 4096}}})
	if len(v.Ports) != 1 || v.Ports[0].GuestPort != 4096 || v.Ports[0].Address != "127.0.0.1" || v.Ports[0].HostPort == 0 {
		t.Fatalf("created VM's ports = %+v, want guest 4096 on 127.0.0.1", v.Ports)
	}
	opencode := v.Ports[0]
	if got, err := request(t, opencode, "through the agent"); err != nil || got != "THROUGH THE AGENT" {
		t.Fatalf("published 4096 answered %q, %v", got, err)
	}

	other, err := d.Client.PublishPort(ctx, "dev", api.PublishPortRequest{GuestPort: 8080})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(other.Warning, "the service is not up yet") {
		t.Errorf("publishing a port nothing listens on warns %q, want it to say the service is not up yet", other.Warning)
	}
	other.Warning = ""
	list, err := d.Client.Ports(ctx, "dev")
	if err != nil || len(list) != 2 || list[0].GuestPort != 4096 || list[1] != other {
		t.Fatalf("Ports = %+v, %v; want 4096 and %+v", list, err, other)
	}
	if got, err := request(t, other, "nobody listens"); got != "" {
		t.Errorf("a guest port nothing listens on answered %q (%v), want the connection closed", got, err)
	}

	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	refusals := []struct {
		name string
		req  api.PublishPortRequest
		code api.Code
		fix  string
	}{
		{"host port in use", api.PublishPortRequest{GuestPort: 3000, HostPort: taken.Addr().(*net.TCPAddr).Port}, api.CodeAlreadyExists, "pick another HOSTPORT, or leave it out"},
		{"guest port twice", api.PublishPortRequest{GuestPort: 4096}, api.CodeAlreadyExists, "--rm 4096"},
		{"guest port out of range", api.PublishPortRequest{GuestPort: 70000}, api.CodeInvalidArgument, "1 to 65535"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Client.PublishPort(ctx, "dev", tt.req)
			var e *api.Error
			if !errors.As(err, &e) || e.Code != tt.code || !strings.Contains(e.Message, tt.fix) {
				t.Fatalf("PublishPort(%+v) = %v, want %s naming %q", tt.req, err, tt.code, tt.fix)
			}
		})
	}

	if err := d.Client.UnpublishPort(ctx, "dev", 8080); err != nil {
		t.Fatal(err)
	}
	if _, err := request(t, other, "x"); err == nil {
		t.Error("a removed port still accepts")
	}
	var e *api.Error
	if err := d.Client.UnpublishPort(ctx, "dev", 8080); !errors.As(err, &e) || e.Code != api.CodeNotFound {
		t.Errorf("removing it again = %v, want not_found", err)
	}

	if _, err := d.Client.StopVM(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if got, _ := request(t, opencode, "stopped"); got != "" {
		t.Errorf("a stopped VM's port answered %q, want the connection closed", got)
	}

	if err := d.Client.DeleteVM(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := request(t, opencode, "x"); err == nil {
		t.Error("a deleted VM's port still accepts")
	}
	report, err := d.Client.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range report.Leaks {
		if l.Kind == "port" {
			t.Errorf("verify reports a port left behind: %+v", l)
		}
	}
}

// A create whose --publish cannot be honoured (the host port is taken)
// fails naming the fix and keeps the VM; ports a create gets refused
// up front are refused before anything is allocated.
func TestCreatePublishRefusals(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	ctx := context.Background()
	_, err := d.Client.BeginCreateVM(ctx, api.CreateVMRequest{Name: "twice", Publish: []api.PublishPortRequest{{GuestPort: 80}, {GuestPort: 80}}})
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeInvalidArgument || !strings.Contains(e.Message, "published twice") {
		t.Fatalf("create with a guest port twice = %v, want invalid_argument", err)
	}
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	op, err := d.Client.BeginCreateVM(ctx, api.CreateVMRequest{Name: "busy", Publish: []api.PublishPortRequest{{GuestPort: 80, HostPort: port}}})
	if err != nil {
		t.Fatal(err)
	}
	final, err := d.Client.WatchOperation(ctx, op.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != api.OperationFailed || final.Error == nil || !strings.Contains(final.Error.Message, "banger vm port busy 80") {
		t.Fatalf("create with a host port in use: %s, %v; want it failed naming the fix", final.State, final.Error)
	}
	if _, err := d.Client.VM(ctx, "busy"); err != nil {
		t.Errorf("the VM is gone after a failed publish: %v", err)
	}
}

// Published ports survive a daemon restart: the same host port listens
// again and relays to the guest.
func TestPortsSurviveRestart(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	svc := newGuestServices(t)
	d.Fake.Dial = svc.dial
	ctx := context.Background()
	d.CreateVM(t, api.CreateVMRequest{Name: "dev"})
	p, err := d.Client.PublishPort(ctx, "dev", api.PublishPortRequest{GuestPort: 4096})
	if err != nil {
		t.Fatal(err)
	}
	d.Restart(t)
	list, err := d.Client.Ports(ctx, "dev")
	if err != nil || len(list) != 1 || list[0] != p {
		t.Fatalf("after a restart, ports = %+v, %v; want %+v", list, err, p)
	}
	if got, err := request(t, p, "after restart"); err != nil || got != "AFTER RESTART" {
		t.Fatalf("after a restart, the port answered %q, %v", got, err)
	}
}

// A VM whose agent predates dial streams (the fake's refusal is an old
// agent's unknown_type) still gets its port published, with a warning
// that names the fix.
func TestPublishWarnsOfAnOldAgent(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "old"})
	p, err := d.Client.PublishPort(context.Background(), "old", api.PublishPortRequest{GuestPort: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Warning, "predates port publishing") || !strings.Contains(p.Warning, "banger vm restart old") {
		t.Errorf("warning %q, want the old agent and `banger vm restart old` named", p.Warning)
	}
}
