package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// portSinkScript serves, on the guest's 127.0.0.1:9000 only, 64 MiB to
// each connection. The Debian image has no python3 or nc; perl-base
// (in every Debian) has IO::Socket::INET.
const portSinkScript = `use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 9000, Listen => 8, ReuseAddr => 1) or die "listen: $!";
my $mib = "x" x 1048576;
while (my $c = $s->accept) { print $c $mib for 1 .. 64; close $c }
`

// portSinkBytes is what one connection to portSinkScript reads.
const portSinkBytes = 64 << 20

// testPublishedPort publishes a guest service that listens on the guest's
// loopback only (so nothing but the agent channel reaches it), reads 64
// MiB from it on the host's loopback, reports the throughput (a figure,
// not an assertion), and removes the port.
func testPublishedPort(t *testing.T, e *env) {
	e.must("vm", "session", "start", "g", "--name", "sink", "--", "perl", "-e", portSinkScript)
	out := e.must("vm", "port", "g", "9000").stdout
	i := strings.Index(out, "http://127.0.0.1:")
	if i < 0 {
		t.Fatalf("vm port printed %q, want its URL", out)
	}
	hostPort, err := strconv.Atoi(strings.TrimSpace(out[i+len("http://127.0.0.1:"):]))
	if err != nil {
		t.Fatalf("vm port printed %q: %v", out, err)
	}
	if v := vmShow(t, e, "g"); len(v.Ports) != 1 || v.Ports[0].HostPort != hostPort || v.Ports[0].GuestPort != 9000 {
		t.Fatalf("vm show's ports = %+v, want 9000 on %d", v.Ports, hostPort)
	}
	// The daemon runs in the test's namespace: so does its loopback.
	read := func() (int, time.Duration) {
		start := time.Now()
		cmd := exec.Command("ip", "netns", "exec", e.netns, "bash", "-c",
			fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && wc -c <&3", hostPort))
		b, _ := cmd.Output()
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n, time.Since(start)
	}
	var n int
	var took time.Duration
	waitFor(t, hangGuard, "64 MiB from the guest's loopback-only service on the published port", func() bool {
		n, took = read() // the first tries may come before perl listens
		return n == portSinkBytes
	})
	t.Logf("published port: %d bytes guest→host in %s: %.1f MB/s (QEMU under TCG, through the agent channel)",
		n, took.Round(time.Millisecond), float64(n)/1e6/took.Seconds())

	e.must("vm", "port", "g", "--rm", "9000")
	if n, _ := read(); n != 0 {
		t.Errorf("after --rm, the host port still relays (%d bytes)", n)
	}
	e.must("vm", "session", "kill", "g", "sink")
}
