package web

import (
	"context"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// Guest is what GuestTerminals needs of the daemon's guest service
// (internal/host/guest.Service): the attach path `banger vm session
// attach` takes, and a checked session.
type Guest interface {
	Attach(ctx context.Context, vm, ref string, since int64, follow bool) (*agentmux.Stream, api.Session, error)
	Get(ctx context.Context, vm, ref string) (api.Session, error)
}

// GuestTerminals serves terminals from the guest service: each is one
// following attach, spoken by agentmux's host end of the attach frames.
func GuestTerminals(g Guest) Terminals { return guestTerminals{g} }

type guestTerminals struct{ g Guest }

func (t guestTerminals) Attach(ctx context.Context, vm, session string, since int64) (TerminalStream, api.Session, error) {
	st, ses, err := t.g.Attach(ctx, vm, session, since, true)
	if err != nil {
		return nil, ses, err
	}
	return attached{agentmux.NewAttached(st)}, ses, nil
}

func (t guestTerminals) Session(ctx context.Context, vm, session string) (api.Session, error) {
	return t.g.Get(ctx, vm, session)
}

// attached is agentmux's attachment as a TerminalStream.
type attached struct{ a *agentmux.Attached }

func (a attached) Next() (api.Chunk, error) {
	c, err := a.a.Next()
	return api.Chunk{Stream: c.Stream, Offset: c.Offset, Data: c.Data, Dropped: c.Dropped}, err
}

func (a attached) Write(p []byte) (int, error) { return a.a.Write(p) }

func (a attached) Resize(rows, cols uint16) error {
	return a.a.Resize(agentmux.WindowSize{Rows: rows, Cols: cols})
}

func (a attached) Close() error { return a.a.Close() }
