package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testPublishedPort publishes the guest's sshd with `vm port`, reads its
// banner on the host's loopback (inside the test's namespace, where the
// daemon runs) through the agent channel, checks vm show lists the port,
// and that --rm closes it. (The relay's throughput is measured by
// portfwd's BenchmarkForward; TestEgressAndPorts publishes a port on a VM
// whose egress is none.)
func testPublishedPort(t *testing.T, e *env) {
	out := e.must("vm", "port", "g", "22").stdout
	i := strings.Index(out, "http://127.0.0.1:")
	if i < 0 {
		t.Fatalf("vm port printed %q, want its URL", out)
	}
	hostPort, err := strconv.Atoi(strings.TrimSpace(out[i+len("http://127.0.0.1:"):]))
	if err != nil {
		t.Fatalf("vm port printed %q: %v", out, err)
	}
	if v := vmShow(t, e, "g"); len(v.Ports) != 1 || v.Ports[0].HostPort != hostPort || v.Ports[0].GuestPort != 22 {
		t.Fatalf("vm show's ports = %+v, want 22 on %d", v.Ports, hostPort)
	}
	banner := func() string {
		cmd := exec.Command("ip", "netns", "exec", e.netns, "timeout", "20", "bash", "-c",
			fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && head -c 8 <&3", hostPort))
		b, _ := cmd.Output()
		return string(b)
	}
	var got string
	waitFor(t, hangGuard, "sshd's banner on the published port", func() bool {
		got = banner()
		return strings.HasPrefix(got, "SSH-2.0-")
	})
	e.must("vm", "port", "g", "--rm", "22")
	time.Sleep(100 * time.Millisecond)
	if got := banner(); got != "" {
		t.Errorf("after --rm, the host port still relays (%q)", got)
	}
}
