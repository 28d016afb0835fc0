package frontend

import (
	"context"
	"fmt"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
)

// StopOptions say how StopSession ends a session.
type StopOptions struct {
	// Signal is sent first ("TERM" when empty): a name as kill(1) takes
	// it, with or without SIG.
	Signal string
	// Timeout is how long to wait for the session to end after Signal
	// before sending SIGKILL; 0 only sends Signal.
	Timeout time.Duration
	// OnEscalate is called with the session's state just before SIGKILL
	// is sent, so a front end can say why.
	OnEscalate func(api.Session)
	// Poll is how often the session's state is read while waiting (200ms
	// when 0).
	Poll time.Duration
	// KillWait bounds the wait for the end after SIGKILL (5s when 0); a
	// session still running then is returned as it is.
	KillWait time.Duration
}

// StopSession sends o.Signal to a session's process group and, with a
// Timeout, waits for it to end and sends SIGKILL when it has not. It
// returns the session's last known state: still running only when
// Timeout is 0 (or SIGKILL did not end it within KillWait).
func StopSession(ctx context.Context, cl *client.Client, vm, ref string, o StopOptions) (api.Session, error) {
	if o.Signal == "" {
		o.Signal = "TERM"
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.KillWait <= 0 {
		o.KillWait = 5 * time.Second
	}
	ses, err := cl.SignalSession(ctx, vm, ref, o.Signal)
	if err != nil {
		return ses, err
	}
	if o.Timeout <= 0 {
		return ses, nil
	}
	if ses, err = waitEnd(ctx, cl, vm, ref, ses, o.Timeout, o.Poll); err != nil || ses.State != api.SessionRunning {
		return ses, err
	}
	if o.OnEscalate != nil {
		o.OnEscalate(ses)
	}
	if ses, err = cl.SignalSession(ctx, vm, ref, "KILL"); err != nil {
		return ses, fmt.Errorf("sending SIGKILL to session %s: %w", ref, err)
	}
	return waitEnd(ctx, cl, vm, ref, ses, o.KillWait, o.Poll)
}

// waitEnd reads the session every poll until it no longer runs or wait
// has passed.
func waitEnd(ctx context.Context, cl *client.Client, vm, ref string, ses api.Session, wait, poll time.Duration) (api.Session, error) {
	deadline := time.Now().Add(wait)
	for ses.State == api.SessionRunning && time.Now().Before(deadline) {
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ses, ctx.Err()
		case <-t.C:
		}
		now, err := cl.Session(ctx, vm, ref)
		if err != nil {
			return ses, err
		}
		ses = now
	}
	return ses, nil
}

// RemoveSession forgets a session that no longer runs, and its attach
// cursor (cursors may be nil). It returns the session as it was.
func RemoveSession(ctx context.Context, cl *client.Client, cursors *Cursors, vm, ref string) (api.Session, error) {
	ses, err := cl.Session(ctx, vm, ref)
	if err != nil {
		return ses, err
	}
	if err := cl.RemoveSession(ctx, vm, ses.ID); err != nil {
		return ses, err
	}
	// The session is gone; a cursor left behind only costs a file.
	cursors.Forget(vm, ses.ID)
	return ses, nil
}
