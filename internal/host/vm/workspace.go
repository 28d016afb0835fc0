package vm

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/bangerdev/banger/api"
)

// SetWorkspace records what a workspace prepare sent into the VM named
// name (the base `vm diff` and `vm pull` compare with). It replaces the
// record of an earlier prepare.
func (m *Manager) SetWorkspace(ctx context.Context, name string, ws api.Workspace) error {
	v, err := m.Get(ctx, name)
	if err != nil {
		return err
	}
	b, err := json.Marshal(ws)
	if err != nil {
		return err
	}
	if err := m.Store.SetWorkspace(ctx, v.ID, string(b)); err != nil {
		return err
	}
	m.changed(ctx, v.ID)
	return nil
}

// WorkspaceRecord returns what was last sent into v's workspace, or
// api.ErrFailedPrecondition naming `vm workspace prepare` when nothing
// was.
func (v VM) WorkspaceRecord() (api.Workspace, error) {
	var ws api.Workspace
	if v.VM.Workspace == "" {
		return ws, api.Errorf(api.CodeFailedPrecondition, "nothing was sent into the workspace of VM %s: send a checkout with `banger vm workspace prepare %s [PATH]` (or create it with `banger vm run`) first", v.Name, v.Name)
	}
	if err := json.Unmarshal([]byte(v.VM.Workspace), &ws); err != nil {
		return ws, fmt.Errorf("vm %s: corrupt workspace record: %w", v.Name, err)
	}
	return ws, nil
}
