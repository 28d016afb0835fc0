package tui

import (
	"context"

	tea "charm.land/bubbletea/v2"
	"github.com/bangerdev/banger/client"
)

// frontendFeed runs the daemon-wide event feed through package frontend
// (reconnecting, resuming from the last sequence) and turns its items into
// the App's messages.
func frontendFeed(ctx context.Context, connect func(context.Context) (*client.Client, error), deliver func(tea.Msg)) error {
	// frontend.Follow lands with the events work of issue #11.
	_ = connect
	_ = deliver
	<-ctx.Done()
	return nil
}
