package api

import "time"

// Session states.
const (
	SessionRunning = "running"
	SessionExited  = "exited"
	// SessionFailed: the command ended within a second of its start with
	// a non-zero exit code or a signal (see Diagnostics).
	SessionFailed = "failed"
	// SessionLost: the store remembers the session but the guest no
	// longer knows it (the VM stopped or rebooted while it ran).
	SessionLost = "lost"
)

// Session is a long-lived command in a guest, owned by the guest's agent.
type Session struct {
	ID   string   `json:"id"`
	Name string   `json:"name,omitempty"`
	VM   string   `json:"vm"`
	Argv []string `json:"argv"`
	Cwd  string   `json:"cwd"`
	// EnvKeys lists the keys of the environment the session was started
	// with; values are never recorded.
	EnvKeys   []string  `json:"env_keys,omitempty"`
	TTY       bool      `json:"tty"`
	PID       int       `json:"pid"`
	State     string    `json:"state"`
	StartedAt time.Time `json:"started_at"`
	ExitedAt  time.Time `json:"exited_at,omitzero"`
	// ExitCode is set once the command exited on its own.
	ExitCode *int `json:"exit_code,omitempty"`
	// Signal names the signal that ended the command, e.g. "SIGTERM".
	Signal      string   `json:"signal,omitempty"`
	Diagnostics []string `json:"diagnostics,omitempty"`
	// ForkedFrom names the VM a session was copied from by `banger vm
	// fork`: the command runs on in the fork as a copy of the source's.
	ForkedFrom  string `json:"forked_from,omitempty"`
	AttachCount int    `json:"attach_count"`
	// OutputBytes is the length of the session's output so far: the
	// offset its next byte gets. BufferedFrom is the oldest offset still
	// buffered for replay.
	OutputBytes  int64 `json:"output_bytes"`
	BufferedFrom int64 `json:"buffered_from"`
	// Orphaned: the guest agent restarted while the command ran, so later
	// output is not captured and its stdin is gone.
	Orphaned bool `json:"orphaned,omitempty"`
}

// SessionList is the answer to GET /v1/vms/{vm}/sessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

// StartSessionRequest starts a session. Cwd defaults to /root/repo when it
// exists, else /root.
type StartSessionRequest struct {
	Name string   `json:"name,omitempty"`
	Argv []string `json:"argv"`
	Cwd  string   `json:"cwd,omitempty"`
	Env  []string `json:"env,omitempty"`
	TTY  bool     `json:"tty,omitempty"`
	Rows uint16   `json:"rows,omitempty"`
	Cols uint16   `json:"cols,omitempty"`
}

// ExecResult answers POST /v1/vms/{vm}/exec?wait=true: the command ran
// to its end with no input, and this is what it wrote (each stream cut at
// ExecOutputLimit; the rest was read and dropped) and how it ended. For
// front ends that cannot hold a stream open, such as a web page's exec
// box.
type ExecResult struct {
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	ExitCode        int    `json:"exit_code"`
	Signal          string `json:"signal,omitempty"`
	StdoutTruncated bool   `json:"stdout_truncated,omitempty"`
	StderrTruncated bool   `json:"stderr_truncated,omitempty"`
}

// ExecOutputLimit bounds each stream an ExecResult carries.
const ExecOutputLimit = 1 << 20

// SignalSessionRequest sends a signal ("TERM", "KILL", "INT", "HUP") to a
// session's process group.
type SignalSessionRequest struct {
	Signal string `json:"signal"`
}

// ExecRequest runs a command in a guest and streams it: POST
// /v1/vms/{vm}/exec with "Upgrade: banger-stream" switches the connection
// to the agent's exec frames (see client.Exec).
type ExecRequest struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"`
	Cwd  string   `json:"cwd,omitempty"`
	TTY  bool     `json:"tty,omitempty"`
	Rows uint16   `json:"rows,omitempty"`
	Cols uint16   `json:"cols,omitempty"`
}

// ExitStatus is how a guest command ended.
type ExitStatus struct {
	// Code is the exit code, or -1 when a signal ended the command.
	Code int `json:"code"`
	// Signal names the signal that ended it, e.g. "SIGKILL".
	Signal string `json:"signal,omitempty"`
}

// Chunk is a piece of a session's output. Stream is "stdout", "stderr",
// "tty" (a terminal's bytes) or "gap" (Dropped bytes at Offset are no
// longer buffered).
type Chunk struct {
	Stream  string
	Offset  int64
	Data    []byte
	Dropped int64
}

// Workspace modes.
const (
	WorkspaceGit      = "git"
	WorkspaceFullCopy = "full_copy"
)

// TransferResult says what a workspace prepare or a copy into the guest
// installed.
type TransferResult struct {
	// Path is where it went in the guest (for a copy: the final path).
	Path     string `json:"path"`
	Files    int    `json:"files"`
	Dirs     int    `json:"dirs"`
	Symlinks int    `json:"symlinks"`
	Bytes    int64  `json:"bytes"`
	// GuestElapsed is the guest's share: extraction and sync.
	GuestElapsed Duration `json:"guest_elapsed"`
}

// HeaderSession carries the session (JSON) in the answer that switches an
// attach connection to the stream protocol.
const HeaderSession = "Banger-Session"

// UpgradeStream is the Upgrade header value of the streaming endpoints
// (exec, attach).
const UpgradeStream = "banger-stream"

// ContentTypeTar is the media type of tar streams (workspace, copy).
const ContentTypeTar = "application/x-tar"

// TrailerError carries an error that happened after a streamed answer
// began (a copy out of the guest failing halfway), as api.Error JSON.
const TrailerError = "Banger-Error"

// WindowSize is a terminal size.
type WindowSize struct {
	Rows, Cols uint16
}
