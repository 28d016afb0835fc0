package agentproto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Handler is what every agent answers: its health.
type Handler interface {
	// Health reports the guest's health. The protocol sets Protocol.
	Health(ctx context.Context) (Health, error)
}

// GuestOps is what a full agent answers besides health; a Handler that
// also implements it serves probe_tcp, host_keys and poweroff (see Call).
type GuestOps interface {
	ProbeTCP(ctx context.Context, port int) ProbeResult
	HostKeys(ctx context.Context) ([]string, error)
	// PowerOff starts a clean shutdown and returns at once, so the reply
	// can still be sent.
	PowerOff(ctx context.Context) error
}

// ErrUnknownMethod is returned (wrapped) by Call for a method it does not
// serve.
var ErrUnknownMethod = errors.New("unknown method")

// Call serves the GuestOps of h as protocol 2 calls: the method is
// TypeProbeTCP (params ProbeParams, result ProbeResult), TypeHostKeys
// (result the authorized_keys-format lines) or TypePowerOff (no result);
// MethodMemInfo is served when h is also a MemInfoer.
func Call(ctx context.Context, h Handler, method string, params json.RawMessage) (any, error) {
	if method == MethodMemInfo {
		if m, ok := h.(MemInfoer); ok {
			return m.MemInfo(ctx)
		}
		return nil, fmt.Errorf("%w %q: this agent does not report its memory", ErrUnknownMethod, method)
	}
	ops, ok := h.(GuestOps)
	if !ok {
		return nil, fmt.Errorf("%w %q: this agent serves no guest operations", ErrUnknownMethod, method)
	}
	switch method {
	case TypeProbeTCP:
		var p ProbeParams
		if err := json.Unmarshal(params, &p); err != nil || p.Port <= 0 || p.Port > 65535 {
			return nil, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("probe_tcp wants {\"port\": 1..65535}, got %s", params)}
		}
		return ops.ProbeTCP(ctx, p.Port), nil
	case TypeHostKeys:
		return ops.HostKeys(ctx)
	case TypePowerOff:
		return nil, ops.PowerOff(ctx)
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownMethod, method)
}
