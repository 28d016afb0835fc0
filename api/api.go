// Package api defines banger's versioned wire protocol: the JSON types that
// cross bangerd's Unix socket under /v1, and the typed errors that come back
// to the client as the same Go values.
//
// Only this package and package client are meant to be imported from outside
// the module. Domain code converts to and from these types at one boundary,
// the daemon's HTTP handlers.
package api

import "time"

// Version is the path prefix of this API revision.
const Version = "v1"

// Header names used on every response.
const (
	HeaderBuildID = "Banger-Build-Id"
	HeaderVersion = "Banger-Version"
)

// ContentTypeNDJSON is the media type of streamed event bodies: one JSON
// object per line.
const ContentTypeNDJSON = "application/x-ndjson"

// DaemonStatus is the answer to GET /v1/daemon.
type DaemonStatus struct {
	Version   string `json:"version"`
	BuildID   string `json:"build_id"`
	PID       int    `json:"pid"`
	UID       int    `json:"uid"`
	Socket    string `json:"socket"`
	StorePath string `json:"store_path"`
	// LogFile is the daemon's log file; "" when it logs to the journal
	// (bangerd under systemd: `journalctl -u bangerd`).
	LogFile string `json:"log_file"`
	// ManagedBy names the service manager that started the daemon
	// ("systemd"); "" when banger (or a user) started it.
	ManagedBy  string `json:"managed_by,omitempty"`
	Executable string `json:"executable"`
	// ExecutableStamp identifies the executable file the daemon started
	// from (size and modification time); when the installed bangerd no
	// longer matches it, the CLI asks that binary for its build id.
	ExecutableStamp string    `json:"executable_stamp"`
	StartedAt       time.Time `json:"started_at"`
	Uptime          Duration  `json:"uptime"`
}

// ShutdownRequest asks the daemon to exit (POST /v1/daemon/shutdown).
type ShutdownRequest struct {
	// Reason is logged by the daemon.
	Reason string `json:"reason,omitempty"`
}
