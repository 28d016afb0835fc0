package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/bangerdev/banger/api"
)

// VMStats returns a running VM's resource figures (a stopped VM is
// api.ErrFailedPrecondition).
func (c *Client) VMStats(ctx context.Context, name string) (api.VMStats, error) {
	var s api.VMStats
	err := c.do(ctx, http.MethodGet, "/vms/"+url.PathEscape(name)+"/stats", nil, &s)
	return s, err
}

// Stats returns every running VM's figures in one call.
func (c *Client) Stats(ctx context.Context) ([]api.VMStats, error) {
	var l api.StatsList
	err := c.do(ctx, http.MethodGet, "/stats", nil, &l)
	return l.Stats, err
}
