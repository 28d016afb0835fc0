package agentmux

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// intruderEnv tells the test binary, started again as another user, to
// play TestIntruderChild against the agent socket it names.
const intruderEnv = "AGENTMUX_INTRUDER_SOCKET"

// nobody is the user the intruder runs as.
const nobody = 65534

// intruderReport is what the intruder found, printed as JSON.
type intruderReport struct {
	UID     int    `json:"uid"`
	V1      string `json:"v1"`      // the answer to a protocol 1 health request
	Upgrade string `json:"upgrade"` // Upgrade's error with a guessed key
}

// TestAgentRefusesOtherUsers serves a real Guest on a Unix socket that
// every user may connect to (as the agent's vsock port is reachable by
// every local user through the guest's CID) and runs this test binary as
// uid 65534, which does not know the key: it gets nothing served.
func TestAgentRefusesOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a process as uid 65534")
	}
	dir, err := os.MkdirTemp("", "agentmux-intruder-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The intruder runs a copy of this test binary it can read.
	bin := filepath.Join(dir, "agentmux.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	served := &fakeHandler{}
	g := &Guest{Handler: served, Key: testKey, AuthFailDelay: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); g.Serve(ctx, c) }()
		}
	}()

	cmd := exec.Command(bin, "-test.run=^TestIntruderChild$", "-test.v")
	cmd.Env = append(os.Environ(), intruderEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the intruder failed: %v\n%s", err, out)
	}
	var rep intruderReport
	for _, line := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(line, "REPORT "); ok {
			if err := json.Unmarshal([]byte(s), &rep); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("intruder: %+v", rep)
	if rep.UID != nobody {
		t.Fatalf("the intruder ran as uid %d, want %d:\n%s", rep.UID, nobody, out)
	}
	if !strings.Contains(rep.V1, CodeUnauthenticated) || strings.Contains(rep.V1, "quiet-otter") {
		t.Errorf("a protocol 1 health request from another user got %q, want it refused", rep.V1)
	}
	if !strings.Contains(rep.Upgrade, ErrKeyRefused.Error()) {
		t.Errorf("an upgrade with a guessed key got %q, want it refused", rep.Upgrade)
	}
	served.mu.Lock()
	defer served.mu.Unlock()
	if len(served.puts) != 0 {
		t.Errorf("the agent stored %+v for another user", served.puts)
	}
}

// TestIntruderChild is the intruder's side of TestAgentRefusesOtherUsers;
// it does nothing unless that test started it.
func TestIntruderChild(t *testing.T) {
	sock := os.Getenv(intruderEnv)
	if sock == "" {
		t.Skip("run by TestAgentRefusesOtherUsers only")
	}
	rep := intruderReport{UID: os.Getuid()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A protocol 1 request, as any v1 host would send.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "\n{\"id\":\"intruder\",\"type\":\"health\"}\n")
	// A put written in line mode, then garbage: neither is served.
	fmt.Fprintf(c, "{\"type\":\"put\",\"path\":\"/pwned\"}\n\x00\x01\n")
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			rep.V1 = "read error: " + err.Error()
			break
		}
		if strings.Contains(line, `"intruder"`) {
			rep.V1 = strings.TrimSpace(line)
			break
		}
	}
	c.Close()

	// The upgrade, with a key guessed at random.
	c, err = net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	guess := make([]byte, KeySize)
	rand.Read(guess)
	s, err := Upgrade(ctx, c, guess)
	switch {
	case err == nil:
		s.Close()
		rep.Upgrade = "upgraded"
	case errors.Is(err, io.EOF):
		rep.Upgrade = "closed: " + err.Error()
	default:
		rep.Upgrade = err.Error()
	}
	b, _ := json.Marshal(rep)
	fmt.Printf("REPORT %s\n", b)
}
