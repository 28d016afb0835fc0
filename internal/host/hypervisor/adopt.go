package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// This file holds the halves of Status, Adopt, Shutdown and Kill that do
// not depend on how a driver talks to its hypervisor; each driver passes
// its own call (QMP, the Firecracker API) and prefixes the error with its
// name.

// StateOf is Stopped when h's process is gone; otherwise what ask says. A
// failed ask of a process that died meanwhile is Stopped too.
func StateOf(h Handle, ask func() (State, error)) (State, error) {
	if !Alive(h) {
		return Stopped, nil
	}
	s, err := ask()
	if err != nil {
		if !Alive(h) {
			return Stopped, nil
		}
		return "", fmt.Errorf("status of pid %d: %w", h.PID, err)
	}
	return s, nil
}

// VerifyOurs is the check of Adopt: h.PID is alive with the recorded
// start time and answer (the driver's call on its control socket, which
// what names: "QMP socket", "API socket") succeeds. Otherwise the error
// wraps ErrNotOurs, or is ctx's when ctx ended.
func VerifyOurs(ctx context.Context, h Handle, what string, answer func(context.Context) error) error {
	if !Alive(h) {
		st, err := ProcessStartTime(h.PID)
		if err != nil {
			return fmt.Errorf("%w: pid %d is gone", ErrNotOurs, h.PID)
		}
		return fmt.Errorf("%w: pid %d started at tick %d, not %d (the PID was reused)", ErrNotOurs, h.PID, st, h.StartTime)
	}
	if err := answer(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("adopting pid %d: %w", h.PID, ctx.Err())
		}
		if errors.Is(err, ErrNotOurs) {
			return err
		}
		return fmt.Errorf("%w: pid %d runs but its %s does not answer: %v", ErrNotOurs, h.PID, what, err)
	}
	return nil
}

// ShutdownVM is PowerOffAndWait (waiting DefaultKillWait after SIGKILL)
// followed, once the process is gone, by gone: the driver's removal of
// the VM's sockets and files and the end of its log keeping.
func ShutdownVM(ctx context.Context, h Handle, proc string, log *slog.Logger, powerOff func() error, gone func(Handle)) error {
	if err := PowerOffAndWait(ctx, h, proc, log, DefaultKillWait, powerOff); err != nil {
		return err
	}
	gone(h)
	return nil
}

// KillVM is KillAndWait (at most DefaultKillWait) followed, once the
// process is gone, by gone; errors name proc ("qemu: pid ...").
func KillVM(h Handle, proc string, gone func(Handle)) error {
	if err := KillAndWait(h, DefaultKillWait); err != nil {
		return fmt.Errorf("%s: %w", proc, err)
	}
	gone(h)
	return nil
}
