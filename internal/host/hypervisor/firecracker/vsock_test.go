package firecracker

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker/fctest"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// bootInProcess runs a stand-in in this process, boots its microVM with a
// vsock device and returns it, a client of its API and the vsock socket.
func bootInProcess(t *testing.T, cfg fctest.Config) (*fctest.Server, *apiClient, string) {
	t.Helper()
	srv, sock := fctest.Start(t, cfg)
	dir := filepath.Dir(sock)
	kernel := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	vsock := filepath.Join(dir, VsockSocket)
	api := &apiClient{socket: sock, pid: os.Getpid()}
	ctx := context.Background()
	for _, c := range []call{
		{"", "PUT", "/boot-source", bootSourceBody{KernelImagePath: kernel, BootArgs: "console=ttyS0"}},
		{"", "PUT", "/vsock", vsockBody{GuestCID: GuestCID, UDSPath: vsock}},
		{"", "PUT", "/actions", actionBody{ActionType: "InstanceStart"}},
	} {
		if err := api.do(ctx, c.Method, c.Path, c.Body, nil); err != nil {
			t.Fatalf("%s %s: %v", c.Method, c.Path, err)
		}
	}
	return srv, api, vsock
}

// The guest agent starts listening only a while after the boot: the
// client retries until Firecracker answers OK, and the bytes the guest
// sends right after the OK (in the same segment) reach the caller.
func TestDialHybridVsockSlowGuest(t *testing.T) {
	const greeting = "HELLO FROM THE GUEST\n"
	srv, _, vsock := bootInProcess(t, fctest.Config{AgentDelay: 300 * time.Millisecond, Greeting: greeting})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := DialHybridVsock(ctx, vsock, agentproto.VsockPort)
	if err != nil {
		t.Fatalf("DialHybridVsock: %v", err)
	}
	defer conn.Close()
	if n := srv.Connects(); n < 2 {
		t.Errorf("%d CONNECT attempts; the guest was not listening at first, so want retries", n)
	}
	got := make([]byte, len(greeting))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != greeting {
		t.Fatalf("first bytes after the handshake: %q, %v; want the guest's greeting %q", got, err, greeting)
	}
	conn.SetReadDeadline(time.Time{})
	// The guest booted without a boot payload: its agent answers the
	// upgrade, refusing every host for want of a key.
	if _, err := agentmux.Upgrade(ctx, conn, make([]byte, agentmux.KeySize)); !errors.Is(err, agentmux.ErrAgentNoKey) {
		t.Errorf("upgrade over the connection: %v, want the agent's refusal for want of a key", err)
	}
}

// While nothing listens in the guest, the dial ends with ctx and says why.
func TestDialHybridVsockGivesUp(t *testing.T) {
	_, _, vsock := bootInProcess(t, fctest.Config{AgentDelay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := DialHybridVsock(ctx, vsock, agentproto.VsockPort)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "without a reply") {
		t.Errorf("DialHybridVsock = %v; want the deadline and the last attempt's reason", err)
	}
}

// A socket that answers something else than "OK <port>" is not retried.
func TestDialHybridVsockBadReply(t *testing.T) {
	dir, err := os.MkdirTemp("", "fcv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "v.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "SSH-2.0-OpenSSH\n")
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = DialHybridVsock(ctx, path, 1024)
	var bad *badReplyError
	if !errors.As(err, &bad) || ctx.Err() != nil {
		t.Errorf("DialHybridVsock = %v; want an immediate bad-reply error", err)
	}
}

// readLine stops at the newline: what follows stays in the stream.
func TestReadLineDoesNotReadAhead(t *testing.T) {
	r := strings.NewReader("OK 1073741824\nguest bytes")
	line, err := readLine(r, maxAckLen)
	if err != nil || line != "OK 1073741824" {
		t.Fatalf("readLine = %q, %v", line, err)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "guest bytes" {
		t.Errorf("left %q in the stream, want %q", rest, "guest bytes")
	}
}

// DialAgent stops retrying once the VM's process is gone.
func TestDialAgentVMGone(t *testing.T) {
	d := &Driver{}
	h := hypervisor.Handle{PID: deadPID(t), Agent: hypervisor.AgentHybridVsock, AgentSocket: "/nonexistent/vsock.sock"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := d.DialAgent(ctx, h)
	if err == nil || !strings.Contains(err.Error(), "is not running") || ctx.Err() != nil {
		t.Errorf("DialAgent = %v; want it to give up at once because the VM is gone", err)
	}
	h.Agent = hypervisor.AgentSerial
	if _, err := d.DialAgent(ctx, h); err == nil || !strings.Contains(err.Error(), "another driver") {
		t.Errorf("DialAgent of a serial handle = %v", err)
	}
}

func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return st.Pid()
}
