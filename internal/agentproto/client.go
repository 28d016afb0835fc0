package agentproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Client sends requests over one stream to an agent and waits for the
// matching responses. It handles one request at a time; it is not safe for
// concurrent use. Reuse one Client for several requests on the same stream
// (it buffers what it has read).
type Client struct {
	rw io.ReadWriter
	lr *lineReader
}

// NewClient returns a client for the stream rw.
func NewClient(rw io.ReadWriter) *Client {
	return &Client{rw: rw, lr: newLineReader(rw)}
}

// CheckHealth asks the agent at the other end of rw for its health. See
// Client.Health.
func CheckHealth(ctx context.Context, rw io.ReadWriter) (Health, error) {
	return NewClient(rw).Health(ctx)
}

// Health asks the agent for its health.
//
// It writes a request with a random ID and reads lines until the response
// with that ID arrives, skipping garbage and stale replies. When ctx ends
// first it returns ctx.Err(): a stream with deadlines (net.Conn, a pollable
// *os.File) is interrupted and stays usable; with any other stream the read
// goes on in the background until the caller closes the stream.
//
// A guest kernel discards what the host writes to a virtio-serial port
// before the agent has opened it, so a caller waiting for a booting guest
// should ask with a short timeout per attempt and retry on the same
// Client; replies to abandoned attempts are skipped as stale.
func (c *Client) Health(ctx context.Context) (Health, error) {
	resp, err := c.call(ctx, Request{Type: TypeHealth})
	if err != nil {
		return Health{}, err
	}
	if resp.Health == nil {
		return Health{}, fmt.Errorf("agentproto: the agent answered health without a health report; update banger-agent in the image")
	}
	return *resp.Health, nil
}

// Hello tells the agent which protocol version and request types this
// end speaks and returns the agent's own Hello.
func (c *Client) Hello(ctx context.Context) (Hello, error) {
	resp, err := c.call(ctx, Request{Type: TypeHello, Hello: &Hello{Protocol: Version, Types: SupportedTypes()}})
	if err != nil {
		return Hello{}, err
	}
	if resp.Hello == nil {
		return Hello{}, fmt.Errorf("agentproto: the agent answered hello without its own; update banger-agent in the image")
	}
	return *resp.Hello, nil
}

// ProbeTCP asks whether a TCP port inside the guest accepts connections.
func (c *Client) ProbeTCP(ctx context.Context, port int) (ProbeResult, error) {
	resp, err := c.call(ctx, Request{Type: TypeProbeTCP, Port: port})
	if err != nil {
		return ProbeResult{}, err
	}
	if resp.Probe == nil {
		return ProbeResult{}, fmt.Errorf("agentproto: the agent answered probe_tcp without a result; update banger-agent in the image")
	}
	return *resp.Probe, nil
}

// HostKeys returns the guest's SSH host public keys.
func (c *Client) HostKeys(ctx context.Context) ([]string, error) {
	resp, err := c.call(ctx, Request{Type: TypeHostKeys})
	if err != nil {
		return nil, err
	}
	return resp.HostKeys, nil
}

// PowerOff asks the guest to shut down cleanly.
func (c *Client) PowerOff(ctx context.Context) error {
	_, err := c.call(ctx, Request{Type: TypePowerOff})
	return err
}

// call sends req with a fresh ID and returns the response with that ID.
// A response carrying an Error is returned as that *Error.
func (c *Client) call(ctx context.Context, req Request) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, err
	}
	req.ID = newID()
	type result struct {
		resp Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.exchange(req)
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		if r.err == nil && r.resp.Error != nil {
			return r.resp, r.resp.Error
		}
		return r.resp, r.err
	case <-ctx.Done():
		if d, ok := c.rw.(deadliner); ok {
			d.SetDeadline(aLongTimeAgo())
			<-done
			d.SetDeadline(time.Time{})
		}
		return Response{}, fmt.Errorf("agentproto: %s request: %w", req.Type, ctx.Err())
	}
}

func (c *Client) exchange(req Request) (Response, error) {
	if err := writeMessage(c.rw, req, true); err != nil {
		return Response{}, fmt.Errorf("agentproto: sending %s request: %w", req.Type, err)
	}
	for {
		line, err := c.lr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Response{}, fmt.Errorf("agentproto: the agent channel closed before the %s response arrived: %w", req.Type, err)
			}
			return Response{}, fmt.Errorf("agentproto: reading the %s response: %w", req.Type, err)
		}
		var resp Response
		if !decode(line, &resp) || resp.ID != req.ID {
			continue // garbage, or a reply to an earlier connection's request
		}
		return resp, nil
	}
}
