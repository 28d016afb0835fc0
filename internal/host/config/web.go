package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Web configures the web UI's listener.
type Web struct {
	// Listen is the loopback address bangerd serves the web UI on from
	// its start, e.g. "127.0.0.1:7180"; "" (the default) keeps it off
	// until `banger web` asks for it.
	Listen string `json:"listen"`
}

// ErrNotLoopback is the reason a web listen address that is not a
// loopback one is refused (errors.Is holds for CheckWebListen's error).
var ErrNotLoopback = errors.New("the web UI listens on loopback only")

// CheckWebListen checks a web UI listen address: host:port where the host
// is "localhost", an IPv4 address in 127.0.0.0/8 or ::1 (bracketed), and
// the port a number from 0 (any free port) to 65535. Anything else on the
// host side is refused with ErrNotLoopback and the ssh -L command that
// reaches a loopback listener from another machine.
func CheckWebListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: give a loopback address with a port, e.g. \"127.0.0.1:7180\"", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%q has no valid port: give a number from 0 to 65535, e.g. \"127.0.0.1:7180\"", addr)
	}
	if IsLoopbackHost(host) {
		return nil
	}
	if n == 0 {
		n = 7180
	}
	return fmt.Errorf("%w (127.0.0.0/8, ::1 or localhost), and %q is not: reach it from another machine with ssh -L %d:127.0.0.1:%d HOST",
		ErrNotLoopback, host, n, n)
}

// IsLoopbackHost reports whether host (a name or an address, without a
// port or brackets) is "localhost" or a loopback address.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

func checkWebListen(c *Config) *Error {
	if c.Web.Listen == "" {
		return nil
	}
	err := CheckWebListen(c.Web.Listen)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotLoopback):
		return &Error{Value: quote(c.Web.Listen), Problem: "is refused: " + err.Error(), Err: err}
	}
	return &Error{Value: quote(c.Web.Listen), Err: err}
}
