// Package agentproto is the wire protocol between bangerd and banger-agent.
//
// It owns the message types, their framing and both ends of an exchange:
// the host-side calls (CheckHealth, Hello) and the guest-side loop (Serve).
//
// Framing: newline-delimited JSON over a byte stream, one message per line.
// The stream is either an AF_VSOCK connection (port VsockPort) or a
// virtio-serial port (named SerialPortName). A virtio-serial port has no
// connection boundaries: bytes written for a previous host connection may
// still be queued in either direction. So every request carries a random
// ID, the host skips every line that is not the response with its ID
// (garbage, stale replies), the host starts each request on a fresh line,
// and both ends recover a message glued to the tail of a partial line.
//
// Versioning: Version is the protocol this build speaks. A "hello"
// exchange tells each end the other's version and the request types it
// supports. Unknown request types get an error response that names the
// supported ones, so an older agent answers a newer host clearly.
//
// Protocol 1 survives only as the line-mode preamble of protocol 2's
// authenticated upgrade (internal/agentmux): its framing and its message
// shape. banger-agent answers no protocol 1 request any more: before a
// host proved it holds the VM's agent key it serves nothing. Serve and
// Client remain to play an agent of an earlier release in tests; the
// types (Health, ProbeResult, the request type names used as call
// methods) are protocol 2's too.
package agentproto

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

const (
	// Version is the protocol version this build speaks.
	Version = 1
	// VsockPort is the AF_VSOCK port the agent listens on.
	VsockPort = 1024
	// SerialPortName is the name of the virtio-serial port the agent
	// serves (the guest sees it in /sys/class/virtio-ports/*/name).
	SerialPortName = "banger.agent"
	// MaxLineBytes bounds one message; longer lines are skipped.
	MaxLineBytes = 1 << 20
)

// Request types.
const (
	TypeHello  = "hello"
	TypeHealth = "health"
	// TypeProbeTCP asks whether a TCP port inside the guest accepts
	// connections on loopback (readiness probes, e.g. opencode on 4096).
	TypeProbeTCP = "probe_tcp"
	// TypeHostKeys asks for the guest's SSH host public keys, so the host
	// can pin them in known_hosts without trusting on first use.
	TypeHostKeys = "host_keys"
	// TypePowerOff asks the guest to shut down cleanly.
	TypePowerOff = "poweroff"
)

// SupportedTypes returns every request type this protocol version defines.
func SupportedTypes() []string {
	return []string{TypeHello, TypeHealth, TypeProbeTCP, TypeHostKeys, TypePowerOff}
}

// Error codes carried in Error.Code.
const (
	CodeUnknownType = "unknown_type"
	CodeBadRequest  = "bad_request"
	CodeInternal    = "internal"
)

// Request is one host→guest message.
type Request struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Hello *Hello `json:"hello,omitempty"` // with TypeHello
	Port  int    `json:"port,omitempty"`  // with TypeProbeTCP
}

// Response answers the Request with the same ID.
type Response struct {
	ID     string  `json:"id"`
	Type   string  `json:"type"`
	Error  *Error  `json:"error,omitempty"`
	Hello  *Hello  `json:"hello,omitempty"`  // with TypeHello
	Health *Health `json:"health,omitempty"` // with TypeHealth
	// Probe answers TypeProbeTCP.
	Probe *ProbeResult `json:"probe,omitempty"`
	// HostKeys answers TypeHostKeys: authorized_keys-format lines.
	HostKeys []string `json:"host_keys,omitempty"`
}

// ProbeResult says whether a guest TCP port accepted a connection.
type ProbeResult struct {
	Port  int    `json:"port"`
	Open  bool   `json:"open"`
	Error string `json:"error,omitempty"`
}

// Error is a failed request. Message names the next action.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return "agent: " + e.Message + " (" + e.Code + ")" }

// Hello describes one end of the protocol.
type Hello struct {
	// Protocol is the highest protocol version the sender speaks.
	Protocol int `json:"protocol"`
	// Types are the request types the sender serves (guest) or may send
	// (host).
	Types []string `json:"types,omitempty"`
}

// Health is the guest's answer to a health request.
type Health struct {
	Protocol     int    `json:"protocol"`
	AgentVersion string `json:"agent_version"`
	BuildID      string `json:"build_id"`
	Hostname     string `json:"hostname"`
	Kernel       string `json:"kernel"` // uname -r
	UptimeMS     int64  `json:"uptime_ms"`
	// Root is the filesystem type of /, e.g. "ext4".
	Root string `json:"root"`
	// RootMount is the source of the /root mount (the VM's work disk,
	// e.g. /dev/vdb), or "" when /root is not a mount point.
	RootMount string    `json:"root_mount"`
	Time      time.Time `json:"time"`
	// Payload is how applying this boot's payload (internal/bootpayload)
	// went: "pending" (waiting for /root), "applied", "none" (the boot
	// had no payload), or "failed: <why>".
	Payload string `json:"payload,omitempty"`
}

// newID returns a random request ID.
func newID() string {
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}
