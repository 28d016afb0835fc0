// Package guest is bangerd's way into running VMs: exec, file copy,
// workspace prepare and long-lived sessions, each relayed to the VM's
// agent over its protocol 2 session (internal/shared/agentmux, kept by vm.Manager).
//
// Sessions are owned by the agent in the guest, which is the source of
// truth for what still runs. This package keeps a copy of their metadata
// in the store (the sessions table) so that a daemon that was restarted —
// even SIGKILLed — lists them again: every list and lookup asks the guest
// first and rewrites the store from its answer (rehydration). Sessions the
// store remembers but the guest no longer knows (the VM stopped or
// rebooted) are reported as "lost".
package guest

import (
	"context"
	"errors"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// What the guest requests' checked fields accept (api.Error.Allowed).
const (
	AllowedArgv      = "a command and its arguments"
	AllowedEnv       = "KEY=VALUE entries"
	AllowedGuestPath = "an absolute guest path, e.g. /root/repo"
)

// Agents gives access to running VMs' agents; *vm.Manager is one.
type Agents interface {
	Get(ctx context.Context, name string) (vm.VM, error)
	Agent(ctx context.Context, name string) (vm.VM, *agentmux.Session, error)
	// SetWorkspace records what a workspace prepare sent into the VM.
	SetWorkspace(ctx context.Context, name string, ws api.Workspace) error
}

// Service relays guest requests and keeps session metadata.
type Service struct {
	VMs   Agents
	Store *store.Store
	// OnChange, when set, hears of every session change the service
	// records (started, exited, signalled, lost, removed), after it is
	// stored; listing an unchanged session records nothing. The daemon
	// feeds its event hub with it.
	OnChange func(api.Event)
}

// apiError turns an agent's refusal into the API error the client sees;
// the agent's codes are the API's where they match.
func apiError(err error) error {
	var e *agentmux.Error
	if !errors.As(err, &e) {
		return err
	}
	switch code := api.Code(e.Code); code {
	case api.CodeNotFound, api.CodeAlreadyExists, api.CodeFailedPrecondition, api.CodeInvalidArgument:
		return api.Errorf(code, "%s", e.Message)
	}
	switch e.Code {
	case agentmux.CodeBadRequest:
		return api.Errorf(api.CodeInvalidArgument, "%s", e.Message)
	case agentmux.CodeUnknownType:
		return api.Errorf(api.CodeUnimplemented, "%s", e.Message)
	case agentmux.CodeExecFailed:
		return api.Errorf(api.CodeFailedPrecondition, "%s", e.Message)
	}
	return api.Errorf(api.CodeInternal, "the guest agent failed: %s", e.Message)
}
