package portfwd

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// PeerUID finds the owner of a loopback connection's other end: this
// process's user for its own connection, nobody's for a connection a
// process running as nobody opened.
func TestPeerUID(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c := <-accepted
	defer c.Close()
	if uid, err := PeerUID(c); err != nil || uid != uint32(os.Getuid()) {
		t.Errorf("PeerUID of our own connection = %d, %v; want %d", uid, err, os.Getuid())
	}

	if os.Getuid() != 0 {
		t.Skip("connecting as another user needs root")
	}
	// A client running as nobody (65534) holds its end open until we have
	// looked.
	cmd := exec.Command("bash", "-c", "exec 3<>/dev/tcp/"+strings.Replace(ln.Addr().String(), ":", "/", 1)+"; read -r _ <&0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot run a process as nobody: %v", err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	other := <-accepted
	defer other.Close()
	if uid, err := PeerUID(other); err != nil || uid != 65534 {
		t.Errorf("PeerUID of nobody's connection = %d, %v; want 65534", uid, err)
	}
	io.WriteString(stdin, "\n")
}

// A Manager whose Allow refuses a connection closes it before the guest
// is dialled; an allowed one is relayed.
func TestAllowRefusesBeforeDialling(t *testing.T) {
	f := &fakeAgents{running: map[string]bool{"vm1": true}}
	m := newManager(t, f, 0)
	refuse := true
	var mu sync.Mutex
	m.Allow = func(c net.Conn) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := PeerUID(c); err != nil {
			return err
		}
		if refuse {
			return errors.New("not the owner")
		}
		return nil
	}
	p, err := m.Publish("vm1", 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := connect(t, p)
	if got, err := roundTrip(c, "hello"); err == nil {
		t.Fatalf("a refused connection was relayed: %q", got)
	}
	f.mu.Lock()
	dials := len(f.dials)
	f.mu.Unlock()
	if dials != 0 {
		t.Errorf("the guest was dialled %d times for a refused connection", dials)
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	if got, err := roundTrip(connect(t, p), "hello"); err != nil || got != "HELLO" {
		t.Errorf("an allowed connection: %q %v", got, err)
	}
}
