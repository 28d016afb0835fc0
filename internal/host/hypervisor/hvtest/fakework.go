package hvtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// FakeWorkspace is a Transfers that stands in for a guest's workspace in
// vm diff's tests: it accepts a workspace put (draining the stream, so
// the daemon records what was sent) and answers OpChanges gets with
// Changes (summary format) or Patch (patch format), as a guest that may
// be hostile chose them. It records every request.
type FakeWorkspace struct {
	// Changes is the summary the guest answers.
	Changes agentproto.Changes
	// Patch is the patch the guest answers.
	Patch string

	mu   sync.Mutex
	reqs []agentmux.Transfer
}

var _ Transfers = (*FakeWorkspace)(nil)

// Requests are the puts and gets served so far, in order.
func (w *FakeWorkspace) Requests() []agentmux.Transfer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]agentmux.Transfer(nil), w.reqs...)
}

func (w *FakeWorkspace) record(req agentmux.Transfer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reqs = append(w.reqs, req)
}

// Put accepts an OpWorkspace put and refuses any other.
func (w *FakeWorkspace) Put(_ context.Context, req agentmux.Transfer, r io.Reader) (any, error) {
	w.record(req)
	if req.Op != agentproto.OpWorkspace {
		return nil, &agentmux.Error{Code: agentmux.CodeUnknownType, Message: "this fake guest only takes workspace puts"}
	}
	n, err := io.Copy(io.Discard, r)
	return agentproto.TransferResult{Path: req.Path, Bytes: n}, err
}

// Get answers an OpChanges get in summary or patch format; the patch is
// refused, before any byte, when it is larger than the params' MaxBytes,
// as the agent refuses it.
func (w *FakeWorkspace) Get(_ context.Context, req agentmux.Transfer, out io.Writer) error {
	w.record(req)
	var p agentproto.ChangesParams
	if req.Op != agentproto.OpChanges || json.Unmarshal(req.Params, &p) != nil {
		return &agentmux.Error{Code: agentmux.CodeBadRequest, Message: "this fake guest only answers changes gets"}
	}
	switch p.Format {
	case agentproto.ChangesSummary:
		return json.NewEncoder(out).Encode(w.Changes)
	case agentproto.ChangesPatch:
		if p.MaxBytes > 0 && int64(len(w.Patch)) > p.MaxBytes {
			return fmt.Errorf("the patch is %d bytes, more than the %d asked for", len(w.Patch), p.MaxBytes)
		}
		_, err := io.WriteString(out, w.Patch)
		return err
	}
	return &agentmux.Error{Code: agentmux.CodeBadRequest, Message: "this fake guest has no format " + p.Format}
}
