package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/eventhub"
)

// eventWriteTimeout bounds how long one line of GET /v1/events may wait
// for a client that stopped reading; past it the stream ends, so a stuck
// client holds no handler (the client resumes from its last seq).
const eventWriteTimeout = time.Minute

// openEvents starts this run's change feed (a fresh epoch) and has the
// image catalog, the VM manager and the guest service report every change
// they record to it; the operation manager is wired when it is made.
func (d *Daemon) openEvents() {
	d.events = eventhub.New(eventhub.Options{Log: d.log})
	d.images.OnChange = d.events.Publish
	d.vms.OnChange = d.events.Publish
	d.guest.OnChange = func(ev api.Event) {
		d.events.Publish(ev)
		// A VM shows how many of its sessions run: say it again.
		d.vms.SessionsChanged(context.Background(), ev.VM)
	}
}

// streamEvents writes the daemon-wide change feed as NDJSON, one flushed
// line per event: the hello, then a reset or the events kept since the
// client's seq when it resumes, then live events, until the client goes,
// falls too far behind (it resumes), or the daemon shuts down.
func (d *Daemon) streamEvents(w http.ResponseWriter, r *http.Request) error {
	resume, err := resumeFrom(r.URL.Query())
	if err != nil {
		return err
	}
	sub, err := d.events.Subscribe(resume)
	if err != nil {
		return api.Errorf(api.CodeUnavailable, "bangerd is shutting down: run the command again to start a new one")
	}
	defer sub.Close()
	w.Header().Set("Content-Type", api.ContentTypeNDJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{})
	enc := json.NewEncoder(w)
	for {
		ev, err := sub.Next(r.Context())
		if err != nil {
			return nil // the status line is already written
		}
		rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		if err := enc.Encode(ev); err != nil {
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}

// resumeFrom reads since and epoch: without since the stream is live.
func resumeFrom(q url.Values) (*eventhub.Resume, error) {
	s := q.Get("since")
	if s == "" {
		return nil, nil
	}
	since, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, api.FieldErrorf("since", "the seq of an event this client saw (a whole number)",
			"since %q is not a sequence number: pass the seq of the last event seen, with its epoch", s)
	}
	return &eventhub.Resume{Since: since, Epoch: q.Get("epoch")}, nil
}
