package guestsession

import (
	"errors"
	"strings"
	"time"
)

// Mode says how a session's process is wired to the agent.
type Mode string

const (
	// ModePipe gives the process separate stdin, stdout and stderr pipes.
	ModePipe Mode = "pipe"
	// ModeTTY gives the process a pseudo-terminal as stdin, stdout, stderr
	// and controlling terminal.
	ModeTTY Mode = "tty"
)

// Session states, as reported in Info.State.
const (
	StateRunning = "running"
	// StateExited: the process ended (or is gone with an unknown status).
	StateExited = "exited"
	// StateFailed: the process ended within the early-exit window with a
	// non-zero exit code or a signal.
	StateFailed = "failed"
)

// Stream tags a Chunk of output.
type Stream string

const (
	StreamStdout Stream = "stdout"
	StreamStderr Stream = "stderr"
	// StreamTTY is the terminal's output in TTY mode (stdout and stderr
	// together, as the terminal shows them).
	StreamTTY Stream = "tty"
	// StreamGap marks output an attacher asked for that is no longer
	// buffered; Chunk.Dropped says how many bytes.
	StreamGap Stream = "gap"
)

// Spec describes a session to start.
type Spec struct {
	// Name is optional; when set it must be unique among the Manager's
	// sessions and can be used wherever an id is accepted.
	Name string
	// Argv is the command. Argv[0] is an executable path (absolute, or
	// relative to Cwd) or a name resolved in the session's PATH.
	Argv []string
	// Cwd is the absolute working directory; "" takes the Manager's
	// default (WithDefaultCwd).
	Cwd string
	// Env holds KEY=VAL entries added to (or replacing in) the Manager's
	// base environment (WithBaseEnv). Only the keys are ever recorded.
	Env []string
	// Mode is ModePipe (the default when empty) or ModeTTY.
	Mode Mode
	// Rows and Cols size the terminal in TTY mode (default 24x80).
	Rows, Cols uint16
}

// Info is a session's metadata, as listed and as persisted in the state dir.
type Info struct {
	ID   string   `json:"id"`
	Name string   `json:"name,omitempty"`
	Argv []string `json:"argv"`
	Cwd  string   `json:"cwd"`
	// EnvKeys lists the keys of Spec.Env, never their values.
	EnvKeys   []string  `json:"env_keys,omitempty"`
	Mode      Mode      `json:"mode"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	ExitedAt  time.Time `json:"exited_at,omitzero"`
	// ExitCode is nil while running, when a signal ended the process, and
	// when the exit status is unknown (the process ended while no agent was
	// its parent).
	ExitCode *int `json:"exit_code,omitempty"`
	// Signal names the signal that ended the process, e.g. "SIGTERM".
	Signal string `json:"signal,omitempty"`
	// State is StateRunning, StateExited or StateFailed.
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

// Chunk is a piece of a session's output stream.
type Chunk struct {
	Stream Stream
	// Offset is the absolute offset of Data[0] in the session's output
	// stream (for a gap: the first offset that was lost).
	Offset int64
	Data   []byte
	// Dropped is, for a StreamGap chunk, how many bytes were lost before
	// the next chunk's Offset.
	Dropped int64
}

// Errors a caller can test with errors.Is. The messages of the errors that
// wrap them say what to do next.
var (
	ErrNotFound     = errors.New("session not found")
	ErrInvalidSpec  = errors.New("invalid session spec")
	ErrPreflight    = errors.New("session preflight failed")
	ErrNameInUse    = errors.New("session name in use")
	ErrNotRunning   = errors.New("session is not running")
	ErrStillRunning = errors.New("session is still running")
	ErrBadOffset    = errors.New("offset past the end of the output")
	ErrDetached     = errors.New("attachment detached")
	ErrStdinClosed  = errors.New("session stdin closed")
	ErrOrphaned     = errors.New("session outlived an agent restart")
	ErrWrongMode    = errors.New("operation does not fit the session mode")
)

// PreflightError is what Start returns when a session cannot launch; it
// creates nothing. Diagnostics has one line per problem.
type PreflightError struct {
	Diagnostics []string
}

func (e *PreflightError) Error() string {
	return "session preflight failed: " + strings.Join(e.Diagnostics, "; ")
}

// Is makes errors.Is(err, ErrPreflight) hold.
func (e *PreflightError) Is(target error) bool { return target == ErrPreflight }
