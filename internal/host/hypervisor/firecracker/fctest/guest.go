package fctest

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// The guest: what a booted microVM would do, as far as a driver can see
// it — the serial console, the agent on its vsock port, and a power-off
// on Ctrl-Alt-Del.

// start boots the guest (InstanceStart); s.mu is held. The agent holds
// the key of the boot payload in the initramfs, as a real guest's does;
// without one it refuses every host.
func (s *Server) start() {
	s.startGuest()
	s.mem = guestMemory{Hostname: "fctest-guest", HostKeys: []string{FakeHostKey}}
	if s.bootSource != nil && s.bootSource.initrd != "" {
		s.mem.Key, _ = hvtest.BootKey(s.bootSource.initrd)
	}
	s.state = stateRunning
	if n := s.cfg.BootLog; n > 0 {
		go s.printBootLog(n)
	}
}

// startGuest starts the guest's clock (InstanceStart or a snapshot load);
// s.mu is held.
func (s *Server) startGuest() {
	s.startedAt = time.Now()
}

func (s *Server) console(format string, args ...any) {
	w := s.cfg.Console
	if w == nil {
		return
	}
	s.consoleMu.Lock()
	defer s.consoleMu.Unlock()
	fmt.Fprintf(w, format, args...)
}

// printBootLog prints about n bytes of kernel-like boot messages.
func (s *Server) printBootLog(n int) {
	for i, written := 0, 0; written < n; i++ {
		line := fmt.Sprintf("[%5d.%06d] fctest: guest boot message %d, standing in for what a kernel prints\n", i/1000, i%1000*997, i)
		s.console("%s", line)
		written += len(line)
	}
}

// ctrlAltDel is SendCtrlAltDel: the guest reboots, which ends Firecracker,
// after PowerOffDelay; a paused guest does so once resumed. s.mu is held.
func (s *Server) ctrlAltDel() {
	if s.cfg.IgnoreCtrlAltDel {
		return
	}
	if s.state == statePaused {
		s.pendingCAD = true
		return
	}
	time.AfterFunc(s.cfg.PowerOffDelay, s.powerOffNow)
}

func (s *Server) powerOffNow() {
	s.mu.Lock()
	if s.state == statePaused {
		s.pendingCAD = true
		s.mu.Unlock()
		return
	}
	for c := range s.guestConns {
		c.Close()
	}
	s.mu.Unlock()
	s.console("%s\n", PowerOffMarker)
	s.powerOnce.Do(func() { close(s.powerOff) })
}

// acceptGuest serves host-initiated vsock connections on the uds_path.
func (s *Server) acceptGuest(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.guestConns[c] = true
		s.mu.Unlock()
		go func() {
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.guestConns, c)
				s.mu.Unlock()
			}()
			s.serveGuestConn(c)
		}()
	}
}

// connectReadWindow is how long the rest of the CONNECT line may take
// after its first byte. Firecracker reads it from a non-blocking socket
// when it becomes readable and drops the connection if the line is not
// all there; a client that writes it in one write is never near this.
const connectReadWindow = 100 * time.Millisecond

// serveGuestConn answers one host connection as Firecracker and the guest
// would.
func (s *Server) serveGuestConn(c net.Conn) {
	line, err := readConnect(c)
	if err != nil {
		return // Firecracker drops a connection whose request it cannot read
	}
	fields := strings.Fields(line)
	if len(fields) != 2 || !strings.EqualFold(fields[0], "connect") {
		return
	}
	port, err := strconv.ParseUint(fields[1], 10, 32)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.connects++
	select {
	case <-s.powerOff:
		s.mu.Unlock()
		return
	default:
	}
	up := s.state == stateRunning && time.Since(s.startedAt) >= s.cfg.AgentDelay
	hostPort := s.nextPort
	s.nextPort++
	s.mu.Unlock()
	if !up || uint32(port) != s.cfg.AgentPort {
		return // the guest resets the connection: closed without a reply
	}
	c.SetDeadline(time.Time{})
	// The acknowledgement and whatever the guest sends at once arrive
	// together, as they may from Firecracker.
	if _, err := io.WriteString(c, fmt.Sprintf("OK %d\n%s", hostPort, s.cfg.Greeting)); err != nil {
		return
	}
	// The key is asked at every upgrade: an identity call that sets a new
	// one holds for the next upgrade on any channel, this one included.
	g := &agentmux.Guest{Handler: guestHandler{agentmux.Basic(guestAgent{s}), s}, KeyFunc: s.agentKey}
	g.Serve(s.agentCtx, c)
}

// agentKey is the guest agent's key now.
func (s *Server) agentKey() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.mem.Key...)
}

// readConnect reads the CONNECT line: its first byte whenever it comes,
// the rest within connectReadWindow.
func readConnect(c net.Conn) (string, error) {
	var line []byte
	var b [1]byte
	for len(line) < 32 {
		if _, err := c.Read(b[:]); err != nil {
			return "", err
		}
		if len(line) == 0 {
			c.SetReadDeadline(time.Now().Add(connectReadWindow))
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
	return "", fmt.Errorf("CONNECT line too long")
}

// guestAgent answers health as banger-agent in the guest would: the
// guest's init mounts the second drive (the work disk) at /root, and the
// guest names drives /dev/vda, /dev/vdb, ... in the order Firecracker
// attached them (the root device first, then the order they were added).
type guestAgent struct{ s *Server }

func (g guestAgent) Health(context.Context) (agentproto.Health, error) {
	s := g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	h := agentproto.Health{
		AgentVersion: "fctest",
		BuildID:      "fctest",
		Hostname:     s.mem.Hostname,
		Kernel:       "fctest-" + s.version.String(),
		UptimeMS:     time.Since(s.startedAt).Milliseconds(),
		Root:         "ext4",
		Time:         time.Now().UTC(),
	}
	if len(s.drives) >= 2 {
		h.RootMount = "/dev/vdb"
	}
	return h, nil
}

// FakeHostKey is the SSH host key the stand-in guest reports.
const FakeHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZjdGVzdGZjdGVzdGZjdGVzdGZjdGVzdGZjdGVzdGZj root@fctest-guest"

var _ agentproto.GuestOps = guestAgent{}

// ProbeTCP reports the ports of Config.OpenPorts open.
func (g guestAgent) ProbeTCP(_ context.Context, port int) agentproto.ProbeResult {
	for _, p := range g.s.cfg.OpenPorts {
		if p == port {
			return agentproto.ProbeResult{Port: port, Open: true}
		}
	}
	return agentproto.ProbeResult{Port: port, Error: "connection refused"}
}

// HostKeys returns the guest's host keys: FakeHostKey after a boot,
// others after an identity call that asked for new ones.
func (g guestAgent) HostKeys(context.Context) ([]string, error) {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	return append([]string(nil), g.s.mem.HostKeys...), nil
}

// PowerOff powers the guest off after Config.PowerOffDelay, as
// Ctrl-Alt-Del does.
func (g guestAgent) PowerOff(context.Context) error {
	time.AfterFunc(g.s.cfg.PowerOffDelay, g.s.powerOffNow)
	return nil
}
