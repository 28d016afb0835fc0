package agentmux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// Basic serves a protocol 1 handler over protocol 2: health, and the
// guest operations it implements (agentproto.GuestOps) as calls. File
// transfer is refused. Test guests (hvtest, fctest) use it.
func Basic(h agentproto.Handler) Handler { return basic{h} }

// BasicGuest is a Guest serving h to the host that holds key.
func BasicGuest(h agentproto.Handler, key []byte) *Guest {
	return &Guest{Handler: Basic(h), Key: key}
}

type basic struct{ h agentproto.Handler }

var _ Caller = basic{}

func (b basic) Health(ctx context.Context) (agentproto.Health, error) { return b.h.Health(ctx) }

func (b basic) Put(context.Context, Transfer, io.Reader) (any, error) {
	return nil, &Error{Code: CodeUnknownType, Message: "this guest does not serve file transfer"}
}

func (b basic) Get(context.Context, Transfer, io.Writer) error {
	return &Error{Code: CodeUnknownType, Message: "this guest does not serve file transfer"}
}

func (b basic) Call(ctx context.Context, method string, params json.RawMessage) (any, error) {
	res, err := agentproto.Call(ctx, b.h, method, params)
	if errors.Is(err, agentproto.ErrUnknownMethod) {
		return nil, &Error{Code: CodeUnknownType, Message: fmt.Sprint(err)}
	}
	return res, err
}
