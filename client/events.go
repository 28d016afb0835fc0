package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bangerdev/banger/api"
)

// ErrEventsEnded is what Events returns when bangerd ends the event
// stream: it is shutting down, or this reader fell too far behind and was
// cut off. Either way, resume from the last event's Seq and Epoch.
var ErrEventsEnded = errors.New("bangerd ended the event stream (it stopped, or this reader fell behind): resume from the last seq seen")

// maxEventLine bounds one line of the event stream.
const maxEventLine = 8 << 20

// Events streams the daemon-wide change feed (GET /v1/events) to fn,
// one api.Event per line, until ctx ends, the stream breaks, or fn fails,
// and returns that error (ctx's, ErrEventsEnded, the read error, or
// fn's); it never returns nil. The first event is always an EventHello
// with the daemon's Epoch and the Seq the stream starts after.
//
// With since 0 and epoch "" the stream is live from now. Otherwise it
// resumes after event since of epoch (the Seq and Epoch of the last event
// fn saw): every kept event after it follows, or first an EventReset
// when those are gone or the daemon restarted (a new epoch), after which
// the caller must list again what it shows.
func (c *Client) Events(ctx context.Context, since uint64, epoch string, fn func(api.Event) error) error {
	path := "/events"
	if since > 0 || epoch != "" {
		q := url.Values{"since": {strconv.FormatUint(since, 10)}}
		if epoch != "" {
			q.Set("epoch", epoch)
		}
		path += "?" + q.Encode()
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	for sc.Scan() {
		var ev api.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("decoding an event of bangerd's stream: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading bangerd's event stream: %w", err)
	}
	return ErrEventsEnded
}
