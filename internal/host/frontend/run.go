package frontend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/workimport"
	"github.com/bangerdev/banger/internal/shared/workspace"
)

// CreateVM begins a VM create, follows its operation to the end (handing
// each event to onEvent, which may be nil) and returns the VM. Bad input
// is refused at once with the daemon's *api.Error (naming the field).
func CreateVM(ctx context.Context, cl *client.Client, req api.CreateVMRequest, onEvent func(api.OperationEvent)) (api.VM, error) {
	return CreateVMWith(ctx, cl, req, onEvent, FollowOptions{})
}

// CreateVMWith is CreateVM with the options to follow the operation
// through a daemon restart.
func CreateVMWith(ctx context.Context, cl *client.Client, req api.CreateVMRequest, onEvent func(api.OperationEvent), fo FollowOptions) (api.VM, error) {
	op, err := cl.BeginCreateVM(ctx, req)
	if err != nil {
		return api.VM{}, err
	}
	final, err := FollowOperationWith(ctx, cl, op.ID, onEvent, fo)
	if err != nil {
		return api.VM{}, err
	}
	var v api.VM
	return v, DecodeResult(final, &v)
}

// RunRequest is what vm run does: create a VM, then copy a checkout into
// it.
type RunRequest struct {
	Create api.CreateVMRequest
	// Checkout is the host directory copied to the guest's /root/repo.
	Checkout string
	// Mode is how it is packed (workspace.ModeGit when empty).
	Mode workspace.Mode
	// Checked says the caller already ran CheckCheckout on Checkout and
	// Mode (before reaching the daemon, say), so RunVM does not again.
	Checked bool
}

// Progress is what RunVM reports while it works; every field may be nil.
type Progress struct {
	// OnStage names each step as it begins: "checking the checkout",
	// "creating the VM", "preparing the workspace".
	OnStage func(string)
	// OnOperation receives the create operation's events.
	OnOperation func(api.OperationEvent)
	// OnWorkspace reports the checkout copied into the VM and how long
	// it took.
	OnWorkspace func(api.VM, api.TransferResult, time.Duration)
	// Follow tunes how the create operation is followed through a
	// daemon restart.
	Follow FollowOptions
}

// Run steps, as OnStage names them.
const (
	StageCheckCheckout    = "checking the checkout"
	StageCreateVM         = "creating the VM"
	StagePrepareWorkspace = "preparing the workspace"
)

// WorkspaceError is a vm run whose VM was created but whose checkout could
// not be copied in: the VM is kept running, so the copy can be retried
// (PrepareWorkspace) or the VM deleted.
type WorkspaceError struct {
	VM       api.VM
	Checkout string
	Err      error
}

func (e *WorkspaceError) Error() string {
	return fmt.Sprintf("%v\nthe VM %s is running: prepare its workspace again, or delete it", e.Err, e.VM.Name)
}

func (e *WorkspaceError) Unwrap() error { return e.Err }

// RunVM is vm run's sequence: the checkout is checked before anything is
// created (a path that is not a git work tree in git mode, or one with
// submodules, is refused up front), then the VM is created, then the
// checkout is copied to /root/repo. A failed copy returns the VM with a
// *WorkspaceError; the VM is left running.
func RunVM(ctx context.Context, cl *client.Client, req RunRequest, p Progress) (api.VM, error) {
	stage := func(s string) {
		if p.OnStage != nil {
			p.OnStage(s)
		}
	}
	if req.Mode == "" {
		req.Mode = workspace.ModeGit
	}
	if req.Checkout == "" {
		req.Checkout = "."
	}
	if !req.Checked {
		stage(StageCheckCheckout)
		if err := CheckCheckout(ctx, req.Checkout, req.Mode); err != nil {
			return api.VM{}, err
		}
	}
	stage(StageCreateVM)
	v, err := CreateVMWith(ctx, cl, req.Create, p.OnOperation, p.Follow)
	if err != nil {
		return api.VM{}, err
	}
	stage(StagePrepareWorkspace)
	start := time.Now()
	res, err := PrepareWorkspace(ctx, cl, v.Name, req.Checkout, "", req.Mode)
	if err != nil {
		return v, &WorkspaceError{VM: v, Checkout: req.Checkout, Err: err}
	}
	if p.OnWorkspace != nil {
		p.OnWorkspace(v, res, time.Since(start))
	}
	return v, nil
}

// CheckCheckout refuses a checkout that PrepareWorkspace would refuse
// (a path that is not a git work tree in git mode, submodules, ...)
// from git's file list and metadata only: no file is read.
func CheckCheckout(ctx context.Context, path string, mode workspace.Mode) error {
	return modeError(workspace.Check(ctx, path, mode))
}

// modeError marks a refusal whose fix is the other workspace mode (not a
// git work tree, submodules) as a field error on "mode", so each front end
// points at its own control for it: the CLI its --mode flag, a form its
// mode field. The message is kept; errors.Is still finds workspace's
// sentinel in the original, which the field error carries no more.
func modeError(err error) error {
	if errors.Is(err, workspace.ErrNotRepo) || errors.Is(err, workspace.ErrSubmodule) {
		return &api.Error{Code: api.CodeInvalidArgument, Message: err.Error(),
			Field: "mode", Allowed: string(workspace.ModeGit) + ", " + string(workspace.ModeFullCopy)}
	}
	return err
}

// PrepareWorkspace packs the checkout at path (as the user running it, so
// it holds only what they can read) and installs it at dir in the VM (""
// is /root/repo), replacing what was there atomically. In git mode it
// first records what it sends as a commit in the checkout's repository
// (workimport.RecordSent: HEAD plus the uncommitted and untracked files,
// at refs/banger/sent/VM), which then travels in .git too; the daemon
// keeps the record (api.Workspace), the base of vm diff and vm pull.
func PrepareWorkspace(ctx context.Context, cl *client.Client, vm, path, dir string, mode workspace.Mode) (api.TransferResult, error) {
	req, err := sentRecord(ctx, vm, path, dir, mode)
	if err != nil {
		return api.TransferResult{}, fmt.Errorf("preparing the workspace of %s: %w", vm, err)
	}
	pr, pw := io.Pipe()
	packed := make(chan error, 1)
	go func() {
		_, err := workspace.Pack(ctx, path, mode, pw)
		pw.CloseWithError(err) // nil closes cleanly
		packed <- err
	}()
	res, err := cl.PrepareWorkspace(ctx, vm, req, pr)
	pr.CloseWithError(io.ErrClosedPipe) // unblock a packer the daemon gave up on
	if perr := <-packed; perr != nil && !errors.Is(perr, io.ErrClosedPipe) {
		err = modeError(perr) // the packer's reason is the real one
	}
	if err != nil {
		return res, fmt.Errorf("preparing the workspace of %s: %w", vm, err)
	}
	return res, nil
}

// sentRecord describes what PrepareWorkspace is about to send, recording
// it in the host repository in git mode.
func sentRecord(ctx context.Context, vm, path, dir string, mode workspace.Mode) (api.PrepareWorkspaceRequest, error) {
	req := api.PrepareWorkspaceRequest{Dir: dir, Mode: string(mode)}
	if mode != workspace.ModeGit {
		abs, err := filepath.Abs(path)
		req.HostPath = abs
		return req, err
	}
	// Refuse what the pack would refuse (not a work tree, submodules)
	// before anything is written to the repository.
	if err := CheckCheckout(ctx, path, mode); err != nil {
		return req, err
	}
	sent, err := workimport.RecordSent(ctx, path, vm)
	if err != nil {
		return req, err
	}
	req.HostPath, req.Head, req.Sent = sent.Top, sent.Head, sent.Commit
	return req, nil
}
