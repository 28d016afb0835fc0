package client

import (
	"context"
	"net/http"

	"github.com/bangerdev/banger/api"
)

// Egress returns a VM's egress policy and, with log, its recent
// refusals (newest first).
func (c *Client) Egress(ctx context.Context, vm string, log bool) (api.EgressStatus, error) {
	var st api.EgressStatus
	path := vmPath(vm, "egress")
	if log {
		path += "?log=true"
	}
	err := c.do(ctx, http.MethodGet, path, nil, &st)
	return st, err
}

// SetEgress replaces a VM's egress policy; on a running VM it is in force
// when this returns.
func (c *Client) SetEgress(ctx context.Context, vm string, p api.EgressPolicy) (api.EgressStatus, error) {
	var st api.EgressStatus
	err := c.do(ctx, http.MethodPut, vmPath(vm, "egress"), p, &st)
	return st, err
}
