package guest

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// What the daemon accepts from a guest about its sessions before any of
// it reaches the store or a client. The guest is untrusted (SPEC §8): a
// list or a field past these bounds is not a session banger made.
const (
	// MaxSessions bounds a session list.
	MaxSessions = 1024
	// maxIDLen bounds a session id (the agent makes 16 hex digits).
	maxIDLen = 64
	// maxNameLen bounds a session name.
	maxNameLen = 128
	// maxArgs and maxArgLen bound argv as recorded (longer is cut).
	maxArgs, maxArgLen = 256, 4 << 10
	// maxCwdLen bounds the working directory (longer is cut).
	maxCwdLen = 4 << 10
	// maxEnvKeys and maxEnvKeyLen bound the recorded environment keys.
	maxEnvKeys, maxEnvKeyLen = 256, 256
	// maxDiagnostics and maxDiagnosticLen bound the diagnostics.
	maxDiagnostics, maxDiagnosticLen = 32, 1 << 10
	// maxSignalLen bounds a signal name ("SIGTERM").
	maxSignalLen = 32
)

// errBadSession is a guest's session report that breaks a bound: the
// caller closes the agent channel (closeChannel).
type errBadSession struct {
	vm, what string
}

func (e errBadSession) Error() string {
	return fmt.Sprintf("the agent of VM %s reported %s: closing the agent channel (the next request reconnects; `banger vm restart %s` if it persists)", e.vm, e.what, e.vm)
}

// closeChannel ends the VM's agent session after the guest broke a
// bound, and returns the error the client sees.
func closeChannel(sess *agentmux.Session, err error) error {
	sess.Close()
	return api.Errorf(api.CodeUnavailable, "%v", err)
}

// checkInfos bounds a session list from the guest (checkInfo each).
func checkInfos(vm string, infos []agentproto.SessionInfo) ([]agentproto.SessionInfo, error) {
	if len(infos) > MaxSessions {
		return nil, errBadSession{vm, fmt.Sprintf("%d sessions, more than %d", len(infos), MaxSessions)}
	}
	out := make([]agentproto.SessionInfo, 0, len(infos))
	seen := make(map[string]bool, len(infos))
	for _, in := range infos {
		in, err := checkInfo(vm, in)
		if err != nil {
			return nil, err
		}
		if seen[in.ID] {
			return nil, errBadSession{vm, fmt.Sprintf("session id %q twice", in.ID)}
		}
		seen[in.ID] = true
		out = append(out, in)
	}
	return out, nil
}

// checkInfo validates what identifies a session (id, name, state, mode,
// numbers) and cuts the free text (argv, cwd, env keys, diagnostics) to
// its bounds, as valid UTF-8.
func checkInfo(vm string, in agentproto.SessionInfo) (agentproto.SessionInfo, error) {
	bad := func(format string, args ...any) (agentproto.SessionInfo, error) {
		return in, errBadSession{vm, fmt.Sprintf(format, args...)}
	}
	switch {
	case !validID(in.ID):
		return bad("a session id of %d bytes that is not 1-%d letters, digits, '-', '_' or '.'", len(in.ID), maxIDLen)
	case len(in.Name) > maxNameLen || !utf8.ValidString(in.Name) || strings.ContainsFunc(in.Name, isControl):
		return bad("a session name of %d bytes that is not up to %d bytes of printable UTF-8", len(in.Name), maxNameLen)
	case in.State != agentproto.SessionRunning && in.State != agentproto.SessionExited && in.State != agentproto.SessionFailed:
		return bad("session state %q", cut(in.State, 32))
	case in.Mode != agentproto.SessionPipe && in.Mode != agentproto.SessionTTY && in.Mode != "":
		return bad("session mode %q", cut(string(in.Mode), 32))
	case in.PID < 0 || in.OutputBytes < 0 || in.BufferedFrom < 0 || in.BufferedFrom > in.OutputBytes || in.AttachCount < 0:
		return bad("negative or inconsistent numbers for session %s", in.ID)
	}
	in.Argv = cutAll(in.Argv, maxArgs, maxArgLen)
	in.Cwd = cut(in.Cwd, maxCwdLen)
	in.EnvKeys = cutAll(in.EnvKeys, maxEnvKeys, maxEnvKeyLen)
	in.Diagnostics = cutAll(in.Diagnostics, maxDiagnostics, maxDiagnosticLen)
	in.Signal = cut(in.Signal, maxSignalLen)
	return in, nil
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// cut returns s as valid UTF-8 of at most max bytes, marking a cut with
// "…" (within max).
func cut(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	const mark = "…"
	end := max - len(mark)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + mark
}

// cutAll keeps at most n strings of list, each cut to max bytes; a cut
// list ends with a note of how many were left out.
func cutAll(list []string, n, max int) []string {
	if list == nil {
		return nil
	}
	out := make([]string, 0, min(len(list), n))
	for i, s := range list {
		if i == n-1 && len(list) > n {
			out = append(out, fmt.Sprintf("… (%d more)", len(list)-i))
			break
		}
		out = append(out, cut(s, max))
	}
	return out
}
