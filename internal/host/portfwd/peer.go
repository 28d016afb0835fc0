package portfwd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ErrPeerUnknown: the other end of a loopback connection is not in the
// kernel's socket table (it closed already), so its owner is unknown.
var ErrPeerUnknown = errors.New("the connecting socket is gone")

// procNetTCP is the kernel's table of the namespace's IPv4 TCP sockets.
var procNetTCP = "/proc/net/tcp"

// PeerUID returns the user that owns the other end of c, a TCP
// connection accepted on a loopback listener: the socket whose local
// address is c's remote one and whose remote address is c's local one, as
// the namespace's /proc/net/tcp lists it (the way identd answers). A
// published port serves only its daemon's owner and root with it, as the
// guests' own addresses do.
func PeerUID(c net.Conn) (uint32, error) {
	remote, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return 0, err
	}
	local, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil {
		return 0, err
	}
	if !remote.Addr().Is4() || !remote.Addr().IsLoopback() {
		return 0, fmt.Errorf("%v is not a loopback IPv4 peer", remote)
	}
	f, err := os.Open(procNetTCP)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	want := procAddr(remote) + " " + procAddr(local)
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[1]+" "+fields[2] != want {
			continue
		}
		uid, err := strconv.ParseUint(fields[7], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%s: uid %q: %w", procNetTCP, fields[7], err)
		}
		return uint32(uid), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%w (%v)", ErrPeerUnknown, remote)
}

// procAddr renders an IPv4 address and port as /proc/net/tcp does: the
// address's four bytes read as a native-order word, the port as a number,
// both in upper-case hex.
func procAddr(ap netip.AddrPort) string {
	a := ap.Addr().As4()
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a[:]), ap.Port())
}
