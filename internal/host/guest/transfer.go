package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// Exec opens an exec stream for the caller to splice to its client; the
// agent has started the command when it returns.
func (s *Service) Exec(ctx context.Context, vmName string, req api.ExecRequest) (*agentmux.Stream, error) {
	if len(req.Argv) == 0 {
		return nil, api.FieldErrorf("argv", AllowedArgv, "argv is empty: exec needs a command to run")
	}
	_, sess, err := s.VMs.Agent(ctx, vmName)
	if err != nil {
		return nil, err
	}
	st, _, err := sess.Open(ctx, agentmux.Header{Type: agentmux.TypeExec, Exec: &agentmux.ExecRequest{
		Argv: req.Argv, Env: req.Env, Cwd: req.Cwd, TTY: req.TTY, Rows: req.Rows, Cols: req.Cols,
	}})
	if err != nil {
		return nil, s.ended(ctx, vmName, req.Argv[0], apiError(err))
	}
	return st, nil
}

// ended explains err, the failure of a request to vmName's agent (what
// names the request), when the VM is the cause: it was deleted or
// stopped by another request while this one ran, which breaks the agent
// session under it. A client then hears that (not found, or failed
// precondition), not the broken session's internal error. A channel that
// fails under a VM that still runs is said to be the agent not answering,
// with how to recover (its own error wrapped). An answer of the agent,
// and a failure whose caller went away, is err unchanged.
func (s *Service) ended(ctx context.Context, vmName, what string, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	v, gerr := s.VMs.Get(ctx, vmName)
	switch {
	case errors.Is(gerr, api.ErrNotFound):
		return api.Errorf(api.CodeNotFound, "VM %s was deleted while %s ran in it (%v)", vmName, what, err)
	case gerr == nil && v.State == api.VMDeleting:
		return api.Errorf(api.CodeNotFound, "VM %s is being deleted: it stopped while %s ran in it (%v)", vmName, what, err)
	case gerr == nil && v.State != api.VMRunning:
		return api.Errorf(api.CodeFailedPrecondition, "VM %s is %s: it stopped while %s ran in it (%v); start it with `banger vm start %s`", vmName, v.State, what, err, vmName)
	}
	var answered *api.Error
	if gerr == nil && !errors.As(err, &answered) {
		// The VM runs but its agent's channel failed: the agent died or
		// hangs (an answer, even a refusal, would be an *api.Error).
		return fmt.Errorf("the guest agent of VM %s is not answering (%w): systemd in the guest restarts it within seconds, so try again; if it keeps failing, restart the VM with `banger vm restart %s`", vmName, err, vmName)
	}
	return err
}

// guestPath checks a guest path from the client, given in the request
// field (query parameter) field.
func guestPath(field, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", api.FieldErrorf(field, AllowedGuestPath, "%s %q is not absolute: give a guest path such as /root/repo", field, p)
	}
	return path.Clean(p), nil
}

// put sends a tar stream to the agent.
func (s *Service) put(ctx context.Context, vmName string, t agentmux.Transfer, r io.Reader) (api.TransferResult, error) {
	_, sess, err := s.VMs.Agent(ctx, vmName)
	if err != nil {
		return api.TransferResult{}, err
	}
	var res agentproto.TransferResult
	if err := sess.Put(ctx, t, r, &res); err != nil {
		return api.TransferResult{}, apiError(err)
	}
	return api.TransferResult{
		Path: res.Path, Files: res.Files, Dirs: res.Dirs, Symlinks: res.Symlinks, Bytes: res.Bytes,
		GuestElapsed: api.Duration(time.Duration(res.ElapsedMS) * time.Millisecond),
	}, nil
}

// CopyIn places a workspace.PackPath stream at dest in the guest, with
// `docker cp` semantics (into dest when it is a directory).
func (s *Service) CopyIn(ctx context.Context, vmName, dest string, r io.Reader) (api.TransferResult, error) {
	dest, err := guestPath("path", dest)
	if err != nil {
		return api.TransferResult{}, err
	}
	return s.put(ctx, vmName, agentmux.Transfer{Path: dest, Op: agentproto.OpCopy}, r)
}

// CopyOut writes the guest file or tree at src to w as a
// workspace.PackPath stream.
func (s *Service) CopyOut(ctx context.Context, vmName, src string, w io.Writer) error {
	src, err := guestPath("path", src)
	if err != nil {
		return err
	}
	_, sess, err := s.VMs.Agent(ctx, vmName)
	if err != nil {
		return err
	}
	return apiError(sess.Get(ctx, agentmux.Transfer{Path: src, Op: agentproto.OpCopy}, w))
}
