package agentproto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Handler answers the requests Serve does not answer itself.
type Handler interface {
	// Health reports the guest's health. Serve sets Protocol.
	Health(ctx context.Context) (Health, error)
}

// GuestOps is what a full agent answers besides health; a Handler that
// also implements it serves probe_tcp, host_keys and poweroff.
type GuestOps interface {
	ProbeTCP(ctx context.Context, port int) ProbeResult
	HostKeys(ctx context.Context) ([]string, error)
	// PowerOff starts a clean shutdown and returns at once, so the reply
	// can still be sent.
	PowerOff(ctx context.Context) error
}

// Serve reads requests from rw and writes a response to each, one at a
// time, until rw ends or ctx is done. It answers hello itself and passes
// health to h; an unknown request type gets an error response naming the
// supported types, and a line that is not a request gets a bad_request
// response.
//
// It returns io.EOF (test with errors.Is) when the stream ends, ctx.Err()
// when ctx ends (interrupting a blocked read on streams with deadlines;
// other streams must be closed by the caller), and other errors as they
// come.
func Serve(ctx context.Context, rw io.ReadWriter, h Handler) error {
	if d, ok := rw.(deadliner); ok {
		stop := context.AfterFunc(ctx, func() { d.SetDeadline(aLongTimeAgo()) })
		defer stop()
	}
	lr := newLineReader(rw)
	for {
		line, err := lr.next()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return err
			}
			return fmt.Errorf("agentproto: reading requests: %w", err)
		}
		if len(line) == 0 {
			continue // the blank line a client writes before each request
		}
		if err := writeMessage(rw, handle(ctx, h, line), false); err != nil {
			return fmt.Errorf("agentproto: writing a response: %w", err)
		}
	}
}

// HandleLine answers one request line as Serve does and returns the
// response line (without its newline). A protocol 2 agent uses it for the
// protocol 1 requests that arrive before the channel is upgraded.
func HandleLine(ctx context.Context, h Handler, line []byte) []byte {
	b, _ := json.Marshal(handle(ctx, h, line))
	return b
}

// ErrUnknownMethod is returned (wrapped) by Call for a method it does not
// serve.
var ErrUnknownMethod = errors.New("unknown method")

// Call serves the GuestOps requests of protocol 1 as protocol 2 calls: the
// method is the request type (probe_tcp with params {"port":N}, host_keys,
// poweroff) and the result is what the protocol 1 response carries
// (ProbeResult, the key lines, nothing).
func Call(ctx context.Context, h Handler, method string, params json.RawMessage) (any, error) {
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

func handle(ctx context.Context, h Handler, line []byte) Response {
	var req Request
	if !decode(line, &req) || req.Type == "" {
		return Response{ID: req.ID, Error: &Error{
			Code:    CodeBadRequest,
			Message: fmt.Sprintf("not a request: want one JSON object per line with \"id\" and \"type\" (one of %s)", strings.Join(SupportedTypes(), ", ")),
		}}
	}
	resp := Response{ID: req.ID, Type: req.Type}
	switch req.Type {
	case TypeHello:
		resp.Hello = &Hello{Protocol: Version, Types: SupportedTypes()}
	case TypeHealth:
		health, err := h.Health(ctx)
		if err != nil {
			resp.Error = &Error{Code: CodeInternal, Message: "reading the guest's health: " + err.Error()}
			break
		}
		health.Protocol = Version
		resp.Health = &health
	case TypeProbeTCP, TypeHostKeys, TypePowerOff:
		ops, ok := h.(GuestOps)
		if !ok {
			resp.Error = &Error{Code: CodeUnknownType, Message: fmt.Sprintf("this agent does not serve %q: update banger-agent in the image", req.Type)}
			break
		}
		switch req.Type {
		case TypeProbeTCP:
			if req.Port <= 0 || req.Port > 65535 {
				resp.Error = &Error{Code: CodeBadRequest, Message: fmt.Sprintf("probe_tcp port %d is out of range 1..65535", req.Port)}
				break
			}
			r := ops.ProbeTCP(ctx, req.Port)
			resp.Probe = &r
		case TypeHostKeys:
			keys, err := ops.HostKeys(ctx)
			if err != nil {
				resp.Error = &Error{Code: CodeInternal, Message: "reading the guest's SSH host keys: " + err.Error()}
				break
			}
			resp.HostKeys = keys
		case TypePowerOff:
			if err := ops.PowerOff(ctx); err != nil {
				resp.Error = &Error{Code: CodeInternal, Message: "powering off: " + err.Error()}
			}
		}
	default:
		resp.Error = &Error{
			Code:    CodeUnknownType,
			Message: fmt.Sprintf("unknown request type %q: this agent (protocol %d) supports %s; update banger-agent in the image", req.Type, Version, strings.Join(SupportedTypes(), ", ")),
		}
	}
	return resp
}
