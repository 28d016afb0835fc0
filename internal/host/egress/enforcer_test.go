package egress

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/dns/dnsmessage"
)

// TestEnforcer proves the egress policy with real packets, all inside
// namespaces the test creates:
//
//	guest g1 (172.30.0.2) ─veth tap-pool-0─┐
//	                                       banger0 (172.30.0.1, the resolver on :53) [the "host": Setup and the Enforcer]
//	guest g2 (172.30.0.3) ─veth tap-pool-1─┘        └─ up0 (10.99.0.1) ─veth─ "internet" (10.99.0.2)
//
// The internet namespace holds a fake upstream DNS server at
// 198.51.100.53 and HTTP servers at the addresses it answers; the host
// routes everything to it and masquerades guests. g1 is restricted, g2
// keeps NAT.
func TestEnforcer(t *testing.T) {
	hostNS := newNamespace(t, "-host")
	g1 := newNamespace(t, "-g1")
	g2 := newNamespace(t, "-g2")
	inet := newNamespace(t, "-inet")
	ctx := t.Context()

	ex, err := hostnet.NewExecutor(hostNS, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	cfg := hostnet.Config{Bridge: "banger0", Subnet: netip.MustParsePrefix("172.30.0.0/24"),
		DNS: []netip.Addr{netip.MustParseAddr("198.51.100.53")}}
	if err := hostnet.Setup(ctx, cfg, ex); err != nil {
		t.Fatal(err)
	}
	h := handleAt(t, hostNS)
	br, err := h.LinkByName(cfg.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	plugGuest(t, h, br, g1, "tap-pool-0", "172.30.0.2")
	plugGuest(t, h, br, g2, "tap-pool-1", "172.30.0.3")
	plug(t, h, "up0", "10.99.0.1/24", inet, "10.99.0.2/24", "")
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP("10.99.0.2")}); err != nil {
		t.Fatal(err)
	}
	if err := hostnet.Setup(ctx, cfg, ex); err != nil { // binds the veths as pool TAPs
		t.Fatal(err)
	}
	hi := handleAt(t, inet)
	eth, err := hi.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	servers := []string{"198.51.100.10:80", "198.51.100.20:80", "198.51.100.30:80", "198.51.100.40:80",
		"198.51.100.50:80", "198.51.100.50:8080", "203.0.113.5:80", "203.0.113.100:80", "172.30.0.3:80"}
	for _, a := range []string{"198.51.100.10", "198.51.100.20", "198.51.100.30", "198.51.100.40", "198.51.100.50", "198.51.100.53", "203.0.113.5", "203.0.113.100"} {
		if err := hi.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(a + "/32")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range servers {
		ns := inet
		if strings.HasPrefix(a, "172.30.0.3") {
			ns = g2
		}
		serveHTTP(t, ns, a)
	}
	upstream := serveDNS(t, inet, "198.51.100.53:53", map[string][]dnsmessage.Resource{
		"allowed.test.": {a("allowed.test.", "198.51.100.10", 300)},
		"other.test.":   {a("other.test.", "198.51.100.20", 300)},
		"alias.test.":   {cname("alias.test.", "target.test.", 300), a("target.test.", "198.51.100.30", 300)},
		"short.test.":   {a("short.test.", "198.51.100.40", 1)},
		"ports.test.":   {a("ports.test.", "198.51.100.50", 300)},
	})

	enf, err := New(Config{Table: ex, Gateway: netip.MustParseAddr("172.30.0.1"), Port: 53,
		Upstream: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.53:53")}, MinTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := enf.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enf.Close() })

	g1IP := netip.MustParseAddr("172.30.0.2")
	set := func(t *testing.T, entries ...string) {
		t.Helper()
		p := api.EgressPolicy{Mode: api.EgressAllow, Allow: entries}
		switch {
		case len(entries) == 0:
			p = api.EgressPolicy{Mode: api.EgressNone}
		case entries[0] == api.EgressNAT:
			p = api.EgressPolicy{Mode: api.EgressNAT}
		}
		pol, err := Parse(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := enf.Set(g1IP, pol); err != nil {
			t.Fatal(err)
		}
	}
	const resolver = "172.30.0.1:53"
	reaches := func(t *testing.T, ns netns.NsHandle, addr string) {
		t.Helper()
		if got, err := get(ns, addr, 3*time.Second); err != nil || got != addr {
			t.Errorf("GET http://%s: %q, %v; want it reached", addr, got, err)
		}
	}
	blocked := func(t *testing.T, ns netns.NsHandle, addr string) {
		t.Helper()
		got, err := get(ns, addr, time.Second)
		if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
			t.Errorf("GET http://%s: %q, %v; want it dropped (a timeout)", addr, got, err)
		}
	}
	resolves := func(t *testing.T, ns netns.NsHandle, server, name, want string) {
		t.Helper()
		rcode, addrs, err := query(ns, server, "udp", name, dnsmessage.TypeA)
		if err != nil || rcode != dnsmessage.RCodeSuccess || !slices.Contains(addrs, want) {
			t.Errorf("%s asked %s for %s: %v %v, %v; want %s", "guest", server, name, rcode, addrs, err, want)
		}
	}
	refused := func(t *testing.T, ns netns.NsHandle, server, name string) {
		t.Helper()
		rcode, addrs, err := query(ns, server, "udp", name, dnsmessage.TypeA)
		if err != nil || rcode != dnsmessage.RCodeRefused || len(addrs) > 0 {
			t.Errorf("guest asked %s for %s: %v %v, %v; want REFUSED", server, name, rcode, addrs, err)
		}
	}

	set(t, "allowed.test", "alias.test", "ports.test:8080", "203.0.113.0/28")

	t.Run("an allowed name resolves and its address is reached", func(t *testing.T) {
		resolves(t, g1, resolver, "allowed.test", "198.51.100.10")
		reaches(t, g1, "198.51.100.10:80")
	})
	t.Run("a disallowed name is refused and its address dropped, even by literal IP", func(t *testing.T) {
		refused(t, g1, resolver, "other.test")
		blocked(t, g1, "198.51.100.20:80")
	})
	t.Run("a CNAME's final address counts for the allowed name", func(t *testing.T) {
		resolves(t, g1, resolver, "alias.test", "198.51.100.30")
		reaches(t, g1, "198.51.100.30:80")
		refused(t, g1, resolver, "target.test")
	})
	t.Run("a CIDR rule allows its range only", func(t *testing.T) {
		reaches(t, g1, "203.0.113.5:80")
		blocked(t, g1, "203.0.113.100:80")
	})
	t.Run("a port rule allows that port only", func(t *testing.T) {
		resolves(t, g1, resolver, "ports.test", "198.51.100.50")
		reaches(t, g1, "198.51.100.50:8080")
		blocked(t, g1, "198.51.100.50:80")
	})
	t.Run("DNS to any address goes to the resolver", func(t *testing.T) {
		before := upstream.count("other.test.")
		refused(t, g1, "198.51.100.53:53", "other.test")
		resolves(t, g1, "198.51.100.53:53", "allowed.test", "198.51.100.10")
		if n := upstream.count("other.test."); n != before {
			t.Errorf("the upstream was asked for other.test %d times, want none: the guest's DNS reached it", n-before)
		}
	})
	t.Run("DNS over TCP", func(t *testing.T) {
		rcode, addrs, err := query(g1, resolver, "tcp", "allowed.test", dnsmessage.TypeA)
		if err != nil || rcode != dnsmessage.RCodeSuccess || !slices.Contains(addrs, "198.51.100.10") {
			t.Errorf("over tcp: %v %v, %v", rcode, addrs, err)
		}
		if rcode, _, err := query(g1, resolver, "tcp", "other.test", dnsmessage.TypeA); err != nil || rcode != dnsmessage.RCodeRefused {
			t.Errorf("other.test over tcp: %v, %v; want REFUSED", rcode, err)
		}
	})
	t.Run("AAAA is answered empty", func(t *testing.T) {
		rcode, addrs, err := query(g1, resolver, "udp", "allowed.test", dnsmessage.TypeAAAA)
		if err != nil || rcode != dnsmessage.RCodeSuccess || len(addrs) != 0 {
			t.Errorf("AAAA allowed.test: %v %v, %v; want no addresses", rcode, addrs, err)
		}
	})
	t.Run("Drops lists the refusals", func(t *testing.T) {
		drops, err := enf.Drops(g1IP)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []api.EgressDrop{
			{Name: "other.test", Proto: "dns"},
			{Name: "target.test", Proto: "dns"},
			{Address: "198.51.100.20", Port: 80, Proto: "tcp"},
			{Address: "203.0.113.100", Port: 80, Proto: "tcp"},
			{Address: "198.51.100.50", Port: 80, Proto: "tcp"},
		} {
			i := slices.IndexFunc(drops, func(d api.EgressDrop) bool {
				return d.Name == want.Name && d.Address == want.Address && d.Port == want.Port && d.Proto == want.Proto
			})
			if i < 0 || drops[i].Count < 1 || drops[i].Last.IsZero() {
				t.Errorf("Drops lacks %+v: %+v", want, drops)
			}
		}
		if slices.ContainsFunc(drops, func(d api.EgressDrop) bool { return d.Address == "198.51.100.10" }) {
			t.Errorf("Drops lists an allowed address: %+v", drops)
		}
		if !slices.IsSortedFunc(drops, func(a, b api.EgressDrop) int { return b.Last.Compare(a.Last) }) {
			t.Errorf("Drops is not newest first: %+v", drops)
		}
	})
	t.Run("the NAT guest is unaffected", func(t *testing.T) {
		resolves(t, g2, "198.51.100.53:53", "other.test", "198.51.100.20")
		reaches(t, g2, "198.51.100.20:80")
		reaches(t, g2, "203.0.113.100:80")
		if drops, err := enf.Drops(netip.MustParseAddr("172.30.0.3")); err != nil || len(drops) > 0 {
			t.Errorf("Drops of the NAT guest: %+v, %v", drops, err)
		}
	})
	t.Run("guests still cannot reach each other", func(t *testing.T) {
		blocked(t, g1, "172.30.0.3:80")
	})
	t.Run("a new policy takes effect at once", func(t *testing.T) {
		set(t, "other.test", "alias.test")
		blocked(t, g1, "198.51.100.10:80") // allowed.test's address is gone
		blocked(t, g1, "203.0.113.5:80")   // and so is the CIDR
		reaches(t, g1, "198.51.100.30:80") // alias.test is still allowed
		refused(t, g1, resolver, "allowed.test")
		resolves(t, g1, resolver, "other.test", "198.51.100.20")
		reaches(t, g1, "198.51.100.20:80")
	})
	t.Run("access ends with the record's TTL", func(t *testing.T) {
		set(t, "short.test")
		resolves(t, g1, resolver, "short.test", "198.51.100.40")
		reaches(t, g1, "198.51.100.40:80")
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := get(g1, "198.51.100.40:80", 500*time.Millisecond); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("198.51.100.40 is still reachable long after its record's TTL")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("none reaches nothing, DNS included", func(t *testing.T) {
		set(t)
		refused(t, g1, resolver, "allowed.test")
		refused(t, g1, "198.51.100.53:53", "allowed.test")
		blocked(t, g1, "198.51.100.10:80")
		blocked(t, g1, "203.0.113.5:80")
	})
	t.Run("nat lifts the restriction", func(t *testing.T) {
		set(t, api.EgressNAT)
		reaches(t, g1, "198.51.100.20:80")
		resolves(t, g1, "198.51.100.53:53", "other.test", "198.51.100.20")
	})
	t.Run("Resync restores the restriction after hostnet rewrote the table", func(t *testing.T) {
		set(t, "allowed.test")
		blocked(t, g1, "198.51.100.20:80")
		if err := ex.Apply(ctx, []hostnet.Step{hostnet.EnsureNFTable{Table: hostnet.Ruleset(cfg)}}); err != nil {
			t.Fatal(err)
		}
		if err := enf.Resync(); err != nil {
			t.Fatal(err)
		}
		blocked(t, g1, "198.51.100.20:80")
		resolves(t, g1, resolver, "allowed.test", "198.51.100.10")
		reaches(t, g1, "198.51.100.10:80")
	})
	t.Run("the table is still what hostnet plans", func(t *testing.T) {
		st, err := ex.Observe(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if isolation, _ := hostnet.TablesCurrent(cfg, st); !isolation {
			t.Error("after the Enforcer's changes, hostnet would rewrite table inet banger (and lose its elements)")
		}
		for _, l := range hostnet.Leaks(cfg, st, nil) {
			if strings.HasPrefix(l.Kind, "nft") { // the veths standing in for TAPs are leaks of another kind
				t.Errorf("leak: %v", l)
			}
		}
	})
}

func a(name, addr string, ttl uint32) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: ttl},
		Body:   &dnsmessage.AResource{A: netip.MustParseAddr(addr).As4()},
	}
}

func cname(name, target string, ttl uint32) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET, TTL: ttl},
		Body:   &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(target)},
	}
}

// fakeDNS answers A queries from a zone and counts the questions.
type fakeDNS struct {
	addr netip.AddrPort
	zone map[string][]dnsmessage.Resource
	mu   sync.Mutex
	asks map[string]int
}

func (f *fakeDNS) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asks[name]
}

func (f *fakeDNS) answer(q []byte) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
		return nil
	}
	name := strings.ToLower(m.Questions[0].Name.String()) // DNS names are case-insensitive
	f.mu.Lock()
	f.asks[name]++
	f.mu.Unlock()
	m.Header.Response, m.Header.RecursionAvailable = true, true
	rrs, ok := f.zone[name]
	switch {
	case !ok:
		m.Header.RCode = dnsmessage.RCodeNameError
	case m.Questions[0].Type == dnsmessage.TypeA:
		m.Answers = slices.Clone(rrs) // Pack writes lengths into the headers
	}
	b, _ := m.Pack()
	return b
}

// serveDNS runs a fake upstream on addr (UDP and TCP) in ns.
func serveDNS(t *testing.T, ns netns.NsHandle, addr string, zone map[string][]dnsmessage.Resource) *fakeDNS {
	t.Helper()
	f := &fakeDNS{zone: zone, asks: map[string]int{}}
	var pc net.PacketConn
	var ln net.Listener
	if err := inNamespace(ns, func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", addr); err != nil {
			return err
		}
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	f.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if ln.Addr().(*net.TCPAddr).Port != int(f.addr.Port()) { // a port picked for UDP may be taken for TCP
		ln.Close()
		if err := inNamespace(ns, func() error {
			var err error
			ln, err = net.Listen("tcp4", f.addr.String())
			return err
		}); err != nil {
			t.Skipf("the UDP port picked for the fake DNS server is taken for TCP: %v", err)
		}
	}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := f.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				q, err := readTCPMsg(c, 65535)
				if err != nil {
					return
				}
				if resp := f.answer(q); resp != nil {
					writeTCPMsg(c, resp)
				}
			}()
		}
	}()
	return f
}

// serveHTTP runs an HTTP server on addr in ns that answers with addr.
func serveHTTP(t *testing.T, ns netns.NsHandle, addr string) {
	t.Helper()
	var ln net.Listener
	if err := inNamespace(ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, addr) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// get fetches http://addr/ from inside ns and returns the body.
func get(ns netns.NsHandle, addr string, timeout time.Duration) (string, error) {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := inNamespace(ns, func() error {
				var err error
				c, err = (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// query asks server (from inside ns, over network udp or tcp) for name's
// records of type qtype and returns the rcode and the A addresses.
func query(ns netns.NsHandle, server, network, name string, qtype dnsmessage.Type) (dnsmessage.RCode, []string, error) {
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: 0x4242, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name + "."), Type: qtype, Class: dnsmessage.ClassINET}}}
	b, err := q.Pack()
	if err != nil {
		return 0, nil, err
	}
	var c net.Conn
	if err := inNamespace(ns, func() error {
		var err error
		c, err = net.DialTimeout(network, server, 2*time.Second)
		return err
	}); err != nil {
		return 0, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	var resp []byte
	if network == "tcp" {
		if err := writeTCPMsg(c, b); err != nil {
			return 0, nil, err
		}
		if resp, err = readTCPMsg(c, 65535); err != nil {
			return 0, nil, err
		}
	} else {
		if _, err := c.Write(b); err != nil {
			return 0, nil, err
		}
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil {
			return 0, nil, err
		}
		resp = buf[:n]
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		return 0, nil, err
	}
	if m.Header.ID != 0x4242 || len(resp) < 2 || binary.BigEndian.Uint16(resp) != 0x4242 {
		return 0, nil, fmt.Errorf("an answer with ID %d", m.Header.ID)
	}
	var addrs []string
	for _, rr := range m.Answers {
		switch body := rr.Body.(type) {
		case *dnsmessage.AResource:
			addrs = append(addrs, netip.AddrFrom4(body.A).String())
		case *dnsmessage.AAAAResource:
			addrs = append(addrs, netip.AddrFrom16(body.AAAA).String())
		}
	}
	return m.Header.RCode, addrs, nil
}
