// Package poll owns the fixed-interval wait for a condition that has no
// event to wait on (a lock freed, a process gone, a link appeared): it
// checks at once, then every interval, and gives up as soon as its context
// ends.
package poll

import (
	"context"
	"time"
)

// Until calls check at once and then every interval until it reports done
// or fails, and returns check's error (nil when done). When ctx ends first
// it returns ctx.Err() without waiting for the interval to pass. A caller
// with a deadline of its own returns an error from check past it, or
// passes a context with that deadline.
func Until(ctx context.Context, every time.Duration, check func() (done bool, err error)) error {
	var t *time.Timer
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		if t == nil {
			t = time.NewTimer(every)
			defer t.Stop()
		} else {
			t.Reset(every) // drained: the last wait received from t.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
