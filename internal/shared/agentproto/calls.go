package agentproto

// Protocol 2 (internal/shared/agentmux) carries calls: a method name and JSON
// params, answered with a JSON result. The methods of protocol 1's guest
// operations keep their request type as their name (TypeProbeTCP with
// ProbeParams, TypeHostKeys, TypePowerOff; see Call). These are the rest:
// the guest's sessions (internal/guest/guestsession), whose results are
// guestsession.Info values (one, or a list for MethodSessionList).
const (
	MethodSessionStart  = "session.start"
	MethodSessionList   = "session.list"
	MethodSessionGet    = "session.get"
	MethodSessionSignal = "session.signal"
	MethodSessionRemove = "session.remove"
)

// ProbeParams are the params of a TypeProbeTCP call.
type ProbeParams struct {
	Port int `json:"port"`
}

// SessionStart are the params of MethodSessionStart. The agent runs the
// preflight, starts the command and waits out the early-exit window, so
// the result already says whether the command died at once.
type SessionStart struct {
	Name string   `json:"name,omitempty"`
	Argv []string `json:"argv"`
	Cwd  string   `json:"cwd,omitempty"`
	Env  []string `json:"env,omitempty"`
	TTY  bool     `json:"tty,omitempty"`
	Rows uint16   `json:"rows,omitempty"`
	Cols uint16   `json:"cols,omitempty"`
}

// SessionRef names a session (id or name): the params of
// MethodSessionGet and MethodSessionRemove.
type SessionRef struct {
	Session string `json:"session"`
}

// SessionSignal are the params of MethodSessionSignal: Signal is a name
// such as "TERM" or "KILL" (with or without the SIG prefix).
type SessionSignal struct {
	Session string `json:"session"`
	Signal  string `json:"signal"`
}

// Transfer operations (agentmux.Transfer.Op).
const (
	// OpWorkspace: a put whose tar stream (workspace.Pack) replaces the
	// directory at Path (default WorkspaceDir) atomically.
	OpWorkspace = "workspace"
	// OpCopy: a put of a workspace.PackPath stream placed at Path
	// (`docker cp` semantics), or a get of Path as such a stream.
	OpCopy = "copy"
)

// WorkspaceDir is where a workspace goes when a put names no path.
const WorkspaceDir = "/root/repo"

// TransferResult is the result of a put: what was installed where.
type TransferResult struct {
	Path     string `json:"path"`
	Files    int    `json:"files"`
	Dirs     int    `json:"dirs"`
	Symlinks int    `json:"symlinks"`
	Bytes    int64  `json:"bytes"`
	// ElapsedMS is the guest's time from the first byte to the installed
	// tree (extraction and sync).
	ElapsedMS int64 `json:"elapsed_ms"`
}
