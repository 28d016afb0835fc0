package hypervisor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// KillAndWait sends SIGKILL to h's process group when h's process is
// still the VM's own, and waits up to timeout for it to be gone.
func KillAndWait(h Handle, timeout time.Duration) error {
	if !Alive(h) {
		return nil
	}
	KillGroup(h.PID)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if !WaitGone(ctx, h) {
		return fmt.Errorf("pid %d is still alive %v after SIGKILL: look at it with ps -o stat,wchan -p %d", h.PID, timeout, h.PID)
	}
	return nil
}

// PowerOffAndWait is the shutdown both drivers share: when h's process is
// still the VM's own, ask the guest to power off (powerOff; its failure is
// logged, not fatal), wait until the process is gone or ctx ends, then
// SIGKILL its process group and wait up to killWait. proc names the
// process in logs and errors ("qemu", "firecracker"). A VM already gone is
// success; the caller removes its files afterwards.
func PowerOffAndWait(ctx context.Context, h Handle, proc string, log *slog.Logger, killWait time.Duration, powerOff func() error) error {
	if !Alive(h) {
		return nil
	}
	if err := powerOff(); err != nil {
		log.Warn("cannot ask the guest to power off; waiting, then killing "+proc, "pid", h.PID, "err", err)
	}
	if WaitGone(ctx, h) {
		return nil
	}
	log.Warn("the guest did not power off in time; killing "+proc, "pid", h.PID, "reason", ctx.Err())
	if err := KillAndWait(h, killWait); err != nil {
		return fmt.Errorf("%s: %w", proc, err)
	}
	return nil
}

// LogKeeper bounds the log files of running VMs, because a hypervisor
// writes them itself and the daemon may not be running: for each VM it
// calls Bound every Interval until the VM's process is gone, and once more
// when Stop is called. Both drivers use one for their console logs.
type LogKeeper struct {
	Interval time.Duration
	Bound    func(h Handle) error
	Log      *slog.Logger

	mu      sync.Mutex
	keepers map[string]*keeper // by console log path
}

type keeper struct {
	pid  int
	stop chan struct{}
	done chan struct{}
}

// Keep starts bounding h's files, unless a keeper for that process already
// runs; it replaces a keeper left for an earlier process with the same log.
func (l *LogKeeper) Keep(h Handle) {
	if h.ConsoleLog == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keepers == nil {
		l.keepers = map[string]*keeper{}
	}
	if k, ok := l.keepers[h.ConsoleLog]; ok {
		if k.pid == h.PID {
			return
		}
		close(k.stop)
	}
	k := &keeper{pid: h.PID, stop: make(chan struct{}), done: make(chan struct{})}
	l.keepers[h.ConsoleLog] = k
	go l.keep(h, k)
}

func (l *LogKeeper) keep(h Handle, k *keeper) {
	defer close(k.done)
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
		}
		if err := l.Bound(h); err != nil && !warned {
			l.Log.Warn("cannot bound the VM's logs", "log", h.ConsoleLog, "err", err)
			warned = true
		}
		if !Alive(h) {
			l.mu.Lock()
			if l.keepers[h.ConsoleLog] == k {
				delete(l.keepers, h.ConsoleLog)
			}
			l.mu.Unlock()
			return
		}
	}
}

// Stop stops the keeper of h's files, if any, and bounds them a last time.
func (l *LogKeeper) Stop(h Handle) {
	if h.ConsoleLog == "" {
		return
	}
	l.mu.Lock()
	k, ok := l.keepers[h.ConsoleLog]
	ours := ok && k.pid == h.PID
	if ours {
		delete(l.keepers, h.ConsoleLog)
		close(k.stop)
	}
	l.mu.Unlock()
	if ours {
		<-k.done
	}
	if err := l.Bound(h); err != nil {
		l.Log.Warn("cannot bound the VM's logs", "log", h.ConsoleLog, "err", err)
	}
}
