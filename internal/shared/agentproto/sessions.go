package agentproto

import "time"

// SessionMode says how a session's process is wired to the agent.
type SessionMode string

const (
	// SessionPipe gives the process separate stdin, stdout and stderr
	// pipes.
	SessionPipe SessionMode = "pipe"
	// SessionTTY gives the process a pseudo-terminal as stdin, stdout,
	// stderr and controlling terminal.
	SessionTTY SessionMode = "tty"
)

// Session states, as reported in SessionInfo.State.
const (
	SessionRunning = "running"
	// SessionExited: the process ended (or is gone with an unknown status).
	SessionExited = "exited"
	// SessionFailed: the process ended within the early-exit window with a
	// non-zero exit code or a signal.
	SessionFailed = "failed"
)

// SessionInfo is a guest session's metadata: what the agent lists and
// persists (internal/guest/guestsession), and what the host reads back.
type SessionInfo struct {
	ID   string   `json:"id"`
	Name string   `json:"name,omitempty"`
	Argv []string `json:"argv"`
	Cwd  string   `json:"cwd"`
	// EnvKeys lists the keys of the session's environment, never their values.
	EnvKeys   []string    `json:"env_keys,omitempty"`
	Mode      SessionMode `json:"mode"`
	PID       int         `json:"pid"`
	StartedAt time.Time   `json:"started_at"`
	ExitedAt  time.Time   `json:"exited_at,omitzero"`
	// ExitCode is nil while running, when a signal ended the process, and
	// when the exit status is unknown (the process ended while no agent was
	// its parent).
	ExitCode *int `json:"exit_code,omitempty"`
	// Signal names the signal that ended the process, e.g. "SIGTERM".
	Signal string `json:"signal,omitempty"`
	// State is SessionRunning, SessionExited or SessionFailed.
	State string `json:"state"`
	// Orphaned marks a session a restarted agent adopted while its process
	// ran: output after the restart is not captured and stdin is gone.
	Orphaned    bool     `json:"orphaned,omitempty"`
	Diagnostics []string `json:"diagnostics,omitempty"`
	// AttachCount is the number of attachers attached right now.
	AttachCount int `json:"attach_count"`
	// OutputBytes is the total the process produced on the merged output
	// stream: the offset the next byte will get.
	OutputBytes int64 `json:"output_bytes"`
	// BufferedFrom is the offset of the oldest byte still buffered; output
	// before it is gone.
	BufferedFrom int64 `json:"buffered_from"`
}
