package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/bangerdev/banger/internal/guest/guestsession"
	"github.com/bangerdev/banger/internal/guest/identity"
	"github.com/bangerdev/banger/internal/guest/workdiff"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/workspace"
	"golang.org/x/sys/unix"
)

// SessionStateDir is where the agent keeps its sessions' state: a tmpfs,
// so a guest reboot starts with none, while an agent restart finds them.
const SessionStateDir = "/run/banger/sessions"

// muxHandler is what banger-agent serves over protocol 2: health and the
// guest operations of protocol 1, file transfer (workspace and copy),
// sessions and attach.
type muxHandler struct {
	fullHandler
	sessions    *guestsession.Manager // nil when sessionsErr says why
	sessionsErr error
	identity    *identity.Applier // nil refuses the identity call
	// workspaceState keeps full_copy workspaces' bases (workdiff.StateDir
	// when empty).
	workspaceState string
}

var (
	_ agentmux.Handler  = (*muxHandler)(nil)
	_ agentmux.Caller   = (*muxHandler)(nil)
	_ agentmux.Attacher = (*muxHandler)(nil)
)

// Error codes the host maps to its own (they are bangerd's API codes).
const (
	codeNotFound     = "not_found"
	codeExists       = "already_exists"
	codePrecondition = "failed_precondition"
	codeInvalid      = "invalid_argument"
)

// codeFor picks the code the host sees for err.
func codeFor(err error) string {
	switch {
	case errors.Is(err, guestsession.ErrNotFound):
		return codeNotFound
	case errors.Is(err, guestsession.ErrNameInUse):
		return codeExists
	case errors.Is(err, guestsession.ErrPreflight), errors.Is(err, guestsession.ErrNotRunning),
		errors.Is(err, guestsession.ErrStillRunning), errors.Is(err, guestsession.ErrOrphaned),
		errors.Is(err, guestsession.ErrWrongMode), errors.Is(err, guestsession.ErrStdinClosed),
		errors.Is(err, workspace.ErrTooLarge), errors.Is(err, fs.ErrExist),
		errors.Is(err, workdiff.ErrNoBase), errors.Is(err, workdiff.ErrNoWork), errors.Is(err, workdiff.ErrNoGit):
		return codePrecondition
	case errors.Is(err, workdiff.ErrBadParams):
		return agentmux.CodeBadRequest
	case errors.Is(err, guestsession.ErrInvalidSpec), errors.Is(err, guestsession.ErrBadOffset),
		errors.Is(err, workspace.ErrUnsafeEntry), errors.Is(err, fs.ErrNotExist):
		return codeInvalid
	}
	return agentmux.CodeInternal
}

func coded(err error) error {
	if err == nil {
		return nil
	}
	var e *agentmux.Error
	if errors.As(err, &e) {
		return err
	}
	return &agentmux.Error{Code: codeFor(err), Message: err.Error()}
}

func (h *muxHandler) sessionManager() (*guestsession.Manager, error) {
	if h.sessions == nil {
		return nil, &agentmux.Error{Code: agentmux.CodeInternal, Message: fmt.Sprintf("the agent could not open its session state: %v; see `banger vm logs` (banger-agent)", h.sessionsErr)}
	}
	return h.sessions, nil
}

// guestPath checks that a path from the host is absolute and clean.
func guestPath(p, fallback string) (string, error) {
	if p == "" {
		p = fallback
	}
	if p == "" || !filepath.IsAbs(p) {
		return "", &agentmux.Error{Code: codeInvalid, Message: fmt.Sprintf("guest path %q is not absolute: give a path such as /root/repo", p)}
	}
	return filepath.Clean(p), nil
}

// stateDir is where full_copy workspaces' bases are kept.
func (h *muxHandler) stateDir() string {
	if h.workspaceState == "" {
		return workdiff.StateDir
	}
	return h.workspaceState
}

// decodeParams decodes a transfer's params into v; none leaves v as it is
// (a host that predates them).
func decodeParams(req agentmux.Transfer, v any) error {
	if len(req.Params) == 0 {
		return nil
	}
	if err := json.Unmarshal(req.Params, v); err != nil {
		return &agentmux.Error{Code: agentmux.CodeBadRequest, Message: fmt.Sprintf("%s: bad params %.200s: %v", req.Op, req.Params, err)}
	}
	return nil
}

// Put installs a workspace (workspace.Extract) or places a copied file or
// tree (workspace.Place). A workspace installed in full_copy mode is
// recorded as the base vm diff compares it with (workdiff.RecordBase);
// failing to record it fails the put, except where the guest has no git
// (vm diff then says so).
func (h *muxHandler) Put(ctx context.Context, req agentmux.Transfer, r io.Reader) (any, error) {
	start := time.Now()
	var (
		res   agentproto.TransferResult
		stats workspace.Stats
		err   error
	)
	switch req.Op {
	case agentproto.OpWorkspace:
		if res.Path, err = guestPath(req.Path, agentproto.WorkspaceDir); err != nil {
			return nil, err
		}
		var p agentproto.WorkspaceParams
		if err := decodeParams(req, &p); err != nil {
			return nil, err
		}
		mode, merr := workspace.ParseMode(p.Mode)
		if merr != nil {
			return nil, &agentmux.Error{Code: agentmux.CodeBadRequest, Message: merr.Error()}
		}
		if stats, err = workspace.Extract(ctx, r, res.Path, workspace.ExtractOptions{}); err != nil {
			break
		}
		if mode != workspace.ModeFullCopy {
			_ = workdiff.ForgetBase(res.Path, h.stateDir())
			break
		}
		if rerr := workdiff.RecordBase(ctx, res.Path, h.stateDir()); rerr != nil && !errors.Is(rerr, workdiff.ErrNoGit) {
			return nil, &agentmux.Error{Code: agentmux.CodeInternal, Message: fmt.Sprintf("the workspace is installed at %s, but recording it as the base of vm diff and vm pull failed: %v: send it again with `banger vm workspace prepare`", res.Path, rerr)}
		}
	case agentproto.OpCopy:
		var target string
		if target, err = guestPath(req.Path, ""); err != nil {
			return nil, err
		}
		res.Path, stats, err = workspace.Place(ctx, r, target, workspace.ExtractOptions{})
	default:
		return nil, &agentmux.Error{Code: agentmux.CodeBadRequest, Message: fmt.Sprintf("unknown put operation %q: want %q or %q", req.Op, agentproto.OpWorkspace, agentproto.OpCopy)}
	}
	if err != nil {
		return nil, coded(err)
	}
	res.Files, res.Dirs, res.Symlinks, res.Bytes = stats.Files, stats.Dirs, stats.Symlinks, stats.Bytes
	res.ElapsedMS = time.Since(start).Milliseconds()
	return res, nil
}

// Get packs a guest file or tree (workspace.PackPath), or answers what
// changed in a workspace since it was sent (workdiff).
func (h *muxHandler) Get(ctx context.Context, req agentmux.Transfer, w io.Writer) error {
	switch req.Op {
	case agentproto.OpCopy:
	case agentproto.OpChanges:
		dir, err := guestPath(req.Path, agentproto.WorkspaceDir)
		if err != nil {
			return err
		}
		var p agentproto.ChangesParams
		if err := decodeParams(req, &p); err != nil {
			return err
		}
		return coded(workdiff.Changes(ctx, dir, h.stateDir(), p, w))
	case agentproto.OpBundle:
		dir, err := guestPath(req.Path, agentproto.WorkspaceDir)
		if err != nil {
			return err
		}
		var p agentproto.BundleParams
		if err := decodeParams(req, &p); err != nil {
			return err
		}
		return coded(workdiff.Bundle(ctx, dir, p, w))
	default:
		return &agentmux.Error{Code: agentmux.CodeBadRequest, Message: fmt.Sprintf("unknown get operation %q: want %q, %q or %q", req.Op, agentproto.OpCopy, agentproto.OpChanges, agentproto.OpBundle)}
	}
	src, err := guestPath(req.Path, "")
	if err != nil {
		return err
	}
	_, err = workspace.PackPath(ctx, src, w)
	return coded(err)
}

// Call serves the session methods, the identity call and protocol 1's
// guest operations.
func (h *muxHandler) Call(ctx context.Context, method string, params json.RawMessage) (any, error) {
	if method == agentproto.MethodIdentity {
		return h.callIdentity(ctx, params)
	}
	if !strings.HasPrefix(method, "session.") {
		res, err := agentproto.Call(ctx, h.fullHandler, method, params)
		if errors.Is(err, agentproto.ErrUnknownMethod) {
			return nil, &agentmux.Error{Code: agentmux.CodeUnknownType, Message: err.Error() + ": update banger-agent in the image"}
		}
		return res, err
	}
	m, err := h.sessionManager()
	if err != nil {
		return nil, err
	}
	decode := func(v any) error {
		if err := json.Unmarshal(params, v); err != nil {
			return &agentmux.Error{Code: agentmux.CodeBadRequest, Message: fmt.Sprintf("%s: bad params %s: %v", method, params, err)}
		}
		return nil
	}
	switch method {
	case agentproto.MethodSessionStart:
		var p agentproto.SessionStart
		if err := decode(&p); err != nil {
			return nil, err
		}
		spec := guestsession.Spec{Name: p.Name, Argv: p.Argv, Cwd: p.Cwd, Env: p.Env, Rows: p.Rows, Cols: p.Cols, Mode: guestsession.ModePipe}
		if p.TTY {
			spec.Mode = guestsession.ModeTTY
		}
		info, err := m.Start(ctx, spec)
		if err != nil {
			return nil, coded(err)
		}
		// Wait out the early-exit window so a command that dies at once is
		// reported with its diagnostics now.
		if early, err := m.WaitEarly(ctx, info.ID); err == nil {
			info = early
		}
		return info, nil
	case agentproto.MethodSessionList:
		return m.List(), nil
	case agentproto.MethodSessionGet:
		var p agentproto.SessionRef
		if err := decode(&p); err != nil {
			return nil, err
		}
		info, err := m.Get(p.Session)
		return info, coded(err)
	case agentproto.MethodSessionSignal:
		var p agentproto.SessionSignal
		if err := decode(&p); err != nil {
			return nil, err
		}
		name := strings.ToUpper(p.Signal)
		if !strings.HasPrefix(name, "SIG") {
			name = "SIG" + name
		}
		sig := unix.SignalNum(name)
		if sig == 0 {
			return nil, &agentmux.Error{Code: codeInvalid, Message: fmt.Sprintf("unknown signal %q: use TERM, KILL, INT or HUP", p.Signal)}
		}
		if err := m.Signal(p.Session, sig); err != nil {
			return nil, coded(err)
		}
		info, err := m.Get(p.Session)
		return info, coded(err)
	case agentproto.MethodSessionRemove:
		var p agentproto.SessionRef
		if err := decode(&p); err != nil {
			return nil, err
		}
		return nil, coded(m.Remove(p.Session))
	}
	return nil, &agentmux.Error{Code: agentmux.CodeUnknownType, Message: fmt.Sprintf("unknown method %q: update banger-agent in the image", method)}
}

// Attach joins a host stream to a session; with Follow unset it ends at
// the output that existed when it began (logs).
func (h *muxHandler) Attach(ctx context.Context, req agentmux.AttachRequest) (agentmux.Attachment, any, error) {
	m, err := h.sessionManager()
	if err != nil {
		return nil, nil, err
	}
	info, err := m.Get(req.Session)
	if err != nil {
		return nil, nil, coded(err)
	}
	a, err := m.Attach(ctx, info.ID, req.Since)
	if err != nil {
		return nil, nil, coded(err)
	}
	end := int64(-1)
	if !req.Follow {
		end = info.OutputBytes
	}
	return &attachment{a: a, m: m, id: info.ID, end: end}, info, nil
}

// attachment adapts a guestsession.Attachment to agentmux.
type attachment struct {
	a   *guestsession.Attachment
	m   *guestsession.Manager
	id  string
	end int64 // stop here (logs); -1 follows
}

func (t *attachment) Next(ctx context.Context) (agentmux.Chunk, error) {
	if t.end >= 0 && t.a.Offset() >= t.end {
		return agentmux.Chunk{}, io.EOF
	}
	c, err := t.a.Next(ctx)
	if err != nil {
		return agentmux.Chunk{}, err
	}
	if t.end >= 0 && c.Stream != guestsession.StreamGap && c.Offset+int64(len(c.Data)) > t.end {
		c.Data = c.Data[:max(0, t.end-c.Offset)]
	}
	return agentmux.Chunk{Stream: string(c.Stream), Offset: c.Offset, Data: c.Data, Dropped: c.Dropped}, nil
}

func (t *attachment) Write(p []byte) (int, error)    { return t.a.Stdin().Write(p) }
func (t *attachment) CloseStdin() error              { return t.a.CloseStdin() }
func (t *attachment) Resize(rows, cols uint16) error { return t.a.Resize(rows, cols) }
func (t *attachment) Detach() error                  { return t.a.Detach() }

func (t *attachment) Final() any {
	info, err := t.m.Get(t.id)
	if err != nil {
		return nil
	}
	return info
}
