package guestsession

import (
	"errors"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"strings"
)

// Mode says how a session's process is wired to the agent
// (agentproto.SessionMode).
type Mode = agentproto.SessionMode

const (
	ModePipe = agentproto.SessionPipe
	ModeTTY  = agentproto.SessionTTY
)

// Session states, as reported in Info.State.
const (
	StateRunning = agentproto.SessionRunning
	StateExited  = agentproto.SessionExited
	StateFailed  = agentproto.SessionFailed
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

// Info is a session's metadata, as listed and as persisted in the state
// dir: the wire type both ends of the agent share (agentproto).
type Info = agentproto.SessionInfo

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
