package client

import (
	"context"
	"net/http"
	"strconv"

	"github.com/bangerdev/banger/api"
)

// Ports lists a VM's published ports (guest ports reachable on the host's
// loopback).
func (c *Client) Ports(ctx context.Context, vm string) ([]api.PublishedPort, error) {
	var list api.PortList
	err := c.do(ctx, http.MethodGet, vmPath(vm, "ports"), nil, &list)
	return list.Ports, err
}

// PublishPort publishes a guest port on the host's loopback; HostPort 0
// picks a free port. The answer says where it listens.
func (c *Client) PublishPort(ctx context.Context, vm string, req api.PublishPortRequest) (api.PublishedPort, error) {
	var p api.PublishedPort
	err := c.do(ctx, http.MethodPost, vmPath(vm, "ports"), req, &p)
	return p, err
}

// UnpublishPort closes a published guest port's listener.
func (c *Client) UnpublishPort(ctx context.Context, vm string, guestPort int) error {
	return c.do(ctx, http.MethodDelete, vmPath(vm, "ports", strconv.Itoa(guestPort)), nil, nil)
}
