package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// What the workspace requests' checked fields accept (api.Error.Allowed).
const (
	AllowedMode     = "git, full_copy"
	AllowedCommit   = "a full commit id (40 or 64 hex digits)"
	AllowedHostPath = "an absolute host path"
	AllowedPathspec = "git pathspecs, e.g. src/ or '*.go'"
	AllowedMax      = "a byte count above zero"
)

// MaxDiffSummary bounds the JSON summary a guest may answer vm diff with:
// agentproto.MaxChangedFiles paths of up to 4 KiB each fit, with room.
const MaxDiffSummary = 64 << 20

// DefaultMaxPull bounds a patch, bundle or tree of changed files when
// the client names no limit (its pull.max_size).
const DefaultMaxPull = 1 << 30

// PrepareWorkspace installs a workspace tar stream (workspace.Pack) at
// req.Dir (default /root/repo), replacing what was there atomically, and
// records req as what the VM's workspace was sent (api.Workspace), the
// base of vm diff and vm pull.
func (s *Service) PrepareWorkspace(ctx context.Context, vmName string, req api.PrepareWorkspaceRequest, r io.Reader) (api.TransferResult, error) {
	if req.Dir == "" {
		req.Dir = agentproto.WorkspaceDir
	}
	dir, err := guestPath("dir", req.Dir)
	if err != nil {
		return api.TransferResult{}, err
	}
	if err := checkPrepare(req); err != nil {
		return api.TransferResult{}, err
	}
	params, _ := json.Marshal(agentproto.WorkspaceParams{Mode: req.Mode})
	res, err := s.put(ctx, vmName, agentmux.Transfer{Path: dir, Op: agentproto.OpWorkspace, Params: params}, r)
	if err != nil {
		return res, err
	}
	ws := api.Workspace{Dir: dir, Mode: req.Mode, HostPath: req.HostPath, Head: req.Head, Sent: req.Sent, PreparedAt: time.Now().UTC()}
	if ws.Mode == "" {
		ws.Mode = api.WorkspaceGit
	}
	if err := s.VMs.SetWorkspace(ctx, vmName, ws); err != nil {
		return res, fmt.Errorf("the workspace is installed in %s but could not be recorded (vm diff and vm pull need the record: prepare it again): %w", vmName, err)
	}
	return res, nil
}

// checkPrepare checks the description of a workspace stream.
func checkPrepare(req api.PrepareWorkspaceRequest) error {
	switch req.Mode {
	case "", api.WorkspaceGit, api.WorkspaceFullCopy:
	default:
		return api.FieldErrorf("mode", AllowedMode, "mode %q is not a workspace mode: use %q or %q", req.Mode, api.WorkspaceGit, api.WorkspaceFullCopy)
	}
	if req.HostPath != "" && (!filepath.IsAbs(req.HostPath) || !utf8.ValidString(req.HostPath) || strings.ContainsRune(req.HostPath, 0)) {
		return api.FieldErrorf("host_path", AllowedHostPath, "host_path %q is not an absolute path", req.HostPath)
	}
	for field, id := range map[string]string{"head": req.Head, "sent": req.Sent} {
		if id != "" && !isCommitID(id) {
			return api.FieldErrorf(field, AllowedCommit, "%s %q is not a full commit id", field, id)
		}
	}
	if req.Mode == api.WorkspaceFullCopy && (req.Head != "" || req.Sent != "") {
		return api.Errorf(api.CodeInvalidArgument, "a full_copy workspace has no commits: send head and sent only in git mode")
	}
	return nil
}

// isCommitID reports whether s is a full SHA-1 or SHA-256 object id.
func isCommitID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// workspaceOf returns a running VM's agent session and workspace record.
func (s *Service) workspaceOf(ctx context.Context, vmName string) (vm.VM, api.Workspace, *agentmux.Session, error) {
	v, sess, err := s.VMs.Agent(ctx, vmName)
	if err != nil {
		return v, api.Workspace{}, nil, err
	}
	ws, err := v.WorkspaceRecord()
	if err != nil {
		return v, ws, nil, err
	}
	if ws.Mode == api.WorkspaceGit && ws.Sent == "" {
		return v, ws, nil, api.Errorf(api.CodeFailedPrecondition, "the workspace of VM %s was sent by a banger that did not record what it sent: send it again with `banger vm workspace prepare %s %s`", v.Name, v.Name, ws.HostPath)
	}
	return v, ws, sess, nil
}

// checkPathspec checks vm diff's pathspecs.
func checkPathspec(pathspec []string) error {
	if len(pathspec) > 256 {
		return api.FieldErrorf("path", AllowedPathspec, "%d pathspecs are more than 256: narrow them to directories", len(pathspec))
	}
	for _, p := range pathspec {
		if p == "" || len(p) > 4096 || strings.ContainsRune(p, 0) {
			return api.FieldErrorf("path", AllowedPathspec, "pathspec %q is empty, longer than 4096 bytes or holds a NUL", p)
		}
	}
	return nil
}

// WorkspaceDiff is what changed in a VM's workspace since it was sent,
// as its agent reports it: the commits made in the guest and the changed
// files (uncommitted changes and untracked files included), limited to
// pathspec. The answer is the guest's: it is bounded, checked for shape
// and passed on; nothing in it is trusted beyond display.
func (s *Service) WorkspaceDiff(ctx context.Context, vmName string, pathspec []string) (api.WorkspaceDiff, error) {
	if err := checkPathspec(pathspec); err != nil {
		return api.WorkspaceDiff{}, err
	}
	v, ws, sess, err := s.workspaceOf(ctx, vmName)
	if err != nil {
		return api.WorkspaceDiff{}, err
	}
	p := agentproto.ChangesParams{Mode: ws.Mode, Base: ws.Sent, Format: agentproto.ChangesSummary, Pathspec: pathspec, MaxBytes: MaxDiffSummary, VM: v.Name}
	var buf bytes.Buffer
	if err := s.get(ctx, v.Name, "vm diff", sess, agentproto.OpChanges, ws.Dir, p, &limitedWriter{w: &buf, left: MaxDiffSummary}); err != nil {
		return api.WorkspaceDiff{}, err
	}
	var ch agentproto.Changes
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ch); err != nil {
		return api.WorkspaceDiff{}, api.Errorf(api.CodeInternal, "the guest agent of VM %s answered vm diff with malformed JSON: %v", v.Name, err)
	}
	d, err := checkChanges(ch)
	if err != nil {
		return api.WorkspaceDiff{}, api.Errorf(api.CodeInternal, "the guest agent of VM %s answered vm diff with %v", v.Name, err)
	}
	d.VM, d.Workspace = v.Name, ws
	return d, nil
}

var fileStatuses = []string{api.FileAdded, api.FileModified, api.FileDeleted, api.FileRenamed, api.FileTypeChanged}

// checkChanges bounds and checks a guest's Changes and converts it.
func checkChanges(ch agentproto.Changes) (api.WorkspaceDiff, error) {
	d := api.WorkspaceDiff{Head: ch.Head, Uncommitted: ch.Work != "", Truncated: ch.Truncated,
		Commits: []api.WorkspaceCommit{}, Files: []api.WorkspaceFile{}}
	for _, id := range []string{ch.Base, ch.Head, ch.Work} {
		if id != "" && !isCommitID(id) {
			return d, fmt.Errorf("%q where a commit id belongs", id)
		}
	}
	if len(ch.Commits) > agentproto.MaxChangedCommits || len(ch.Files) > agentproto.MaxChangedFiles {
		return d, fmt.Errorf("%d commits and %d files, more than the %d and %d allowed", len(ch.Commits), len(ch.Files), agentproto.MaxChangedCommits, agentproto.MaxChangedFiles)
	}
	for _, c := range ch.Commits {
		if !isCommitID(c.ID) {
			return d, fmt.Errorf("%q where a commit id belongs", c.ID)
		}
		d.Commits = append(d.Commits, api.WorkspaceCommit{ID: c.ID, Subject: c.Subject, Author: c.Author, Time: c.Time})
	}
	for _, f := range ch.Files {
		switch {
		case !slices.Contains(fileStatuses, f.Status):
			return d, fmt.Errorf("file status %q (want one of %s)", f.Status, strings.Join(fileStatuses, ", "))
		case f.Path == "" || (f.Status == api.FileRenamed) != (f.OldPath != ""):
			return d, fmt.Errorf("file %q (old path %q, %s) without the paths its status needs", f.Path, f.OldPath, f.Status)
		case f.Added < 0 || f.Deleted < 0 || f.Added > 1<<40 || f.Deleted > 1<<40:
			return d, fmt.Errorf("line counts %d and %d for %q", f.Added, f.Deleted, f.Path)
		}
		d.Files = append(d.Files, api.WorkspaceFile{Path: f.Path, OldPath: f.OldPath, Status: f.Status, Added: f.Added, Deleted: f.Deleted, Binary: f.Binary})
		d.Added += f.Added
		d.Deleted += f.Deleted
	}
	return d, nil
}

// WorkspacePatch writes what changed in a VM's workspace since it was
// sent as a patch (`git diff --binary`, made in the guest) to w: at most
// max bytes (DefaultMaxPull when 0).
func (s *Service) WorkspacePatch(ctx context.Context, vmName string, pathspec []string, max int64, w io.Writer) error {
	if err := checkPathspec(pathspec); err != nil {
		return err
	}
	return s.workspaceGet(ctx, vmName, "vm diff of its patch", "", agentproto.OpChanges, max, w, func(v vm.VM, ws api.Workspace, max int64) any {
		return agentproto.ChangesParams{Mode: ws.Mode, Base: ws.Sent, Format: agentproto.ChangesPatch, Pathspec: pathspec, MaxBytes: max, VM: v.Name}
	})
}

// WorkspaceBundle writes a git-mode workspace's work to w as a git bundle
// (agentproto.OpBundle): at most max bytes (DefaultMaxPull when 0). The
// daemon only relays it; `vm pull` verifies it on the host, as the user.
func (s *Service) WorkspaceBundle(ctx context.Context, vmName string, max int64, w io.Writer) error {
	return s.workspaceGet(ctx, vmName, "vm pull", api.WorkspaceGit, agentproto.OpBundle, max, w, func(v vm.VM, ws api.Workspace, max int64) any {
		have := []string{ws.Sent}
		if ws.Head != "" && ws.Head != ws.Sent {
			have = append(have, ws.Head)
		}
		return agentproto.BundleParams{Have: have, MaxBytes: max, VM: v.Name}
	})
}

// WorkspaceFiles writes the added and changed files of a full_copy
// workspace to w as a tar stream whose one top-level directory is "work"
// (agentproto.ChangesFiles): at most max bytes (DefaultMaxPull when 0).
func (s *Service) WorkspaceFiles(ctx context.Context, vmName string, max int64, w io.Writer) error {
	return s.workspaceGet(ctx, vmName, "vm pull of its changed files", api.WorkspaceFullCopy, agentproto.OpChanges, max, w, func(v vm.VM, ws api.Workspace, max int64) any {
		return agentproto.ChangesParams{Mode: ws.Mode, Format: agentproto.ChangesFiles, MaxBytes: max, VM: v.Name}
	})
}

// workspaceGet relays a get of op on a VM's workspace (of mode, when set)
// to w, bounded by max, for the command what.
func (s *Service) workspaceGet(ctx context.Context, vmName, what, mode, op string, max int64, w io.Writer, params func(vm.VM, api.Workspace, int64) any) error {
	if max < 0 {
		return api.FieldErrorf("max", AllowedMax, "max %d is below zero", max)
	}
	if max == 0 {
		max = DefaultMaxPull
	}
	v, ws, sess, err := s.workspaceOf(ctx, vmName)
	if err != nil {
		return err
	}
	if mode != "" && ws.Mode != mode {
		return wrongMode(v.Name, ws, mode)
	}
	return s.get(ctx, v.Name, what, sess, op, ws.Dir, params(v, ws, max), &limitedWriter{w: w, left: max})
}

// wrongMode explains a request the workspace's mode does not serve.
func wrongMode(vmName string, ws api.Workspace, want string) error {
	if want == api.WorkspaceGit {
		return api.Errorf(api.CodeFailedPrecondition, "the workspace of VM %s was sent in full_copy mode, which has no git history to pull as a branch: use `banger vm pull %s --into DIR` to get the changed files", vmName, vmName)
	}
	return api.Errorf(api.CodeFailedPrecondition, "the workspace of VM %s was sent in git mode: pull it as a branch with `banger vm pull %s`", vmName, vmName)
}

// get relays one get of the agent to w; what names the command it
// serves, for the error when the VM stops under it.
func (s *Service) get(ctx context.Context, vmName, what string, sess *agentmux.Session, op, dir string, params any, w io.Writer) error {
	b, err := json.Marshal(params)
	if err != nil {
		return err
	}
	err = sess.Get(ctx, agentmux.Transfer{Path: dir, Op: op, Params: b}, w)
	var over *overLimit
	if errors.As(err, &over) {
		return api.Errorf(api.CodeFailedPrecondition, "the answer of VM %s is larger than the limit of %d bytes: raise pull.max_size (under [pull] in the file `banger config path` names) if you trust it", vmName, over.limit)
	}
	var ae *agentmux.Error
	if errors.As(err, &ae) && ae.Code == agentmux.CodeBadRequest && strings.Contains(ae.Message, "unknown get operation") {
		return api.Errorf(api.CodeUnimplemented, "the agent in VM %s predates vm diff and vm pull: restart the VM (`banger vm restart %s`), which boots the daemon's own agent", vmName, vmName)
	}
	return s.ended(ctx, vmName, what, apiError(err))
}

// limitedWriter passes at most left bytes to w and fails past them.
type limitedWriter struct {
	w     io.Writer
	left  int64
	limit int64
}

type overLimit struct{ limit int64 }

func (e *overLimit) Error() string { return fmt.Sprintf("more than %d bytes", e.limit) }

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.limit == 0 {
		l.limit = l.left
	}
	if int64(len(p)) > l.left {
		return 0, &overLimit{limit: l.limit}
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}
