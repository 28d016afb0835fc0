package guest

import (
	"context"
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
		return nil, apiError(err)
	}
	return st, nil
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

// PrepareWorkspace installs a workspace tar stream (workspace.Pack) at dir
// (default /root/repo), replacing what was there atomically.
func (s *Service) PrepareWorkspace(ctx context.Context, vmName, dir string, r io.Reader) (api.TransferResult, error) {
	if dir == "" {
		dir = agentproto.WorkspaceDir
	}
	dir, err := guestPath("dir", dir)
	if err != nil {
		return api.TransferResult{}, err
	}
	return s.put(ctx, vmName, agentmux.Transfer{Path: dir, Op: agentproto.OpWorkspace}, r)
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
