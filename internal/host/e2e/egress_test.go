package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/vishvananda/netns"
	"golang.org/x/net/dns/dnsmessage"
)

// The stand-in internet of TestEgressAndPorts: a namespace of its own
// behind a veth from the daemon's namespace, with a DNS server and two
// web servers.
const (
	inetDNS     = "198.51.100.53"
	inetAllowed = "198.51.100.10" // allowed.test
	inetOther   = "198.51.100.20" // other.test
)

// internet makes the stand-in internet next to the env's namespace and
// points the daemon's resolv.conf at its DNS server (ip netns exec binds
// /etc/netns/NAME/resolv.conf over /etc/resolv.conf). Call it before the
// daemon starts in the namespace.
func internet(t *testing.T, e *env) {
	t.Helper()
	inet := newNetns(t)
	short := strings.TrimPrefix(e.netns, "banger-test-")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("ip", "link", "add", "vt"+short, "netns", e.netns, "type", "veth", "peer", "name", "vi"+short, "netns", inet)
	run("ip", "-n", e.netns, "addr", "add", "198.51.100.1/24", "dev", "vt"+short)
	run("ip", "-n", e.netns, "link", "set", "vt"+short, "up")
	for _, a := range []string{inetDNS, inetAllowed, inetOther} {
		run("ip", "-n", inet, "addr", "add", a+"/24", "dev", "vi"+short)
	}
	run("ip", "-n", inet, "link", "set", "vi"+short, "up")
	dir := filepath.Join("/etc/netns", e.netns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+inetDNS+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := netns.GetFromName(inet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	var dnsConn net.PacketConn
	var webs []net.Listener
	inNetns(t, h, func() error {
		if dnsConn, err = net.ListenPacket("udp4", inetDNS+":53"); err != nil {
			return err
		}
		for _, a := range []string{inetAllowed, inetOther} {
			ln, err := net.Listen("tcp4", a+":80")
			if err != nil {
				return err
			}
			webs = append(webs, ln)
		}
		return nil
	})
	t.Cleanup(func() { dnsConn.Close() })
	go serveZone(dnsConn, map[string]string{"allowed.test.": inetAllowed, "other.test.": inetOther})
	for _, ln := range webs {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from %s\n", strings.Split(r.Host, ":")[0])
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
}

// inNetns runs fn on a thread inside ns: sockets it opens stay there.
// The thread goes back to its own namespace before it is unlocked. It
// must: the goroutine may run on the main thread, which the runtime never
// ends, and a main thread left in ns puts this whole test process in it
// for `ip netns pids`, whose cleanup (newNetns) then SIGKILLs it.
func inNetns(t *testing.T, ns netns.NsHandle, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err // still locked: the thread ends with the goroutine
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			done <- err
			return
		}
		err = fn()
		if rerr := netns.Set(orig); rerr != nil {
			done <- fmt.Errorf("returning to the test's namespace: %w", rerr) // left locked
			return
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// serveZone answers A queries for the names in zone (TTL 60 s), NXDOMAIN
// for others, until conn is closed.
func serveZone(conn net.PacketConn, zone map[string]string) {
	buf := make([]byte, 4096)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionAvailable: true})
		b.EnableCompression()
		addr, ok := zone[strings.ToLower(q.Name.String())]
		if !ok {
			b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RCode: dnsmessage.RCodeNameError})
		}
		b.StartQuestions()
		b.Question(q)
		if ok && q.Type == dnsmessage.TypeA {
			b.StartAnswers()
			a := netip.MustParseAddr(addr).As4()
			b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a})
		}
		if msg, err := b.Finish(); err == nil {
			conn.WriteTo(msg, from)
		}
	}
}

// curl fetches url in VM name within a few seconds; ok reports success.
func curl(e *env, name, url string) (string, bool) {
	r := e.runWith(e.extra, "vm", "exec", name, "--", "curl", "-sS", "-m", "4", url)
	return r.stdout + r.stderr, r.code == 0
}

// Egress policies and published ports against real guests: the stand-in
// internet (DNS and web servers in a namespace of their own) is reached
// by name only as the policy allows; literal addresses outside it, other
// VMs and everything under "none" are not; a change on a running VM holds
// at once; refusals are listed; a NAT VM beside them is unaffected; and a
// published port answers on the host's loopback through the agent while
// the VM's egress is "none".
func TestEgressAndPorts(t *testing.T) {
	e := vmEnv(t)
	internet(t, e)
	e.must("vm", "create", "--name", "free", "--memory", "1GiB", "--disk", "2GiB")
	e.must("vm", "create", "--name", "boxed", "--memory", "1GiB", "--disk", "2GiB", "--egress", "allowed.test:80", "--publish", "22")
	free := vmShow(t, e, "free")

	if out, ok := curl(e, "free", "http://other.test/"); !ok || !strings.Contains(out, "hello from other.test") {
		t.Errorf("a NAT VM fetching other.test: %v %q", ok, out)
	}
	if out, ok := curl(e, "boxed", "http://allowed.test/"); !ok || !strings.Contains(out, "hello from allowed.test") {
		t.Errorf("fetching the allowed name: %v %q", ok, out)
	}
	for _, url := range []string{"http://other.test/", "http://" + inetOther + "/", "http://" + inetAllowed + ":8080/"} {
		if out, ok := curl(e, "boxed", url); ok {
			t.Errorf("%s is outside the allowlist but answered: %q", url, out)
		}
	}
	// Asking the upstream directly still goes to banger's resolver.
	if r := e.runWith(e.extra, "vm", "exec", "boxed", "--", "sh", "-c", "printf 'nameserver "+inetDNS+"\\n' > /etc/resolv.conf; getent hosts other.test"); r.code == 0 {
		t.Errorf("other.test resolved through the upstream named directly: %q", r.stdout)
	}
	if r := e.runWith(e.extra, "vm", "exec", "boxed", "--", "ping", "-c", "1", "-W", "2", free.IP); r.code == 0 {
		t.Errorf("boxed reached the other VM %s", free.IP)
	}

	var st api.EgressStatus
	if err := json.Unmarshal([]byte(e.must("vm", "egress", "boxed", "--log", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	var sawName, sawAddr bool
	for _, d := range st.Drops {
		sawName = sawName || d.Name == "other.test"
		sawAddr = sawAddr || (d.Address == inetOther && d.Port == 80)
	}
	if !sawName || !sawAddr || st.Policy.Mode != api.EgressAllow {
		t.Errorf("vm egress --log: %+v", st)
	}

	// A change on the running VM holds at once.
	e.must("vm", "egress", "boxed", "other.test:80")
	if out, ok := curl(e, "boxed", "http://other.test/"); !ok || !strings.Contains(out, "hello from other.test") {
		t.Errorf("other.test after allowing it: %v %q", ok, out)
	}
	if out, ok := curl(e, "boxed", "http://allowed.test/"); ok {
		t.Errorf("allowed.test after replacing the allowlist: %q", out)
	}
	e.must("vm", "egress", "boxed", "none")
	for _, url := range []string{"http://other.test/", "http://" + inetOther + "/", "http://" + free.IP + ":22/"} {
		if out, ok := curl(e, "boxed", url); ok {
			t.Errorf("egress none reached %s: %q", url, out)
		}
	}

	// The published port answers on the host's loopback, through the
	// agent, although the VM reaches nothing.
	v := vmShow(t, e, "boxed")
	if len(v.Ports) != 1 || v.Ports[0].GuestPort != 22 || v.Ports[0].Address != "127.0.0.1" {
		t.Fatalf("boxed's ports: %+v", v.Ports)
	}
	var banner string
	waitFor(t, hangGuard, "sshd's banner on the published port", func() bool {
		r := exec.Command("ip", "netns", "exec", e.netns, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d; head -c 8 <&3", v.Ports[0].HostPort))
		out, _ := r.Output()
		banner = string(out)
		return strings.HasPrefix(banner, "SSH-2.0-")
	})
	e.must("vm", "delete", "boxed", "free")
	verifyClean(t, e)
}
