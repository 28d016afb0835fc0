package agentmux

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// Caller is implemented by a Handler that serves call streams: one
// request and one result, both JSON, named by a method (session start,
// list, stop, ...). What the methods are is banger-agent's business.
type Caller interface {
	// Call runs method with params (the header's raw JSON; empty when the
	// host sent none). Its result (nil: none) is marshalled into the
	// reply's Result; an *Error keeps its code, other errors are
	// CodeInternal.
	Call(ctx context.Context, method string, params json.RawMessage) (any, error)
}

// Call runs method in the guest: params (nil: none) are marshalled into
// the header, and the reply's result is unmarshalled into result (when
// both are non-nil). A refusal or a failure of the method is an *Error.
func (s *Session) Call(ctx context.Context, method string, params, result any) error {
	h := Header{Type: TypeCall, Method: method}
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("agentmux: encoding the params of %s: %w", method, err)
		}
		h.Params = b
	}
	st, rep, err := s.Open(ctx, h)
	if err != nil {
		return err
	}
	st.Close()
	return unmarshalResult(rep.Result, result, "call "+method)
}

// serveCall answers a call stream with one reply line.
func (g *Guest) serveCall(ctx context.Context, st io.Writer, h Header) {
	c, ok := g.Handler.(Caller)
	if !ok {
		writeReply(st, Reply{Error: &Error{Code: CodeUnknownType, Message: "this agent does not serve call: update banger-agent in the image"}})
		return
	}
	if h.Method == "" {
		writeReply(st, Reply{Error: &Error{Code: CodeBadRequest, Message: "call needs a method"}})
		return
	}
	res, err := c.Call(ctx, h.Method, h.Params)
	if err != nil {
		writeReply(st, Reply{Error: asError(err, "calling "+h.Method)})
		return
	}
	var rep Reply
	rep.Result, rep.Error = marshalResult(res, "call "+h.Method)
	writeReply(st, rep)
}

// Bounds on the guest's SSH host keys (the answer to a host_keys call):
// a host has a handful of keys of a few hundred bytes each.
const (
	MaxHostKeys     = 16
	MaxHostKeyBytes = 16 << 10
)

// HostKeys asks the guest for its SSH host public keys (the
// agentproto.TypeHostKeys call). More than MaxHostKeys keys, or a key
// longer than MaxHostKeyBytes, is a *LimitError that closes the session.
func (s *Session) HostKeys(ctx context.Context) ([]string, error) {
	var keys []string
	if err := s.Call(ctx, agentproto.TypeHostKeys, nil, &keys); err != nil {
		return nil, err
	}
	if len(keys) > MaxHostKeys {
		return nil, s.fail(&LimitError{What: "host keys", Limit: MaxHostKeys, Items: true})
	}
	for _, k := range keys {
		if len(k) > MaxHostKeyBytes {
			return nil, s.fail(&LimitError{What: "a host key", Limit: MaxHostKeyBytes})
		}
	}
	return keys, nil
}
