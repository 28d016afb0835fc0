package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

func vmPath(vm string, parts ...string) string {
	p := "/vms/" + url.PathEscape(vm)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// upgrade sends a request that switches the connection to the stream
// protocol and returns the connection; an answer other than 101 is the
// daemon's error.
func (c *Client) upgrade(ctx context.Context, path string, in any) (*http.Response, io.ReadWriteCloser, error) {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://bangerd/"+api.Version+path, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.UpgradeStream)
	resp, err := c.roundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		return nil, nil, errorFrom(resp, http.MethodPost, path)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, nil, fmt.Errorf("POST %s: the answer switched protocols without a writable body", path)
	}
	return resp, rwc, nil
}

// Exec runs a command in a running VM: stdin is copied to the command (its
// end closes the command's stdin, in pipe mode), its output goes to stdout
// and stderr (in TTY mode all of it to stdout). resize, when not nil,
// carries terminal size changes. The returned status is how the command
// ended; the error is about reaching it (an *api.Error when the daemon or
// the agent refused, e.g. the command does not exist). Cancelling ctx ends
// the stream, which kills the command.
func (c *Client) Exec(ctx context.Context, vm string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer, resize <-chan api.WindowSize) (api.ExitStatus, error) {
	_, conn, err := c.upgrade(ctx, vmPath(vm, "exec"), req)
	if err != nil {
		return api.ExitStatus{}, err
	}
	defer conn.Close()
	var rs chan agentmux.WindowSize
	if resize != nil {
		rs = make(chan agentmux.WindowSize)
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case ws, ok := <-resize:
					if !ok {
						return
					}
					select {
					case rs <- agentmux.WindowSize{Rows: ws.Rows, Cols: ws.Cols}:
					case <-done:
						return
					}
				case <-done:
					return
				}
			}
		}()
	}
	st, err := agentmux.RunExec(ctx, conn, agentmux.ExecRequest{Argv: req.Argv, TTY: req.TTY, Resize: rs}, stdin, stdout, stderr)
	if err != nil {
		return api.ExitStatus{}, fmt.Errorf("exec %s: %w", req.Argv[0], err)
	}
	return api.ExitStatus{Code: st.Code, Signal: st.SignalName}, nil
}

// ExecWait runs a command to its end with no input and returns its output
// (each stream bounded by api.ExecOutputLimit) and exit status in one
// answer, for callers that cannot hold a stream.
func (c *Client) ExecWait(ctx context.Context, vm string, req api.ExecRequest) (api.ExecResult, error) {
	var res api.ExecResult
	err := c.do(ctx, http.MethodPost, vmPath(vm, "exec")+"?wait=true", req, &res)
	return res, err
}

// PrepareWorkspace installs a workspace tar stream (as workspace.Pack
// writes it) at req.Dir in the guest ("" is /root/repo), replacing what
// was there atomically, and has the daemon record req as what was sent
// (the base of WorkspaceDiff and WorkspaceBundle).
func (c *Client) PrepareWorkspace(ctx context.Context, vm string, req api.PrepareWorkspaceRequest, tar io.Reader) (api.TransferResult, error) {
	q := url.Values{"dir": {req.Dir}}
	for k, v := range map[string]string{"mode": req.Mode, "host_path": req.HostPath, "head": req.Head, "sent": req.Sent} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var res api.TransferResult
	err := c.stream(ctx, http.MethodPut, vmPath(vm, "workspace")+"?"+q.Encode(), tar, &res)
	return res, err
}

// CopyIn places a file or tree (a workspace.PackPath tar stream) at dest
// in the guest: into dest when it is a directory, else as dest.
func (c *Client) CopyIn(ctx context.Context, vm, dest string, tar io.Reader) (api.TransferResult, error) {
	var res api.TransferResult
	err := c.stream(ctx, http.MethodPut, vmPath(vm, "files")+"?path="+url.QueryEscape(dest), tar, &res)
	return res, err
}

// stream sends body as a tar stream and decodes the JSON answer.
func (c *Client) stream(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://bangerd/"+api.Version+path, io.NopCloser(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", api.ContentTypeTar)
	resp, err := c.roundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errorFrom(resp, method, path)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// CopyOut writes the guest file or tree at src to w as a
// workspace.PackPath tar stream.
func (c *Client) CopyOut(ctx context.Context, vm, src string, w io.Writer) error {
	return c.streamOut(ctx, vmPath(vm, "files")+"?path="+url.QueryEscape(src), w, fmt.Sprintf("copying %s out of %s", src, vm))
}

// WorkspaceDiff is what changed in the VM's workspace since it was sent,
// as the guest reports it, limited to the git pathspecs given.
func (c *Client) WorkspaceDiff(ctx context.Context, vm string, pathspec ...string) (api.WorkspaceDiff, error) {
	var d api.WorkspaceDiff
	err := c.do(ctx, http.MethodGet, withQuery(vmPath(vm, "workspace", "diff"), url.Values{"path": pathspec}), nil, &d)
	return d, err
}

// WorkspacePatch writes what changed in the VM's workspace since it was
// sent to w as a patch (`git diff --binary`, made in the guest), at most
// max bytes (0: the daemon's default).
func (c *Client) WorkspacePatch(ctx context.Context, vm string, max int64, w io.Writer, pathspec ...string) error {
	q := url.Values{"format": {"patch"}, "path": pathspec}
	setMax(q, max)
	return c.streamOut(ctx, vmPath(vm, "workspace", "diff")+"?"+q.Encode(), w, "reading the diff of "+vm)
}

// WorkspaceBundle writes a git-mode workspace's work to w as a git bundle
// (refs refs/banger/head and refs/banger/work), at most max bytes (0: the
// daemon's default). It comes from the guest: verify it before use (as
// internal/host/workimport does).
func (c *Client) WorkspaceBundle(ctx context.Context, vm string, max int64, w io.Writer) error {
	q := url.Values{}
	setMax(q, max)
	return c.streamOut(ctx, withQuery(vmPath(vm, "workspace", "bundle"), q), w, "reading the work of "+vm)
}

// WorkspaceFiles writes the added and changed files of a full_copy
// workspace to w as a tar stream whose one top-level directory is "work",
// at most max bytes (0: the daemon's default).
func (c *Client) WorkspaceFiles(ctx context.Context, vm string, max int64, w io.Writer) error {
	q := url.Values{}
	setMax(q, max)
	return c.streamOut(ctx, withQuery(vmPath(vm, "workspace", "files"), q), w, "reading the changed files of "+vm)
}

// withQuery is path with q's parameters, if it has any.
func withQuery(path string, q url.Values) string {
	if e := q.Encode(); e != "" {
		return path + "?" + e
	}
	return path
}

func setMax(q url.Values, max int64) {
	if max > 0 {
		q.Set("max", strconv.FormatInt(max, 10))
	}
}

// streamOut copies a streamed answer to w; an error after the stream
// began comes as the api.TrailerError trailer.
func (c *Client) streamOut(ctx context.Context, path string, w io.Writer, what string) error {
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if t := resp.Trailer.Get(api.TrailerError); t != "" {
		var e api.Error
		if json.Unmarshal([]byte(t), &e) == nil && e.Code != "" {
			return &e
		}
		return api.Errorf(api.CodeInternal, "%s: %s", what, t)
	}
	return nil
}

// Sessions lists a VM's sessions (rebuilt from the guest when it runs).
func (c *Client) Sessions(ctx context.Context, vm string) ([]api.Session, error) {
	var l api.SessionList
	err := c.do(ctx, http.MethodGet, vmPath(vm, "sessions"), nil, &l)
	return l.Sessions, err
}

// Session returns one session by id or name.
func (c *Client) Session(ctx context.Context, vm, ref string) (api.Session, error) {
	var s api.Session
	err := c.do(ctx, http.MethodGet, vmPath(vm, "sessions", ref), nil, &s)
	return s, err
}

// StartSession starts a long-lived command in the guest. A command that
// fails preflight is refused (an *api.Error naming what is missing); one
// that dies within a second comes back with State "failed" and diagnostics.
func (c *Client) StartSession(ctx context.Context, vm string, req api.StartSessionRequest) (api.Session, error) {
	var s api.Session
	err := c.do(ctx, http.MethodPost, vmPath(vm, "sessions"), req, &s)
	return s, err
}

// SignalSession sends a signal ("TERM", "KILL", ...) to a session.
func (c *Client) SignalSession(ctx context.Context, vm, ref, signal string) (api.Session, error) {
	var s api.Session
	err := c.do(ctx, http.MethodPost, vmPath(vm, "sessions", ref, "signal"), api.SignalSessionRequest{Signal: signal}, &s)
	return s, err
}

// RemoveSession forgets a session that no longer runs.
func (c *Client) RemoveSession(ctx context.Context, vm, ref string) error {
	return c.do(ctx, http.MethodDelete, vmPath(vm, "sessions", ref), nil, nil)
}

// AttachOptions say where an attach starts and whether it follows.
type AttachOptions struct {
	// Since is the output offset to replay from; negative replays
	// everything still buffered.
	Since int64
	// NoFollow stops at the output that exists when the attach begins
	// (logs) instead of following live output.
	NoFollow bool
}

// Attachment is one attacher of a session: output chunks, stdin, resize.
type Attachment struct {
	a *agentmux.Attached
}

// Attach joins a session. The returned Session is its state as the attach
// began. Close detaches and leaves the session running.
func (c *Client) Attach(ctx context.Context, vm, ref string, opt AttachOptions) (*Attachment, api.Session, error) {
	q := url.Values{"since": {strconv.FormatInt(opt.Since, 10)}}
	if opt.NoFollow {
		q.Set("follow", "false")
	}
	resp, conn, err := c.upgrade(ctx, vmPath(vm, "sessions", ref, "attach")+"?"+q.Encode(), nil)
	if err != nil {
		return nil, api.Session{}, err
	}
	var ses api.Session
	json.Unmarshal([]byte(resp.Header.Get(api.HeaderSession)), &ses)
	return &Attachment{a: agentmux.NewAttached(conn)}, ses, nil
}

// Next returns the next output chunk; io.EOF once the session ended and
// its output was all delivered (or, without follow, once the output that
// existed at attach was).
func (a *Attachment) Next() (api.Chunk, error) {
	c, err := a.a.Next()
	if err != nil {
		return api.Chunk{}, err
	}
	return api.Chunk{Stream: c.Stream, Offset: c.Offset, Data: c.Data, Dropped: c.Dropped}, nil
}

// Final returns the session as it ended, after Next returned io.EOF.
func (a *Attachment) Final() (api.Session, error) {
	var s api.Session
	err := a.a.Final(&s)
	return s, err
}

// Write sends bytes to the session's stdin.
func (a *Attachment) Write(p []byte) (int, error) { return a.a.Write(p) }

// CloseStdin closes the session's stdin (pipe mode): its process reads EOF.
func (a *Attachment) CloseStdin() error { return a.a.CloseStdin() }

// Resize sets the session's terminal size (TTY mode).
func (a *Attachment) Resize(rows, cols uint16) error {
	return a.a.Resize(agentmux.WindowSize{Rows: rows, Cols: cols})
}

// Close detaches; the session keeps running.
func (a *Attachment) Close() error { return a.a.Close() }
