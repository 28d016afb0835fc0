package tui

import (
	"context"

	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/frontend"
)

// frontendFeed runs the daemon-wide event feed through frontend.Follow
// (reconnecting through connect, which starts the daemon, and resuming
// after the last event) and hands its items to the App as messages.
func frontendFeed(ctx context.Context, connect func(context.Context) (*client.Client, error), deliver func(tea.Msg)) error {
	err := frontend.Follow(ctx, connect, func(it frontend.FeedItem) {
		switch it := it.(type) {
		case api.Event:
			deliver(EventMsg(it))
		case frontend.Disconnected:
			deliver(DisconnectedMsg{Err: it.Err})
		case frontend.Reconnected:
			deliver(ReconnectedMsg{Reset: it.Reset, First: it.First})
		}
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}
