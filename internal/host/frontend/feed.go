package frontend

import (
	"context"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
)

// FeedItem is what Follow hands a front end: an api.Event (a change of
// kind vm, image, operation or session; hello and reset lines are taken
// care of), a Disconnected, or a Reconnected. Front ends switch on its
// type.
type FeedItem any

// Disconnected: the event stream broke (the daemon stopped, restarted,
// or cut this reader off for falling behind) or the daemon cannot be
// reached; Follow is reconnecting. It comes once per outage, with the
// error that began it.
type Disconnected struct{ Err error }

// Reconnected: the event stream is up. Reset means what the front end
// shows may be stale — the daemon restarted (a new epoch) or no longer
// keeps every event since the last one seen — so it must list again
// (GET /v1/vms, /v1/images, ...) and then apply the events that follow.
// First marks the feed's first connection (Reset is then true unless
// FollowFrom resumed): listing after it, rather than before Follow,
// leaves no gap between the list and the stream. Epoch and Seq say
// where the stream now starts (the daemon run, and the last event before
// what follows), for a front end that shows or saves them.
type Reconnected struct {
	Reset bool
	First bool
	Epoch string
	Seq   uint64
}

// Reconnection backoff: the first retry after a break comes after
// minBackoff, each failure doubles the wait up to maxBackoff.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Follow streams the daemon's change feed to fn from now on, across
// daemon restarts, until ctx ends; it returns ctx's error. connect gives a
// client of a running daemon and may start one (the CLI passes
// App.Client); it is called again after every break, with a backoff, and
// the stream resumes after the last event fn got.
func Follow(ctx context.Context, connect func(context.Context) (*client.Client, error), fn func(FeedItem)) error {
	return FollowFrom(ctx, 0, "", connect, fn)
}

// FollowFrom is Follow resuming after event since of epoch (the Seq and
// Epoch of the last event seen; 0 and "" mean from now). Its first
// Reconnected says Reset when those events are gone.
func FollowFrom(ctx context.Context, since uint64, epoch string, connect func(context.Context) (*client.Client, error), fn func(FeedItem)) error {
	f := follower{since: since, epoch: epoch, connect: connect, fn: fn, sleep: sleepFor}
	return f.run(ctx)
}

// follower is one Follow: where it is in the stream and whether the
// front end has been told of an outage.
type follower struct {
	since   uint64
	epoch   string
	connect func(context.Context) (*client.Client, error)
	fn      func(FeedItem)
	sleep   func(context.Context, time.Duration) error

	connected bool // a hello arrived on some connection
	down      bool // Disconnected sent, Reconnected not yet
}

func (f *follower) run(ctx context.Context) error {
	wait := minBackoff
	for {
		err := f.stream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if f.down {
			// Still away: wait longer before the next try.
			wait = min(2*wait, maxBackoff)
		} else {
			f.down = true
			f.fn(Disconnected{Err: err})
			wait = minBackoff
		}
		if err := f.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// stream connects and delivers one stream until it breaks.
func (f *follower) stream(ctx context.Context) error {
	cl, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.Events(ctx, f.since, f.epoch, func(ev api.Event) error {
		switch ev.Kind {
		case api.EventHello:
			f.hello(ev)
		case api.EventReset:
			// The daemon sends a reset right after the hello that
			// already said so (hello.Seq is not the since asked for).
		default:
			f.since, f.epoch = ev.Seq, ev.Epoch
			f.fn(ev)
		}
		return nil
	})
}

// hello records where the new stream starts and tells the front end it
// is connected, and whether it missed anything: the daemon resumes
// exactly at the since asked for (hello.Seq == since, same epoch) or
// sends a reset.
func (f *follower) hello(ev api.Event) {
	resumed := f.since > 0 || f.epoch != ""
	reset := !resumed || ev.Seq != f.since || (f.epoch != "" && ev.Epoch != f.epoch)
	first := !f.connected
	f.connected, f.down = true, false
	f.since, f.epoch = ev.Seq, ev.Epoch
	f.fn(Reconnected{Reset: reset, First: first, Epoch: ev.Epoch, Seq: ev.Seq})
}

// sleepFor waits d or until ctx ends.
func sleepFor(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
