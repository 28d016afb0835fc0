package firecracker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// A small client of Firecracker's API (src/firecracker/swagger/
// firecracker.yaml) rather than firecracker-go-sdk: banger sends about a
// dozen requests, the SDK embeds the API of one release (v1.4 in the only
// version the module proxy serves), brings about 95 modules and hides the
// per-release differences this driver has to gate on.
//
// The API is HTTP/1.1 over the unix socket given with --api-sock: JSON
// bodies, 204 No Content on success, 200 with a JSON body for GETs, and
// 400 with {"fault_message": "..."} when Firecracker refuses a request.
// Firecracker's HTTP server (micro_http) wants a Content-Length on every
// body, so bodies are sent from memory, never chunked.

// DefaultRequestTimeout bounds one API request.
const DefaultRequestTimeout = 30 * time.Second

// APIError is Firecracker refusing a request.
type APIError struct {
	Method, Path string
	Status       int
	// Fault is Firecracker's fault_message.
	Fault string
}

func (e *APIError) Error() string {
	if e.Fault != "" {
		return "Firecracker said: " + e.Fault
	}
	return fmt.Sprintf("Firecracker answered %s %s with HTTP %d", e.Method, e.Path, e.Status)
}

// apiClient talks to one Firecracker API socket.
type apiClient struct {
	socket string
	// pid, when > 0, is the process that must serve the socket (checked
	// with SO_PEERCRED): a socket file left behind by a Firecracker that
	// exited may since have been bound by another process.
	pid int
}

// dial connects to the socket and checks who serves it.
func (c *apiClient) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, err
	}
	if c.pid > 0 {
		if peer, err := hypervisor.PeerPID(conn); err == nil && peer != c.pid {
			conn.Close()
			return nil, fmt.Errorf("%w: the API socket %s is served by pid %d, not %d", hypervisor.ErrNotOurs, c.socket, peer, c.pid)
		}
	}
	return conn, nil
}

// do sends one request; body (when not nil) is encoded as JSON and out
// (when not nil) receives the decoded 200 response.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b) // a known length: Content-Length, not chunked
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// One connection per request: nothing stays open towards a
	// Firecracker after the call, and every request is checked against
	// the expected PID.
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.dial(ctx)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s on %s: %w", method, path, c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the response: %w", method, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return nil
	case resp.StatusCode == http.StatusOK:
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the response %q: %w", method, path, firstLine(string(data)), err)
		}
		return nil
	}
	apiErr := &APIError{Method: method, Path: path, Status: resp.StatusCode}
	var fault struct {
		FaultMessage string `json:"fault_message"`
	}
	if json.Unmarshal(data, &fault) == nil {
		apiErr.Fault = fault.FaultMessage
	}
	return apiErr
}

// instanceInfo is the answer to GET /.
type instanceInfo struct {
	ID         string `json:"id"`
	State      string `json:"state"` // "Not started", "Running", "Paused"
	VMMVersion string `json:"vmm_version"`
	AppName    string `json:"app_name"`
}

// Instance states in instanceInfo.State.
const (
	stateNotStarted = "Not started"
	stateRunning    = "Running"
	statePaused     = "Paused"
)

func (c *apiClient) instanceInfo(ctx context.Context) (instanceInfo, error) {
	var info instanceInfo
	err := c.do(ctx, http.MethodGet, "/", nil, &info)
	return info, err
}

// action sends PUT /actions.
func (c *apiClient) action(ctx context.Context, actionType string) error {
	return c.do(ctx, http.MethodPut, "/actions", map[string]string{"action_type": actionType}, nil)
}
