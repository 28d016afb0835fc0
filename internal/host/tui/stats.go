package tui

import (
	"context"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
)

// vmStats is one GET /v1/stats: every running VM's figures at once, never
// one call per VM.
func vmStats(ctx context.Context, cl *client.Client) ([]api.VMStats, error) {
	return cl.Stats(ctx)
}
