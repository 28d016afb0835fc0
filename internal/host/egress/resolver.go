package egress

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	// dnsmessage (golang.org/x/net, already a dependency) parses and
	// builds the few messages a forwarding resolver needs; it keeps
	// record types it does not know, so answers relay intact.
	"golang.org/x/net/dns/dnsmessage"
)

// Bounds of the resolver.
const (
	maxQuery       = 4096 // bytes of a query, UDP or TCP
	maxInFlight    = 128  // queries answered at once
	maxTCPConns    = 32
	maxTCPQueries  = 16 // per connection
	upstreamWait   = 3 * time.Second
	tcpIdleTimeout = 10 * time.Second
)

// resolver is the DNS server on the bridge through which restricted
// guests resolve: it answers only names their policy allows, forwarding
// them upstream, and lets the guest reach the answered addresses.
type resolver struct {
	e      *Enforcer
	udp    *net.UDPConn
	tcp    *net.TCPListener
	sem    chan struct{}
	tcpSem chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
}

func startResolver(ctx context.Context, e *Enforcer) (*resolver, error) {
	addr := netip.AddrPortFrom(e.cfg.Gateway, e.cfg.Port)
	r := &resolver{e: e, sem: make(chan struct{}, maxInFlight), tcpSem: make(chan struct{}, maxTCPConns)}
	err := e.cfg.Table.InNamespace(func() error {
		var err error
		if r.udp, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr)); err != nil {
			return err
		}
		if r.tcp, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(addr)); err != nil {
			r.udp.Close()
			return err
		}
		return nil
	})
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("starting the egress resolver on %v: %w: port %d needs root or CAP_NET_BIND_SERVICE (a rootless bangerd cannot enforce egress policies; run bangerd as root)", addr, err, e.cfg.Port)
	}
	if err != nil {
		return nil, fmt.Errorf("starting the egress resolver on %v: %w: the bridge must be up with its address (`banger host setup`), and no other DNS server (dnsmasq, systemd-resolved) may hold port %d on it", addr, err, e.cfg.Port)
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(3)
	go func() { defer r.wg.Done(); r.serveUDP() }()
	go func() { defer r.wg.Done(); r.serveTCP() }()
	go func() { defer r.wg.Done(); <-r.ctx.Done(); r.udp.Close(); r.tcp.Close() }()
	e.log.Info("egress resolver listening", "addr", addr, "upstream", e.cfg.Upstream)
	return r, nil
}

func (r *resolver) close() {
	r.once.Do(func() {
		r.cancel()
		r.wg.Wait()
	})
}

func (r *resolver) serveUDP() {
	buf := make([]byte, 65535)
	for {
		n, from, err := r.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if r.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				r.e.log.Error("egress resolver: reading udp", "err", err)
				continue
			}
			return
		}
		if n > maxQuery {
			continue
		}
		select {
		case r.sem <- struct{}{}:
		default:
			continue // too busy: the guest retries
		}
		q := append([]byte(nil), buf[:n]...)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.sem }()
			if resp := r.answer(from.Addr().Unmap(), q, "udp"); resp != nil {
				r.udp.WriteToUDPAddrPort(resp, from)
			}
		}()
	}
}

func (r *resolver) serveTCP() {
	for {
		c, err := r.tcp.AcceptTCP()
		if err != nil {
			if r.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				r.e.log.Error("egress resolver: accepting tcp", "err", err)
				continue
			}
			return
		}
		select {
		case r.tcpSem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.tcpSem }()
			defer c.Close()
			stop := context.AfterFunc(r.ctx, func() { c.Close() })
			defer stop()
			from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			for range maxTCPQueries {
				c.SetDeadline(time.Now().Add(tcpIdleTimeout))
				q, err := readTCPMsg(c, maxQuery)
				if err != nil {
					return
				}
				resp := r.answer(from, q, "tcp")
				if resp == nil || writeTCPMsg(c, resp) != nil {
					return
				}
			}
		}()
	}
}

// readTCPMsg reads one length-prefixed DNS message of at most limit
// bytes.
func readTCPMsg(c io.Reader, limit int) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, err
	}
	size := int(binary.BigEndian.Uint16(n[:]))
	if size > limit {
		return nil, fmt.Errorf("a %d-byte message, more than %d", size, limit)
	}
	b := make([]byte, size)
	_, err := io.ReadFull(c, b)
	return b, err
}

func writeTCPMsg(c io.Writer, m []byte) error {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(m)), uint16(len(m)))
	_, err := c.Write(append(b, m...))
	return err
}

// answer returns the reply to query q from guest src, or nil to send
// none.
func (r *resolver) answer(src netip.Addr, q []byte, transport string) []byte {
	if len(q) > maxQuery {
		return nil
	}
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 || h.OpCode != 0 {
		return reply(h, qs, dnsmessage.RCodeFormatError)
	}
	question := qs[0]
	pol, ok := r.e.policy(src)
	if !ok {
		return reply(h, qs, dnsmessage.RCodeRefused) // not a restricted guest
	}
	if !r.e.admit(src) {
		return nil // over its rate: the guest retries later
	}
	name := strings.ToLower(strings.TrimSuffix(question.Name.String(), "."))
	allowed, _ := pol.AllowsName(name)
	if !allowed || question.Class != dnsmessage.ClassINET {
		r.e.refused(src, name)
		return reply(h, qs, dnsmessage.RCodeRefused)
	}
	if question.Type == dnsmessage.TypeAAAA {
		return reply(h, qs, dnsmessage.RCodeSuccess) // no IPv6: no addresses
	}
	raw, err := r.forward(q, transport)
	if err != nil {
		r.e.log.Warn("egress resolver: no upstream answered", "guest", src, "name", name, "err", err)
		return reply(h, qs, dnsmessage.RCodeServerFailure)
	}
	var m dnsmessage.Message
	if err := m.Unpack(raw); err != nil || m.Header.ID != h.ID || !m.Header.Response {
		r.e.log.Warn("egress resolver: a malformed upstream answer", "guest", src, "name", name, "err", err)
		return reply(h, qs, dnsmessage.RCodeServerFailure)
	}
	addrs := answeredAddrs(question.Name, &m)
	if len(addrs) > 0 {
		if err := r.e.allow(src, name, addrs); err != nil {
			r.e.log.Error("egress resolver: letting answered addresses through", "guest", src, "name", name, "err", err)
			return reply(h, qs, dnsmessage.RCodeServerFailure)
		}
	}
	out, err := m.Pack()
	if err != nil {
		return reply(h, qs, dnsmessage.RCodeServerFailure)
	}
	return out
}

// answeredAddrs returns the IPv4 addresses m answers for qname, following
// its CNAME chain, with their TTLs; it removes IPv6 answers and lowers
// every answer's TTL to MaxTTL, so the guest caches nothing longer than
// it may reach it.
func answeredAddrs(qname dnsmessage.Name, m *dnsmessage.Message) map[netip.Addr]time.Duration {
	chain := map[string]bool{strings.ToLower(qname.String()): true}
	for range len(m.Answers) + 1 { // CNAMEs in any order
		for _, rr := range m.Answers {
			if c, ok := rr.Body.(*dnsmessage.CNAMEResource); ok && chain[strings.ToLower(rr.Header.Name.String())] {
				chain[strings.ToLower(c.CNAME.String())] = true
			}
		}
	}
	addrs := map[netip.Addr]time.Duration{}
	kept := m.Answers[:0]
	for _, rr := range m.Answers {
		if _, ok := rr.Body.(*dnsmessage.AAAAResource); ok {
			continue
		}
		rr.Header.TTL = min(rr.Header.TTL, uint32(MaxTTL/time.Second))
		if a, ok := rr.Body.(*dnsmessage.AResource); ok && chain[strings.ToLower(rr.Header.Name.String())] {
			addr := netip.AddrFrom4(a.A)
			addrs[addr] = max(addrs[addr], time.Duration(rr.Header.TTL)*time.Second)
		}
		kept = append(kept, rr)
	}
	m.Answers = kept
	return addrs
}

// reply is an answer without records.
func reply(h dnsmessage.Header, qs []dnsmessage.Question, rcode dnsmessage.RCode) []byte {
	m := dnsmessage.Message{
		Header: dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired,
			RecursionAvailable: true, RCode: rcode},
		Questions: qs,
	}
	b, err := m.Pack()
	if err != nil {
		return nil
	}
	return b
}

// forward sends q to each upstream in turn over transport until one
// answers with q's ID.
func (r *resolver) forward(q []byte, transport string) ([]byte, error) {
	id := binary.BigEndian.Uint16(q)
	var errs []error
	for _, up := range r.e.cfg.Upstream {
		var c net.Conn
		err := r.e.cfg.Table.InNamespace(func() error {
			var err error
			c, err = net.DialTimeout(transport, up.String(), upstreamWait)
			return err
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp, err := exchange(c, q, transport, id)
		c.Close()
		if err == nil {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%v: %w", up, err))
	}
	return nil, errors.Join(errs...)
}

func exchange(c net.Conn, q []byte, transport string, id uint16) ([]byte, error) {
	c.SetDeadline(time.Now().Add(upstreamWait))
	if transport == "tcp" {
		if err := writeTCPMsg(c, q); err != nil {
			return nil, err
		}
		resp, err := readTCPMsg(c, 65535)
		if err == nil && (len(resp) < 2 || binary.BigEndian.Uint16(resp) != id) {
			err = errors.New("an answer with another ID")
		}
		return resp, err
	}
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if n >= 2 && binary.BigEndian.Uint16(buf) == id {
			return buf[:n], nil
		}
	}
}
