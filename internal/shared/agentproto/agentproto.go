// Package agentproto holds what both ends of the bangerd ↔ banger-agent
// channel share besides protocol 2's framing (internal/shared/agentmux): where
// the agent listens (VsockPort, SerialPortName), the reports it returns
// (Health, ProbeResult, TransferResult), the names and params of the
// calls it serves (calls.go), and the guest operations a handler may
// implement (GuestOps, served as calls by Call).
//
// Protocol 1 (newline-delimited JSON requests answered by one response
// line each) is gone: banger-agent answers nothing before a host proved it
// holds the VM's agent key, and then speaks protocol 2. What survives of
// it is the shape of the line-mode messages that open protocol 2's
// authenticated upgrade — a JSON object per line, "id" first, refused with
// an Error — and the error codes here, which an agent of protocol 1 sent
// when it did not know a request type ("upgrade" included), so a host can
// still tell such an agent apart and name the fix.
package agentproto

import "time"

const (
	// Version is protocol 1's number, the one an agent reports in Health
	// before protocol 2 (agentmux.Protocol) stamps its own.
	Version = 1
	// VsockPort is the AF_VSOCK port the agent listens on.
	VsockPort = 1024
	// SerialPortName is the name of the virtio-serial port the agent
	// serves (the guest sees it in /sys/class/virtio-ports/*/name).
	SerialPortName = "banger.agent"
)

// Guest operation calls: protocol 1's request types, kept as the method
// names of protocol 2 calls (see Call).
const (
	// TypeProbeTCP asks whether a TCP port inside the guest accepts
	// connections on loopback (readiness probes, e.g. opencode on 4096).
	TypeProbeTCP = "probe_tcp"
	// TypeHostKeys asks for the guest's SSH host public keys, so the host
	// can pin them in known_hosts without trusting on first use.
	TypeHostKeys = "host_keys"
	// TypePowerOff asks the guest to shut down cleanly.
	TypePowerOff = "poweroff"
)

// Error codes carried in Error.Code. CodeUnknownType is also what an
// agent of protocol 1 answers to the upgrade request.
const (
	CodeUnknownType = "unknown_type"
	CodeBadRequest  = "bad_request"
	CodeInternal    = "internal"
)

// ProbeResult says whether a guest TCP port accepted a connection.
type ProbeResult struct {
	Port  int    `json:"port"`
	Open  bool   `json:"open"`
	Error string `json:"error,omitempty"`
}

// Error is a refused request or call. Message names the next action.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return "agent: " + e.Message + " (" + e.Code + ")" }

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
	// Payload is how applying this boot's payload (internal/shared/bootpayload)
	// went: "pending" (waiting for /root), "applied", "none" (the boot
	// had no payload), or "failed: <why>".
	Payload string `json:"payload,omitempty"`
}
