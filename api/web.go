package api

import "time"

// WebLoginRequest asks for a one-time login URL of the web UI (POST
// /v1/web/login, served on the Unix socket only). The daemon turns its
// loopback web listener on when it is off: at Listen, else at the
// configuration's web.listen, else at DefaultWebListen.
type WebLoginRequest struct {
	// Listen is a loopback address, "127.0.0.1:7180", "[::1]:7180" or
	// "localhost:7180" (port 0: any free port). It is refused when the
	// listener already runs at another address.
	Listen string `json:"listen,omitempty"`
}

// DefaultWebListen is where the web UI listens when neither the request
// nor the configuration says.
const DefaultWebListen = "127.0.0.1:7180"

// WebLogin is the answer to POST /v1/web/login.
type WebLogin struct {
	// URL logs a browser in once: it carries a one-time token, valid
	// until ExpiresAt, that the web listener exchanges for a session
	// cookie.
	URL string `json:"url"`
	// Listen is the address the web listener is bound to.
	Listen string `json:"listen"`
	// ExpiresAt is when the token expires if it has not been used.
	ExpiresAt time.Time `json:"expires_at"`
}

// WebRevoked is the answer to POST /v1/web/revoke: how many browser
// sessions were ended and how many unused login tokens dropped.
type WebRevoked struct {
	Sessions int `json:"sessions"`
	Tokens   int `json:"tokens"`
}
