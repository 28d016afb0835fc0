package client

import (
	"context"
	"net/http"

	"github.com/bangerdev/banger/api"
)

// WebLogin turns the daemon's loopback web listener on if it is off (at
// req.Listen, else web.listen, else api.DefaultWebListen) and returns a
// URL that logs one browser in, once, before it expires.
func (c *Client) WebLogin(ctx context.Context, req api.WebLoginRequest) (api.WebLogin, error) {
	var l api.WebLogin
	err := c.do(ctx, http.MethodPost, "/web/login", req, &l)
	return l, err
}

// WebRevoke ends every web UI session and drops every unused login
// token; it says how many of each.
func (c *Client) WebRevoke(ctx context.Context) (api.WebRevoked, error) {
	var r api.WebRevoked
	err := c.do(ctx, http.MethodPost, "/web/revoke", struct{}{}, &r)
	return r, err
}
