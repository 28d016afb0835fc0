// Package client is the typed Go client of bangerd's API, and the only way
// the CLI, the TUI and the web UI reach the daemon. Errors from the daemon
// come back as *api.Error values with the code the daemon sent, so
// errors.Is(err, api.ErrNotFound) works across the socket.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/localsock"
)

// Client talks to one bangerd over its Unix socket.
type Client struct {
	socket string
	http   *http.Client
	retry  retryPolicy
}

// retryPolicy is how a request that only reads (a GET that is not a
// stream) rides out a daemon going away or being replaced under it: a
// connection reset, or closed before any answer, is tried again after
// first, then twice as long each time, attempts times in all. A refused
// connection (no daemon: localsock.ErrNotRunning) is not retried: it is
// the signal daemonctl starts a daemon on, at once.
type retryPolicy struct {
	attempts int
	first    time.Duration
}

// defaultRetry tries 5 times within about 1.5s.
var defaultRetry = retryPolicy{attempts: 5, first: 100 * time.Millisecond}

// New returns a client for the daemon listening on socket. Every
// connection is checked before a request is written to it: the kernel's
// peer credentials must show the user's own uid or root (see
// localsock.TrustedServer), so a socket another user planted at the path
// never receives the user's requests, auth files or exec streams; it is
// refused with a *localsock.UntrustedServerError naming its uid and path.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return localsock.Dial(ctx, socket)
		},
		MaxIdleConns:      4,
		DisableKeepAlives: false,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}, retry: defaultRetry}
}

// Socket is the path this client dials.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// IsNotRunning reports whether err means no daemon answers on the socket.
func IsNotRunning(err error) bool { return errors.Is(err, localsock.ErrNotRunning) }

// do sends a request and decodes its JSON answer into out. A GET is
// retried (see retryPolicy) when the connection broke before the daemon
// answered: it changes nothing, so asking again is safe. Other methods
// are sent once: a reset after the daemon read the request may still
// have acted on it.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	for attempt, wait := 1, c.retry.first; err != nil && method == http.MethodGet && attempt < c.retry.attempts && brokenBeforeAnswer(err); attempt, wait = attempt+1, wait*2 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		resp, err = c.send(ctx, method, path, in)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding %s %s response: %w", method, path, err)
	}
	return nil
}

// brokenBeforeAnswer reports whether err is a connection that broke
// before any answer came: reset (a daemon exiting with our request
// unread, or a listener closed with our connection still queued), or
// closed cleanly without a response.
func brokenBeforeAnswer(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF)
}

// roundTrip sends req to the daemon; a failure to reach it comes back as
// the underlying error (localsock's ErrNotRunning, say), not wrapped in a
// *url.Error.
func (c *Client) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return resp, err
}

// send performs the request and turns every non-2xx answer into the
// *api.Error the daemon sent.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://bangerd/"+api.Version+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, errorFrom(resp, method, path)
}

// errorFrom reads the *api.Error of an answer that is not a success.
func errorFrom(resp *http.Response, method, path string) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb api.ErrorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
		return eb.Error
	}
	return api.Errorf(api.CodeInternal, "bangerd answered %s %s with %s: %s",
		method, path, resp.Status, strings.TrimSpace(string(raw)))
}

// DaemonStatus returns the running daemon's identity and health.
func (c *Client) DaemonStatus(ctx context.Context) (api.DaemonStatus, error) {
	var st api.DaemonStatus
	err := c.do(ctx, http.MethodGet, "/daemon", nil, &st)
	return st, err
}

// Shutdown asks the daemon to exit gracefully. Running VMs keep running.
func (c *Client) Shutdown(ctx context.Context, reason string) error {
	return c.do(ctx, http.MethodPost, "/daemon/shutdown", api.ShutdownRequest{Reason: reason}, nil)
}

// Operation returns one operation.
func (c *Client) Operation(ctx context.Context, id string) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodGet, "/operations/"+url.PathEscape(id), nil, &op)
	return op, err
}

// Operations lists recent operations, newest first.
func (c *Client) Operations(ctx context.Context) ([]api.Operation, error) {
	var l api.OperationList
	err := c.do(ctx, http.MethodGet, "/operations", nil, &l)
	return l.Operations, err
}

// CancelOperation asks a running operation to stop on behalf of by, the
// front end asking ("banger operation cancel"); the daemon adds the
// caller's uid, and the canceled operation's error names both.
func (c *Client) CancelOperation(ctx context.Context, id, by string) error {
	return c.do(ctx, http.MethodPost, "/operations/"+url.PathEscape(id)+"/cancel", api.CancelOperationRequest{By: by}, nil)
}

// WatchOperation streams the operation's events to fn until the operation
// is done, and returns its final state. If the stream breaks before the end
// (e.g. the daemon restarted), it returns the error.
func (c *Client) WatchOperation(ctx context.Context, id string, fn func(api.OperationEvent) error) (api.Operation, error) {
	resp, err := c.send(ctx, http.MethodGet, "/operations/"+url.PathEscape(id)+"/events", nil)
	if err != nil {
		return api.Operation{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	var last api.Operation
	for sc.Scan() {
		var ev api.OperationEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return last, fmt.Errorf("decoding operation event: %w", err)
		}
		last = ev.Operation
		if fn != nil {
			if err := fn(ev); err != nil {
				return last, err
			}
		}
		if ev.Type == api.EventDone {
			return last, nil
		}
	}
	if err := sc.Err(); err != nil {
		return last, fmt.Errorf("following operation %s: %w", id, err)
	}
	return last, fmt.Errorf("following operation %s: the stream ended before the operation finished (daemon restarted?): check `banger operation show %s`", id, id)
}

// Doctor runs the quick host checks.
func (c *Client) Doctor(ctx context.Context) (api.DoctorReport, error) {
	var r api.DoctorReport
	err := c.do(ctx, http.MethodGet, "/doctor", nil, &r)
	return r, err
}

// BeginDeepDoctor starts the deep checks (which boot a probe guest) as an
// operation whose result is an api.DoctorReport.
func (c *Client) BeginDeepDoctor(ctx context.Context, req api.DeepDoctorRequest) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/doctor/deep", req, &op)
	return op, err
}

// Images lists the registered images.
func (c *Client) Images(ctx context.Context) ([]api.Image, error) {
	var l api.ImageList
	err := c.do(ctx, http.MethodGet, "/images", nil, &l)
	return l.Images, err
}

// Image returns one image by name or id.
func (c *Client) Image(ctx context.Context, name string) (api.Image, error) {
	var img api.Image
	err := c.do(ctx, http.MethodGet, "/images/"+url.PathEscape(name), nil, &img)
	return img, err
}

// RemoveImage deletes an image; force removes one that VMs still use.
func (c *Client) RemoveImage(ctx context.Context, name string, force bool) error {
	return c.do(ctx, http.MethodDelete, "/images/"+url.PathEscape(name)+"?force="+fmt.Sprint(force), nil, nil)
}

// BeginRegisterImage validates the request (bad input fails here, at once)
// and starts the registration; the operation's result is an api.Image.
func (c *Client) BeginRegisterImage(ctx context.Context, req api.RegisterImageRequest) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/images/register", req, &op)
	return op, err
}

// BeginPromoteImage starts promoting an image to fully managed.
func (c *Client) BeginPromoteImage(ctx context.Context, name string) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/images/"+url.PathEscape(name)+"/promote", struct{}{}, &op)
	return op, err
}

// BeginBootstrapImage starts building a base image from nothing.
func (c *Client) BeginBootstrapImage(ctx context.Context, req api.BootstrapImageRequest) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/images/bootstrap", req, &op)
	return op, err
}

// BeginBuildImage starts deriving an image from a registered one.
func (c *Client) BeginBuildImage(ctx context.Context, req api.BuildImageRequest) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/images/build", req, &op)
	return op, err
}

// VMs lists the VMs.
func (c *Client) VMs(ctx context.Context) ([]api.VM, error) {
	var l api.VMList
	err := c.do(ctx, http.MethodGet, "/vms", nil, &l)
	return l.VMs, err
}

// VM returns one VM by name or id.
func (c *Client) VM(ctx context.Context, name string) (api.VM, error) {
	var v api.VM
	err := c.do(ctx, http.MethodGet, "/vms/"+url.PathEscape(name), nil, &v)
	return v, err
}

// BeginCreateVM validates the request (bad input fails here, at once) and
// starts the create; the operation's result is an api.VM.
func (c *Client) BeginCreateVM(ctx context.Context, req api.CreateVMRequest) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/vms", req, &op)
	return op, err
}

// BeginStartVM boots a stopped VM.
func (c *Client) BeginStartVM(ctx context.Context, name string) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/vms/"+url.PathEscape(name)+"/start", struct{}{}, &op)
	return op, err
}

// BeginRestartVM stops and boots a VM.
func (c *Client) BeginRestartVM(ctx context.Context, name string) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/vms/"+url.PathEscape(name)+"/restart", struct{}{}, &op)
	return op, err
}

// BeginPauseVM saves a running VM's whole state to disk and ends its
// hypervisor; the operation's result is the paused VM.
func (c *Client) BeginPauseVM(ctx context.Context, name string) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/vms/"+url.PathEscape(name)+"/pause", struct{}{}, &op)
	return op, err
}

// BeginResumeVM restores a paused VM as it was; the operation's result is
// the running VM.
func (c *Client) BeginResumeVM(ctx context.Context, name string) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/vms/"+url.PathEscape(name)+"/resume", struct{}{}, &op)
	return op, err
}

// BeginForkVM copies a running VM (memory and disks) into a new VM with
// its own identity; the operation's result is the new VM.
func (c *Client) BeginForkVM(ctx context.Context, name string, req api.ForkVMRequest) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/vms/"+url.PathEscape(name)+"/fork", req, &op)
	return op, err
}

// BeginWarmImage boots a VM of the image to readiness and keeps its saved
// state, so later creates of that shape restore it; the operation's
// result is the image.
func (c *Client) BeginWarmImage(ctx context.Context, name string, req api.WarmImageRequest) (api.Operation, error) {
	var op api.Operation
	err := c.do(ctx, http.MethodPost, "/images/"+url.PathEscape(name)+"/warm", req, &op)
	return op, err
}

// UnwarmImage removes an image's warm snapshots.
func (c *Client) UnwarmImage(ctx context.Context, name string) (api.Image, error) {
	var img api.Image
	err := c.do(ctx, http.MethodDelete, "/images/"+url.PathEscape(name)+"/warm", nil, &img)
	return img, err
}

// StopVM shuts a VM down cleanly and waits until it is stopped.
func (c *Client) StopVM(ctx context.Context, name string) (api.VM, error) {
	var v api.VM
	err := c.do(ctx, http.MethodPost, "/vms/"+url.PathEscape(name)+"/stop", struct{}{}, &v)
	return v, err
}

// DeleteVM removes a VM and everything it had.
func (c *Client) DeleteVM(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/vms/"+url.PathEscape(name), nil, nil)
}

// SSHInfo returns what ssh needs to reach a running VM.
func (c *Client) SSHInfo(ctx context.Context, name string) (api.SSHInfo, error) {
	var info api.SSHInfo
	err := c.do(ctx, http.MethodGet, "/vms/"+url.PathEscape(name)+"/ssh", nil, &info)
	return info, err
}

// Console streams a VM's serial console log to w; with follow it keeps
// streaming until ctx ends.
func (c *Client) Console(ctx context.Context, name string, follow bool, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, "/vms/"+url.PathEscape(name)+"/console?follow="+fmt.Sprint(follow), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Verify lists leaked resources.
func (c *Client) Verify(ctx context.Context) (api.VerifyReport, error) {
	var r api.VerifyReport
	err := c.do(ctx, http.MethodGet, "/verify", nil, &r)
	return r, err
}
